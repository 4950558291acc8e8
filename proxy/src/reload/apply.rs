//! Reload orchestration: the one path every trigger (file watcher, SIGHUP, admin API) takes
//! from file text to a serving snapshot. It lives here, next to the journal and the diff,
//! rather than in the state holder, so that `state` only holds and `health` only checks.

use super::{diff, now, problems, sha256_hex, Effect, Outcome, Record, Trigger};
use crate::config::{self, ConfigError};

use crate::state::{Loaded, Shared};
use crate::systemd;
use std::time::Instant;

/// Re-reads the config file and swaps in a new snapshot; on any error the running one stays.
pub fn reload(shared: &Shared, trigger: Trigger) -> Record {
    apply(shared, trigger, config::read(shared.config_path()))
}

/// Applies file text that was already read (the watcher reads it itself to decide whether to
/// retry). All or nothing: validate, build the new snapshot, check the servers it adds, then
/// publish it with one atomic store, so each request sees either the old config or the new
/// one. The startup part (`config::Startup`) keeps its running values; each field the file
/// changes there is reported as "restart required" and stays pending until a restart.
/// Every call that is not a no-op lands in the journal.
///
/// A file event whose text hashes the same as the running config is skipped without a journal
/// entry, because editors and our own reads produce such events all the time.
pub fn apply(shared: &Shared, trigger: Trigger, read: Result<String, ConfigError>) -> Record {
    let _guard = shared.reload_lock();
    // A file event with the running text is not a reload anyone asked for: the service
    // manager hears only of the others (under the lock, so two reloads never interleave).
    let heard = trigger != Trigger::File
        || read
            .as_ref()
            .map_or(true, |text| sha256_hex(text) != shared.loaded().sha256);
    if heard {
        systemd::reloading();
    }
    let record = apply_locked(shared, trigger, read);
    if heard {
        systemd::reloaded(&record, shared.snapshot().generation);
    }
    record
}

/// `apply` under the reload lock.
fn apply_locked(shared: &Shared, trigger: Trigger, read: Result<String, ConfigError>) -> Record {
    let started = Instant::now();
    let (time, unix_ms) = now();
    let running = shared.loaded();
    let mut record = Record {
        generation: running.snapshot.generation,
        time,
        unix_ms,
        trigger,
        result: Outcome::Rejected,
        sha256: String::new(),
        duration_us: 0,
        errors: Vec::new(),
        changes: Vec::new(),
        dns: None,
    };
    let parsed = read.and_then(|text| {
        record.sha256 = sha256_hex(&text);
        // A file event whose text is the running one changes nothing. A certificate event, and
        // a reload someone asked for (SIGHUP, the admin API), parse even then: the parse reads
        // the certificate and key files again, as nginx's reload does, which is the way to
        // apply a certificate the watcher could not see change (a file changed through a link
        // elsewhere, a network file system).
        if record.sha256 == running.sha256 && trigger == Trigger::File {
            return Ok(None);
        }
        config::parse(shared.config_path(), &text).map(Some)
    });
    let config = match parsed {
        Ok(Some(config)) => config,
        Ok(None) => return unchanged(shared, record, started),
        Err(error) => {
            record.errors = problems(&error);
            record.duration_us = elapsed_us(started);
            for problem in &record.errors {
                tracing::error!(
                    trigger = trigger.name(),
                    path = %problem.path,
                    line = problem.line,
                    "config reload rejected: {}",
                    problem.message
                );
            }
            tracing::warn!(
                generation = record.generation,
                "keeping the running config after a rejected reload"
            );
            shared.journal().push(record.clone());
            return record;
        }
    };

    record.changes = diff(&running.snapshot.config, &config);
    // With the running text read again, only what it names (certificates) can differ; the
    // restart-only fields it changed were reported by the reload that read it first.
    let same_text = record.sha256 == running.sha256;
    let nothing_to_apply = !record
        .changes
        .iter()
        .any(|change| change.effect == Effect::Applied);
    if (trigger == Trigger::Certificate && record.changes.is_empty())
        || (same_text && nothing_to_apply)
    {
        // The files were touched, or read again, but hold what is already served.
        return unchanged(shared, record, started);
    }
    // The startup part keeps the values the process runs with; those the file changes stay
    // pending (shown by `GET /admin/config` and `/admin/reloads`) until a restart.
    let running_startup = running.snapshot.config.startup();
    let pending_restart = running_startup.pending(&config.startup());
    let config = config.with_startup(running_startup);
    // The access log is live: a new path or format takes effect before the new config serves,
    // and a file that cannot be opened rejects the reload with the running log kept.
    if config.proxy().access_log != running.snapshot.config.proxy().access_log {
        if let Err(error) = crate::access_log::reconfigure(&config.proxy().access_log) {
            record.errors = vec![super::Problem::new(
                "proxy.access_log".to_string(),
                error.to_string(),
            )];
            record.changes.clear();
            record.duration_us = elapsed_us(started);
            tracing::error!(%error, "config reload rejected: the access log cannot change");
            shared.journal().push(record.clone());
            return record;
        }
    }
    // Tracing is live too: a changed exporter is built before the new config serves, and one
    // that cannot be built rejects the reload with the running exporter kept.
    if config.tracing() != running.snapshot.config.tracing() {
        if let Err(error) = crate::trace::reconfigure(config.tracing()) {
            record.errors = vec![super::Problem::new(
                "tracing".to_string(),
                error.to_string(),
            )];
            record.changes.clear();
            record.duration_us = elapsed_us(started);
            tracing::error!(%error, "config reload rejected: the trace exporter cannot change");
            shared.journal().push(record.clone());
            return record;
        }
    }
    let generation = super::swap::swap(shared, &running.snapshot, config, |snapshot| Loaded {
        snapshot,
        sha256: record.sha256.clone(),
        loaded_at: record.time.clone(),
        loaded_unix_ms: record.unix_ms,
        pending_restart,
    });
    record.generation = generation;
    record.result = Outcome::Applied;
    record.duration_us = elapsed_us(started);
    let restart_required = record.restart_required();
    tracing::info!(
        generation,
        trigger = trigger.name(),
        changes = record.changes.len(),
        took_us = record.duration_us,
        "config reloaded"
    );
    if !restart_required.is_empty() {
        tracing::warn!(
            fields = ?restart_required,
            "changed fields need a restart and were not applied"
        );
    }
    shared.journal().push(record.clone());
    record
}

fn elapsed_us(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Ends a reload that changes nothing. Only one someone asked for (SIGHUP, the admin API) is
/// logged and journaled: file and certificate events come from editors and our own reads all
/// the time.
fn unchanged(shared: &Shared, mut record: Record, started: Instant) -> Record {
    record.result = Outcome::Unchanged;
    record.duration_us = elapsed_us(started);
    if !matches!(record.trigger, Trigger::File | Trigger::Certificate) {
        tracing::info!(
            trigger = record.trigger.name(),
            "config file unchanged; nothing to reload"
        );
        shared.journal().push(record.clone());
    }
    record
}
