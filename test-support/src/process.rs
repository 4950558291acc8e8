//! Child processes that cannot outlive the test that started them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::patience::patient;
use crate::poll::{eventually, eventually_blocking};

/// How long a process stopped with a signal other than SIGKILL gets before it is killed: a
/// failing test must not hang on a process that ignores its stop signal.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// A running child process that is stopped and reaped when the guard is dropped, and whose
/// log is printed then if the test is failing (the log is all a failed run leaves behind).
pub struct ChildGuard {
    child: Child,
    label: String,
    log: Option<PathBuf>,
    tail: Option<usize>,
    stop: Signal,
}

impl ChildGuard {
    /// Spawns `command` with stdout discarded and stderr written to `log`, where the
    /// processes under test write their tracing output.
    pub fn spawn_logged(command: &mut Command, log: &Path, label: &str) -> ChildGuard {
        let file = File::create(log).expect("create the log file");
        let child = command
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|error| panic!("spawn {label}: {error}"));
        ChildGuard::new(child, label).log_file(log)
    }

    /// Guards an already spawned child; `label` names it in messages.
    pub fn new(child: Child, label: &str) -> ChildGuard {
        ChildGuard {
            child,
            label: label.to_owned(),
            log: None,
            tail: None,
            stop: Signal::SIGKILL,
        }
    }

    /// The file the child writes its log to, printed on drop if the test is failing.
    pub fn log_file(mut self, log: &Path) -> ChildGuard {
        self.log = Some(log.to_owned());
        self
    }

    /// Prints only the last `lines` lines of the log, for processes that log a lot.
    pub fn tail(mut self, lines: usize) -> ChildGuard {
        self.tail = Some(lines);
        self
    }

    /// Stops the child with `signal` on drop instead of SIGKILL, for a child that must clean
    /// up after itself (such as `scalelab up`, whose own children would otherwise be orphaned).
    pub fn stop_with(mut self, signal: Signal) -> ChildGuard {
        self.stop = signal;
        self
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits in i32"))
    }

    /// The exit status if the child has exited (it is reaped then).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal)
            .unwrap_or_else(|error| panic!("{signal} to {}: {error}", self.label));
    }

    /// SIGKILL and reap: no chance to clean up, like a crash.
    pub fn kill_hard(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// Waits for the child to exit, failing the test after `deadline` (scaled by patience).
    pub async fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let what = format!("{} to exit", self.label);
        let child = &mut self.child;
        eventually(deadline, &what, || {
            let exited = child.try_wait().expect("try_wait");
            async move { exited }
        })
        .await
    }

    /// [`ChildGuard::wait_exit`] for synchronous tests.
    pub fn wait_exit_blocking(&mut self, deadline: Duration) -> ExitStatus {
        let what = format!("{} to exit", self.label);
        let child = &mut self.child;
        eventually_blocking(deadline, &what, || child.try_wait().expect("try_wait"))
    }

    /// The log so far, empty if there is none.
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default()
    }

    fn print_log(&self) {
        if self.log.is_none() {
            return;
        }
        let log = self.log();
        match self.tail {
            Some(lines) => {
                eprintln!("--- log of {} (last {lines} lines) ---", self.label);
                let tail: Vec<&str> = log.lines().rev().take(lines).collect();
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
            None => eprintln!("--- log of {} ---\n{log}", self.label),
        }
    }

    fn stop(&mut self) {
        // A child that has already been reaped must not be signalled: its pid may belong to
        // another process by now.
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        if self.stop == Signal::SIGKILL {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return;
        }
        let _ = kill(self.pid(), self.stop);
        let end = std::time::Instant::now() + patient(STOP_GRACE);
        while std::time::Instant::now() < end {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(crate::poll::POLL_INTERVAL);
        }
        eprintln!(
            "{} ignored {} for {:?}; killing it",
            self.label,
            self.stop,
            patient(STOP_GRACE)
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            self.print_log();
        }
    }
}
