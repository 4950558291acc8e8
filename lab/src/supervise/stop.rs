//! Stopping the lab: Prometheus first, so it does not record the lab going down as failed scrapes; then the proxy,
//! so it stops taking requests and drains before its upstreams go; then the backends; a fleet's Redis last, as
//! the proxies and workers use it to the end. Each group gets SIGTERM, a
//! bounded wait and then SIGKILL.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::plan::Stage;

use super::{Event, Supervisor};

/// How long children get between SIGTERM and SIGKILL; above the proxy's default `shutdown_timeout` of 10 s.
pub const STOP_GRACE: Duration = Duration::from_secs(12);

impl Supervisor {
    /// Stops every running child: Prometheus, then the proxy, so it stops taking requests and drains before its
    /// upstreams go, then the backends. Each group gets SIGTERM, at most `grace` to exit, then SIGKILL.
    pub async fn shutdown(&mut self, grace: Duration) {
        // Pending restarts must not bring anything back while we stop.
        self.restart = false;
        let running = self.slots.iter().filter(|slot| slot.pid.is_some()).count();
        if running > 0 {
            self.say(&format!("stopping {running} children"));
        }
        for stage in [Stage::Observe, Stage::Proxy, Stage::Backend, Stage::Store] {
            let group: Vec<usize> = (0..self.slots.len())
                .filter(|&i| self.slots[i].spec.stage == stage && self.slots[i].pid.is_some())
                .collect();
            for &index in &group {
                self.signal(index, Signal::SIGTERM);
            }
            if !self.wait_for(&group, grace).await {
                for &index in &group {
                    if self.slots[index].pid.is_some() {
                        self.say(&format!(
                            "{} did not stop within {grace:?}; killing it",
                            self.slots[index].spec.name
                        ));
                        self.signal(index, Signal::SIGKILL);
                    }
                }
                // SIGKILL cannot be ignored; the bound only guards against a wait that never reports.
                self.wait_for(&group, Duration::from_secs(5)).await;
            }
        }
        let _ = std::fs::remove_file(&self.pid_file);
        if running > 0 {
            self.say("all children stopped");
        }
    }

    /// Signals the child of slot `index` and its whole process group, if it runs.
    fn signal(&self, index: usize, signal: Signal) {
        if let Some(pid) = self.slots[index]
            .pid
            .and_then(|pid| i32::try_from(pid).ok())
        {
            // The child's own process group: anything it started goes too.
            let _ = kill(Pid::from_raw(-pid), signal);
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// Waits until none of `group` runs; false if `limit` passed first or a second signal asks to hurry.
    async fn wait_for(&mut self, group: &[usize], limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while group.iter().any(|&i| self.slots[i].pid.is_some()) {
            tokio::select! {
                Some(event) = self.events_rx.recv() => {
                    if let Event::Exited { index, status } = event {
                        self.slots[index].pid = None;
                        self.say(&format!("{} stopped ({status})", self.slots[index].spec.name));
                    }
                }
                () = tokio::time::sleep_until(deadline) => return false,
                // A second Ctrl-C while stopping: go straight to SIGKILL.
                name = self.signals.recv() => {
                    self.say(&format!("{name} again: killing the remaining children"));
                    return false;
                }
            }
        }
        true
    }
}
