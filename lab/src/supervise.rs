//! Running the lab's children: spawn with prefixed, coloured logs; wait for readiness; report (and optionally
//! restart) a child that exits; stop everything on Ctrl-C, SIGTERM or SIGHUP.
//!
//! Every child is put in its own process group, so a Ctrl-C in the terminal reaches only `scalelab`, which then
//! stops the children in order (SIGTERM, a bounded wait, SIGKILL) instead of having them all die at once mid-request.
//! The flip side is that a SIGKILLed `scalelab` cannot take its children along (the workspace forbids the `unsafe`
//! that `PR_SET_PDEATHSIG` would need), so their pids are kept in `<data_dir>/scalelab-up.pids` and the next `up`
//! stops any that are still running.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::plan::{ChildSpec, Stage};

/// How long children get between SIGTERM and SIGKILL; above the proxy's default `shutdown_timeout` of 10 s.
pub const STOP_GRACE: Duration = Duration::from_secs(12);
/// The name of the pid file in the data dir.
pub const PID_FILE: &str = "scalelab-up.pids";

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A child that ran this long before dying is considered to have been healthy; its backoff starts over.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// Why `up` stopped before or instead of running normally.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error("cannot start {name} ({binary}): {source}")]
    Spawn {
        name: String,
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("{name} exited ({status}) before it was ready; its log is above")]
    DiedBeforeReady { name: String, status: String },
    #[error("{} did not answer {} within {timeout:?}", names.join(", "), urls.join(", "))]
    NotReady {
        names: Vec<String>,
        urls: Vec<String>,
        timeout: Duration,
    },
    #[error("stopped by {0} before the lab was ready")]
    Interrupted(&'static str),
    #[error("every child has exited")]
    AllDead,
    #[error("cannot install a signal handler: {0}")]
    Signals(std::io::Error),
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
}

/// What the supervisor hears from its child tasks and timers.
#[derive(Debug)]
enum Event {
    Exited { index: usize, status: String },
    Respawn { index: usize },
}

/// One child slot: the spec and, while it runs, its pid.
struct Slot {
    spec: ChildSpec,
    pid: Option<u32>,
    started: Instant,
    /// Consecutive quick deaths, for the restart backoff.
    failures: u32,
    ready: bool,
}

pub struct Supervisor {
    slots: Vec<Slot>,
    restart: bool,
    colour: bool,
    pid_file: PathBuf,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    signals: Signals,
    client: reqwest::Client,
}

struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }
}

/// Whether log prefixes are coloured: only on a terminal, and never with `NO_COLOR` set (no-color.org).
pub fn colour_wanted(disabled: bool) -> bool {
    !disabled && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

const COLOURS: [&str; 6] = ["36", "32", "33", "35", "34", "31"];

/// `[name] line`, with the prefix coloured by the child's index.
pub fn prefix_line(name: &str, index: usize, colour: bool, line: &str) -> String {
    if colour {
        let code = COLOURS[index % COLOURS.len()];
        format!("\x1b[{code}m[{name}]\x1b[0m {line}")
    } else {
        format!("[{name}] {line}")
    }
}

/// The restart delay after `failures` consecutive quick deaths: 1 s, 2 s, 4 s, ... at most 30 s.
pub fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << failures.min(5))
        .min(MAX_BACKOFF)
}

