//! One child process: spawned in its own process group with piped output, each line of which is copied to our
//! stdout behind a `[name]` prefix coloured by the child's index; its last lines are kept for the report of a
//! failed start.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use super::{Event, Supervisor, UpError, TAIL_LINES};

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

impl Supervisor {
    /// Starts the child of slot `index` in its own process group, relays its output and reports its exit as an
    /// event.
    pub(super) fn spawn(&mut self, index: usize) -> Result<(), UpError> {
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
            .envs(slot.spec.env.iter().map(|(name, value)| (name, value)))
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
        slot.waiting = None;
        scalelab_common::sync::lock(&slot.tail).clear();
        let name = slot.spec.name.clone();
        slot.relays.clear();
        if let Some(stdout) = child.stdout.take() {
            let relay = Relay::new(&name, index, colour, &slot.tail);
            slot.relays.push(tokio::spawn(relay.copy(stdout)));
        }
        if let Some(stderr) = child.stderr.take() {
            let relay = Relay::new(&name, index, colour, &slot.tail);
            slot.relays.push(tokio::spawn(relay.copy(stderr)));
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
}

/// Where one output stream of a child goes: our stdout behind its prefix, and its tail.
struct Relay {
    name: String,
    index: usize,
    colour: bool,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Relay {
    fn new(name: &str, index: usize, colour: bool, tail: &Arc<Mutex<VecDeque<String>>>) -> Relay {
        Relay {
            name: name.to_owned(),
            index,
            colour,
            tail: Arc::clone(tail),
        }
    }

    /// Copies a child's output to our stdout line by line, prefixed with its name, keeping the last
    /// [`TAIL_LINES`] lines.
    async fn copy(self, stream: impl AsyncRead + Unpin) {
        let mut reader = BufReader::new(stream);
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match reader.read_until(b'\n', &mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    // Children log UTF-8, but a stray byte must not lose the rest of the line.
                    let line = String::from_utf8_lossy(&buffer);
                    let line = line.trim_end_matches(['\n', '\r']);
                    {
                        let mut tail = scalelab_common::sync::lock(&self.tail);
                        if tail.len() == TAIL_LINES {
                            tail.pop_front();
                        }
                        tail.push_back(line.to_owned());
                    }
                    let line = prefix_line(&self.name, self.index, self.colour, line);
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            }
        }
    }
}

impl Supervisor {
    /// The last lines of the child of slot `index`, each behind its uncoloured prefix, after waiting a moment
    /// for its relays to copy what it wrote before it exited (its pipes close when it does).
    pub(super) async fn tail(&mut self, index: usize) -> String {
        let relays = std::mem::take(&mut self.slots[index].relays);
        if self.slots[index].pid.is_none() {
            for relay in relays {
                // A grandchild may hold the pipe open; the tail is then what arrived so far.
                let _ = tokio::time::timeout(RELAY_FLUSH, relay).await;
            }
        } else {
            self.slots[index].relays = relays;
        }
        let slot = &self.slots[index];
        let tail = scalelab_common::sync::lock(&slot.tail);
        if tail.is_empty() {
            return format!("  [{}] (no output)", slot.spec.name);
        }
        tail.iter()
            .map(|line| format!("  {}", prefix_line(&slot.spec.name, index, false, line)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// How long the tail of a dead child waits for the rest of its output.
const RELAY_FLUSH: Duration = Duration::from_secs(1);

/// The exit status in words for the log: an exit code or the name of the killing signal.
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

#[cfg(test)]
mod tests {
    use super::*;

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
