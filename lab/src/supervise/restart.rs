//! A child that exits: reported, and with `--restart` respawned after a backoff that doubles with each quick
//! death and starts over once the child has run long enough to count as healthy.

use std::time::Duration;

use super::{Event, Supervisor, UpError};

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A child that ran this long before dying is considered to have been healthy; its backoff starts over.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// The restart delay after `failures` consecutive quick deaths: 1 s, 2 s, 4 s, ... at most 30 s.
pub fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << failures.min(5))
        .min(MAX_BACKOFF)
}

impl Supervisor {
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

    /// Acts on one event: an exit is reported and, with `--restart`, followed by a respawn after the backoff.
    pub(super) fn handle(&mut self, event: Event) {
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
}