impl Supervisor {
    /// A supervisor for `specs`; nothing is started yet.
    ///
    /// # Errors
    /// Signal handlers or the HTTP client cannot be set up.
    pub fn new(
        specs: Vec<ChildSpec>,
        restart: bool,
        colour: bool,
        data_dir: &Path,
    ) -> Result<Supervisor, UpError> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let signals = Signals {
            interrupt: signal(SignalKind::interrupt()).map_err(UpError::Signals)?,
            terminate: signal(SignalKind::terminate()).map_err(UpError::Signals)?,
            hangup: signal(SignalKind::hangup()).map_err(UpError::Signals)?,
        };
        let client = reqwest::Client::builder()
            // Health checks go to loopback; an environment proxy would only get in the way.
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()
            .map_err(UpError::Client)?;
        let slots = specs
            .into_iter()
            .map(|spec| Slot {
                spec,
                pid: None,
                started: Instant::now(),
                failures: 0,
                ready: false,
            })
            .collect();
        Ok(Supervisor {
            slots,
            restart,
            colour,
            pid_file: data_dir.join(PID_FILE),
            events_tx,
            events_rx,
            signals,
            client,
        })
    }

    /// Prints a line of our own, prefixed like the children's.
    pub fn say(&self, line: &str) {
        let prefix = if self.colour {
            "\x1b[1m[scalelab]\x1b[0m"
        } else {
            "[scalelab]"
        };
        let mut out = std::io::stdout().lock();
        // A closed stdout (the terminal went away) must not stop the shutdown of the children.
        let _ = writeln!(out, "{prefix} {line}");
        let _ = out.flush();
    }

    /// The pids of the children that run now, by name.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.slots
            .iter()
            .filter_map(|slot| slot.pid.map(|pid| (slot.spec.name.clone(), pid)))
            .collect()
    }

    /// Stops children left running by a previous `up` that was killed before it could stop them.
    pub fn stop_leftovers(&self) {
        let Ok(text) = std::fs::read_to_string(&self.pid_file) else {
            return;
        };
        for line in text.lines() {
            let mut fields = line.splitn(3, ' ');
            let (Some(pid), Some(name), Some(binary)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let Ok(pid) = pid.parse::<i32>() else {
                continue;
            };
            // Only a process still running that very binary: the pid may have been reused by something else.
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            if exe.as_deref() == Some(Path::new(binary)) {
                self.say(&format!(
                    "stopping {name} (pid {pid}) left over from a previous `scalelab up`"
                ));
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }

    fn write_pid_file(&self) {
        let text: String = self
            .slots
            .iter()
            .filter_map(|slot| {
                slot.pid
                    .map(|pid| format!("{pid} {} {}\n", slot.spec.name, slot.spec.binary.display()))
            })
            .collect();
        if let Some(dir) = self.pid_file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(error) = std::fs::write(&self.pid_file, text) {
            self.say(&format!(
                "warning: cannot write {}: {error}",
                self.pid_file.display()
            ));
        }
    }

    fn spawn(&mut self, index: usize) -> Result<(), UpError> {
        let colour = self.colour;
        let slot = &mut self.slots[index];
        let mut child: Child = Command::new(&slot.spec.binary)
            .args(&slot.spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            // The children's tracing honours NO_COLOR; without it they would write escape codes into our pipe.
            .envs((!colour).then_some(("NO_COLOR", "1")))
            // Backstop for a panic in `scalelab` itself; the normal path stops children explicitly.
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| UpError::Spawn {
                name: slot.spec.name.clone(),
                binary: slot.spec.binary.clone(),
                source,
            })?;
        slot.pid = child.id();
        slot.started = Instant::now();
        slot.ready = false;
        let name = slot.spec.name.clone();
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(relay(stdout, name.clone(), index, colour));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(relay(stderr, name, index, colour));
        }
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(status) => describe(status),
                Err(error) => format!("wait failed: {error}"),
            };
            let _ = events.send(Event::Exited { index, status });
        });
        self.write_pid_file();
        Ok(())
    }

    /// Starts every child of `stage` and waits until each answers its health URL with 200.
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
                    let checks = pending.iter().map(|&i| {
                        let url = self.slots[i].spec.health_url.clone();
                        let client = self.client.clone();
                        async move {
                            let ok = matches!(client.get(&url).send().await, Ok(r) if r.status().is_success());
                            (i, ok)
                        }
                    });
                    for (index, ok) in futures_join_all(checks).await {
                        if ok {
                            self.slots[index].ready = true;
                            self.say(&format!("{} is ready", self.slots[index].spec.name));
                        }
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    return Err(UpError::NotReady {
                        names: pending.iter().map(|&i| self.slots[i].spec.name.clone()).collect(),
                        urls: pending.iter().map(|&i| self.slots[i].spec.health_url.clone()).collect(),
                        timeout,
                    });
                }
                Some(event) = self.events_rx.recv() => {
                    if let Event::Exited { index, status } = &event {
                        if indices.contains(index) {
                            let name = self.slots[*index].spec.name.clone();
                            self.slots[*index].pid = None;
                            return Err(UpError::DiedBeforeReady { name, status: status.clone() });
                        }
                    }
                    self.handle(event);
                }
                name = self.signals.recv() => return Err(UpError::Interrupted(name)),
            }
        }
    }

    /// Runs until a signal arrives (returning its name), reporting and, with `--restart`, restarting exits.
    ///
    /// # Errors
    /// `AllDead` when no child is left and none will be restarted.
    pub async fn run(&mut self) -> Result<&'static str, UpError> {
        loop {
            tokio::select! {
                Some(event) = self.events_rx.recv() => {
                    self.handle(event);
                    if !self.restart && self.slots.iter().all(|slot| slot.pid.is_none()) {
                        return Err(UpError::AllDead);
                    }
                }
                name = self.signals.recv() => return Ok(name),
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Exited { index, status } => {
                let slot = &mut self.slots[index];
                slot.pid = None;
                let name = slot.spec.name.clone();
                if !self.restart {
                    self.write_pid_file();
                    self.say(&format!(
                        "{name} exited ({status}); not restarting it (use --restart to)"
                    ));
                    return;
                }
                if slot.started.elapsed() >= STABLE_RUN {
                    slot.failures = 0;
                }
                let delay = backoff(slot.failures);
                slot.failures = slot.failures.saturating_add(1);
                self.write_pid_file();
                self.say(&format!(
                    "{name} exited ({status}); restarting it in {delay:?}"
                ));
                let events = self.events_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = events.send(Event::Respawn { index });
                });
            }
            Event::Respawn { index } => {
                if let Err(error) = self.spawn(index) {
                    // Reported, then retried on the same backoff path as a child that died.
                    self.say(&format!("{error}"));
                    let _ = self.events_tx.send(Event::Exited {
                        index,
                        status: "could not be started".to_owned(),
                    });
                }
            }
        }
    }

    /// Stops every running child: the proxy first, so it stops taking requests and drains before its upstreams go,
    /// then the backends. Each group gets SIGTERM, at most `grace` to exit, then SIGKILL.
    pub async fn shutdown(&mut self, grace: Duration) {
        // Pending restarts must not bring anything back while we stop.
        self.restart = false;
        let running = self.slots.iter().filter(|slot| slot.pid.is_some()).count();
        if running > 0 {
            self.say(&format!("stopping {running} children"));
        }
        for stage in [Stage::Proxy, Stage::Backend] {
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

/// Copies a child's output to our stdout line by line, prefixed with its name.
async fn relay(stream: impl AsyncRead + Unpin, name: String, index: usize, colour: bool) {
    let mut reader = BufReader::new(stream);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                // Children log UTF-8, but a stray byte must not lose the rest of the line.
                let line = String::from_utf8_lossy(&buffer);
                let line = prefix_line(&name, index, colour, line.trim_end_matches(['\n', '\r']));
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        }
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(name) => format!("killed by {name}"),
            Err(_) => format!("killed by signal {signal}"),
        },
        _ => status.to_string(),
    }
}

/// Runs the futures concurrently and collects their outputs, without pulling in the `futures` crate for it.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        if let Ok(output) = handle.await {
            outputs.push(output);
        }
    }
    outputs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let delays: Vec<u64> = (0..8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            prefix_line("gateway-5000", 3, false, "hello"),
            "[gateway-5000] hello"
        );
        assert_eq!(
            prefix_line("proxy", 0, true, "x"),
            "\x1b[36m[proxy]\x1b[0m x"
        );
        assert_eq!(
            prefix_line("db", 6, true, "x"),
            prefix_line("db", 0, true, "x")
        );
    }

    #[test]
    fn exit_statuses_are_described() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(describe(ExitStatus::from_raw(1 << 8)), "exit code 1");
        assert_eq!(describe(ExitStatus::from_raw(9)), "killed by SIGKILL");
    }
}
