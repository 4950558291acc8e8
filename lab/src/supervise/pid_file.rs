//! The pid file: `<data_dir>/scalelab-up.pids` lists the running children, because a SIGKILLed `scalelab`
//! cannot stop them itself; the next `up` reads it and stops any that still run.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::Supervisor;

/// The name of the pid file in the data dir.
pub const PID_FILE: &str = "scalelab-up.pids";

impl Supervisor {
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
            // Only a process still running that very binary: the pid may have been reused by something else. The
            // binary may be a symlink (Debian's redis-server), while /proc shows the file it points to.
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            let binary = std::fs::canonicalize(binary).unwrap_or_else(|_| binary.into());
            if exe.as_deref() == Some(binary.as_path()) {
                self.say(&format!(
                    "stopping {name} (pid {pid}) left over from a previous `scalelab up`"
                ));
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }

    /// Records the running children's pids, so the next `up` can stop them if this one is SIGKILLed.
    pub(super) fn write_pid_file(&self) {
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
}
