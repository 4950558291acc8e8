//! Starting a stage: spawn its children, then poll their health URLs until each answers 200 and holds every
//! port it should listen on (`listen`), one of them exits, the deadline passes or a signal arrives; a child that
//! fails its start is reported with its last log lines. A stage may need more than its health URLs to be of use (Prometheus
//! must also see its targets); `wait_until` polls such a condition with the same exits, deadline and signals.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::plan::Stage;

use super::listen::{self, Missing};
use super::{Event, Slot, Supervisor, UpError};

impl Slot {
    /// The ports the child should listen on (its health URL's and `more_ports`) that it does not hold itself.
    fn missing_listeners(&self) -> Vec<Missing> {
        let Some(pid) = self.pid else {
            return Vec::new();
        };
        let ports: Vec<u16> = listen::url_port(&self.spec.health_url)
            .into_iter()
            .chain(self.spec.more_ports.iter().copied())
            .collect();
        listen::missing(pid, &ports)
    }
}

impl Supervisor {
    /// Starts every child of `stage` and waits until each answers its health URL with 200 and listens itself on
    /// that URL's port and its `more_ports`.
    ///
    /// # Errors
    /// A child cannot be started, exits, or is not ready by the deadline; or a signal arrives.
    pub async fn start_stage(&mut self, stage: Stage, timeout: Duration) -> Result<(), UpError> {
        let indices: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].spec.stage == stage)
            .collect();
        for &index in &indices {
            self.spawn(index)?;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            let pending: Vec<usize> = indices
                .iter()
                .copied()
                .filter(|&i| !self.slots[i].ready)
                .collect();
            if pending.is_empty() {
                return Ok(());
            }
            tokio::select! {
                _ = tick.tick() => {
                    let answered = self.probe(&pending).await;
                    for index in pending {
                        let slot = &mut self.slots[index];
                        if !answered.contains(&index) {
                            slot.waiting = Some(format!("{} does not answer {}", slot.spec.name, slot.spec.health_url));
                            continue;
                        }
                        let missing = slot.missing_listeners();
                        if missing.is_empty() {
                            slot.ready = true;
                            self.say(&format!("{} is ready", self.slots[index].spec.name));
                        } else {
                            let missing: Vec<String> = missing.iter().map(ToString::to_string).collect();
                            slot.waiting = Some(format!("{}: {}", slot.spec.name, missing.join(", ")));
                        }
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    let mut tails = Vec::new();
                    for &index in &pending {
                        tails.push(self.tail(index).await);
                    }
                    return Err(UpError::NotReady {
                        waiting: pending
                            .iter()
                            .map(|&i| {
                                let slot = &self.slots[i];
                                slot.waiting.clone().unwrap_or_else(|| format!("{} was not asked yet", slot.spec.name))
                            })
                            .collect(),
                        timeout,
                        tail: tails.join("\n"),
                    });
                }
                Some(event) = self.events_rx.recv() => {
                    if let Event::Exited { index, status } = &event {
                        if indices.contains(index) {
                            return Err(self.died_before_ready(*index, status.clone()).await);
                        }
                    }
                    self.handle(event);
                }
                name = self.signals.recv() => return Err(UpError::Interrupted(name)),
            }
        }
    }

    /// Polls `check` until it returns `Ok`, a child of `stage` exits, `timeout` passes or a signal arrives. The
    /// last `Err` of `check` says what is still missing and becomes the message of the timeout. Other children's
    /// exits are handled as while running (reported, and restarted with `--restart`).
    ///
    /// # Errors
    /// A child of `stage` exits, the condition does not hold in time, or a signal arrives.
    pub async fn wait_until<F, Fut>(
        &mut self,
        stage: Stage,
        timeout: Duration,
        mut check: F,
    ) -> Result<(), UpError>
    where
        F: FnMut(reqwest::Client) -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut missing = "no answer yet".to_owned();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    match check(self.client.clone()).await {
                        Ok(()) => return Ok(()),
                        Err(what) => missing = what,
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    return Err(UpError::StillWaiting { what: missing, timeout });
                }
                Some(event) = self.events_rx.recv() => {
                    if let Event::Exited { index, status } = &event {
                        if self.slots[*index].spec.stage == stage {
                            return Err(self.died_before_ready(*index, status.clone()).await);
                        }
                    }
                    self.handle(event);
                }
                name = self.signals.recv() => return Err(UpError::Interrupted(name)),
            }
        }
    }

    /// The error for the child of slot `index` that exited with `status` during its start, with its last lines.
    async fn died_before_ready(&mut self, index: usize, status: String) -> UpError {
        self.slots[index].pid = None;
        let tail = self.tail(index).await;
        UpError::DiedBeforeReady {
            name: self.slots[index].spec.name.clone(),
            status,
            tail,
        }
    }

    /// Asks every child in `pending` for its health URL at once and returns those that answered with a success
    /// status. They come back in slot order, so the "is ready" lines do not depend on which answer came first.
    async fn probe(&self, pending: &[usize]) -> Vec<usize> {
        let mut checks = JoinSet::new();
        for &index in pending {
            let url = self.slots[index].spec.health_url.clone();
            let client = self.client.clone();
            checks.spawn(async move {
                let ok = if url.starts_with("redis://") {
                    super::ping::answers(&url).await
                } else if let Some(addr) = url.strip_prefix("dns://") {
                    super::ping::dns_answers(addr).await
                } else {
                    matches!(client.get(&url).send().await, Ok(r) if r.status().is_success())
                };
                (index, ok)
            });
        }
        let mut ready = Vec::new();
        while let Some(joined) = checks.join_next().await {
            // A check that panicked counts as not ready yet; the next tick asks again.
            if let Ok((index, true)) = joined {
                ready.push(index);
            }
        }
        ready.sort_unstable();
        ready
    }
}
