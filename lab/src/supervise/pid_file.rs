//! The pid file: `<data_dir>/scalelab-up.pids` names the `up` that owns the lab and lists its running children,
//! because a SIGKILLed `scalelab` cannot stop them itself. The next `up` reads it: while the owner still runs, it
//! refuses to start (two labs on one data dir and one set of ports cannot both work, and stopping the first one's
//! children would kill a lab someone is using); once the owner is gone, the children it lists are leftovers and
//! are stopped.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{Supervisor, UpError};

/// The name of the pid file in the data dir.
pub const PID_FILE: &str = "scalelab-up.pids";

/// The first field of the owner's line; a child's line starts with its pid, so old files without an owner line
/// still parse.
const OWNER: &str = "up";

/// The `up` process that wrote a pid file: its pid and its start time (in clock ticks after boot, from
/// `/proc/<pid>/stat`), so a pid reused by another process after the owner died is not taken for the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub started: u64,
}

impl Owner {
    /// This process.
    fn me() -> Option<Owner> {
        let pid = std::process::id();
        Some(Owner {
            pid,
            started: start_time(pid)?,
        })
    }

    /// The line that names the owner in the pid file.
    fn line(self) -> String {
        format!("{OWNER} {} {}\n", self.pid, self.started)
    }

    /// The owner named by the pid file's text, if it has an owner line.
    pub fn parse(text: &str) -> Option<Owner> {
        let line = text.lines().find(|line| line.starts_with("up "))?;
        let mut fields = line.split(' ').skip(1);
        Some(Owner {
            pid: fields.next()?.parse().ok()?,
            started: fields.next()?.parse().ok()?,
        })
    }

    /// Whether the owner still runs: a process with its pid and its start time exists and has not exited.
    fn alive(self) -> bool {
        Some(self) != Owner::me() && start_time(self.pid) == Some(self.started)
    }
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`), or `None` if it does not run (a zombie has
/// exited: only its parent has not collected it yet).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces; the fields after it start with the state.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    // Field 22 overall is the 20th after the command name (state is field 3).
    fields.get(19)?.parse().ok()
}

/// The command line of process `pid`, with spaces between the arguments, for the message naming a running `up`.
fn command_line(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = raw
        .split(|&byte| byte == 0)
        .filter(|word| !word.is_empty())
        .map(|word| String::from_utf8_lossy(word).into_owned())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

impl Supervisor {
    /// Takes the lab's data dir for this `up`: refuses while another `up` that owns the pid file still runs
    /// (killing nothing), else stops the children a dead owner left running and writes a pid file naming this
    /// process as the owner, so a second `up` started before any child is spawned is refused too.
    ///
    /// # Errors
    /// `AlreadyRunning` when the pid file's owner still runs.
    pub fn claim(&self) -> Result<(), UpError> {
        if let Ok(text) = std::fs::read_to_string(&self.pid_file) {
            if let Some(owner) = Owner::parse(&text).filter(|owner| owner.alive()) {
                return Err(UpError::AlreadyRunning {
                    pid: owner.pid,
                    command: command_line(owner.pid).unwrap_or_else(|| "scalelab up".to_owned()),
                    pid_file: self.pid_file.clone(),
                });
            }
            self.stop_leftovers(&text);
        }
        self.write_pid_file();
        Ok(())
    }

    /// Stops children listed in `text` that a previous `up`, killed before it could stop them, left running.
    fn stop_leftovers(&self, text: &str) {
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

    /// Records this `up` and its running children's pids, so the next `up` can tell whether this one still runs
    /// and stop the children if it was SIGKILLed.
    pub(super) fn write_pid_file(&self) {
        let owner = Owner::me().map(Owner::line).unwrap_or_default();
        let children: String = self
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
        if let Err(error) = std::fs::write(&self.pid_file, owner + &children) {
            self.say(&format!(
                "warning: cannot write {}: {error}",
                self.pid_file.display()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_owner_line_is_found_among_the_children() {
        let text = "up 4242 123456\n4243 proxy /bin/scalelab-proxy\n";
        assert_eq!(
            Owner::parse(text),
            Some(Owner {
                pid: 4242,
                started: 123_456
            })
        );
        // A file written before owners were recorded, or a damaged line, names no owner.
        assert_eq!(Owner::parse("4243 proxy /bin/scalelab-proxy\n"), None);
        assert_eq!(Owner::parse("up 4242\n"), None);
        assert_eq!(Owner::parse("up x 1\n"), None);
    }

    #[test]
    fn only_a_running_process_with_the_same_start_time_is_the_owner() {
        // The test's parent (cargo's test runner or a shell) runs, with a start time /proc knows.
        let parent = std::os::unix::process::parent_id();
        let started = start_time(parent).unwrap();
        assert!(Owner {
            pid: parent,
            started
        }
        .alive());
        // The same pid with another start time is a reused pid, not the owner.
        assert!(!Owner {
            pid: parent,
            started: started + 1
        }
        .alive());
        // This process is never another `up`.
        assert!(!Owner::me().unwrap().alive());
        assert_eq!(start_time(u32::MAX), None);
    }
}
