//! Running the lab's children: spawn with prefixed, coloured logs; wait for readiness; report (and optionally
//! restart) a child that exits; stop everything on Ctrl-C, SIGTERM or SIGHUP.
//!
//! Every child is put in its own process group, so a Ctrl-C in the terminal reaches only `scalelab`, which then
//! stops the children in order (SIGTERM, a bounded wait, SIGKILL) instead of having them all die at once mid-request.
//! The flip side is that a SIGKILLed `scalelab` cannot take its children along (the workspace forbids the `unsafe`
//! that `PR_SET_PDEATHSIG` would need), so their pids are kept in `<data_dir>/scalelab-up.pids` with the `up` that
//! owns them: the next `up` refuses to start while that owner runs, and stops the children of a dead one.
//!
//! One concept per module: `child` (spawning one child and relaying its output with a prefix), `pid_file` (the
//! owning `up` and the pids of its children; refusing a second `up`, stopping leftovers of a killed one), `ready` (starting a stage and waiting for
//! its health URLs), `restart` (what happens when a child exits: a report, a backoff and a respawn) and `stop`
//! (the stop order and the SIGTERM-then-SIGKILL escalation). This module holds the state they all share.

mod child;
mod listen;
mod pid_file;
mod ping;
mod ready;
mod restart;
mod stop;

pub use child::{colour_wanted, prefix_line};
pub use pid_file::PID_FILE;
pub use restart::backoff;
pub use stop::STOP_GRACE;

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::plan::ChildSpec;

/// Why `up` stopped before or instead of running normally.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(
        "another `scalelab up` (pid {pid}: {command}) is running this lab, as {} says; nothing was started or \
         stopped. Stop it with Ctrl-C in its terminal or `kill {pid}`, then run `up` again",
        pid_file.display()
    )]
    AlreadyRunning {
        pid: u32,
        command: String,
        pid_file: PathBuf,
    },
    #[error("cannot start {name} ({binary}): {source}")]
    Spawn {
        name: String,
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("{name} exited ({status}) before it was ready; its last log lines:\n{tail}")]
    DiedBeforeReady {
        name: String,
        status: String,
        tail: String,
    },
    #[error("not ready within {timeout:?}: {}; their last log lines:\n{tail}", waiting.join("; "))]
    NotReady {
        /// What each child that is not ready still lacks.
        waiting: Vec<String>,
        timeout: Duration,
        tail: String,
    },
    #[error("not ready within {timeout:?}: {what}")]
    StillWaiting { what: String, timeout: Duration },
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
    /// What the last readiness check found missing, for the message when the deadline passes.
    waiting: Option<String>,
    /// The child's last lines of output, unprefixed, for the report of a child that fails its start.
    tail: Arc<Mutex<VecDeque<String>>>,
    /// The tasks relaying its stdout and stderr; awaited after an exit so the tail holds its last words.
    relays: Vec<JoinHandle<()>>,
}

/// How many of a child's last lines the report of a failed start repeats.
const TAIL_LINES: usize = 12;

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
                waiting: None,
                tail: Arc::default(),
                relays: Vec::new(),
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
}
