//! The access log: one line per request (`[proxy] access_log`), at a cost close to nginx's.
//!
//! `format` writes a line straight into the calling thread's buffer with no allocation;
//! `writer` batches the buffers into one `write` when a buffer fills or every 100 ms, on a
//! thread of its own, and drops (and counts) lines rather than ever making a request wait;
//! `sink` is standard error or a file that SIGUSR1 reopens. `flush` runs before the process
//! exits, so no line is lost on SIGTERM. The settings are live: `reconfigure` (called by a
//! reload) switches the path, the format and `enabled` without a restart.
//!
//! Hand-rolled rather than through `tracing`: a `tracing` event formats through `fmt` and
//! writes one line per event on the request's thread, which cost about 24 µs per request
//! (issue 10), and non-blocking appenders such as `tracing-appender` still format per event
//! into a fresh `String` and have no per-thread batching or reopen.

mod format;
mod sink;
mod writer;

#[cfg(test)]
mod tests;

pub use format::Line;

use crate::config::{AccessLogFormat, AccessLogSettings};
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use writer::{Batch, Counters, Writer};

/// Why the access log could not start.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    #[error("cannot open the access log {path}: {source}")]
    Open {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the access-log writer: {0}")]
    Thread(std::io::Error),
    #[error("cannot build the access-log metrics: {0}")]
    Metrics(prometheus::Error),
}

struct AccessLog {
    /// `AccessLogFormat` as `FORMAT_TEXT` or `FORMAT_JSON`, so a reload can change it.
    format: AtomicU8,
    enabled: AtomicBool,
    /// The target the writer runs with (`None`: standard error), which a reload compares.
    path: Mutex<Option<PathBuf>>,
    writer: Arc<Writer>,
}

const FORMAT_TEXT: u8 = 0;
const FORMAT_JSON: u8 = 1;

fn format_code(format: AccessLogFormat) -> u8 {
    match format {
        AccessLogFormat::Text => FORMAT_TEXT,
        AccessLogFormat::Json => FORMAT_JSON,
    }
}

/// The longest a reload waits for the writer to take a new target.
const SWITCH_BOUND: Duration = Duration::from_secs(2);

static LOG: OnceLock<AccessLog> = OnceLock::new();

thread_local! {
    /// This thread's buffer in the process's log.
    static BUFFER: RefCell<Option<Arc<Mutex<Batch>>>> = const { RefCell::new(None) };
}

/// Opens the log and starts its writer; until then, and when the settings turn it off,
/// `record` does nothing. Called once per process (later calls keep the first log).
///
/// # Errors
/// The file cannot be opened, or the writer thread cannot start.
pub fn init(settings: &AccessLogSettings) -> Result<(), AccessLogError> {
    if !settings.enabled || LOG.get().is_some() {
        return Ok(());
    }
    let sink = open(settings)?;
    let counters = Counters {
        written: counter(
            "scalelab_access_log_lines_total",
            "Access-log lines written.",
        )?,
        dropped: counter(
            "scalelab_access_log_dropped_lines_total",
            "Access-log lines dropped because the log could not keep up or could not be \
             written (full disk, closed standard error).",
        )?,
    };
    let writer = Writer::start(sink, counters).map_err(AccessLogError::Thread)?;
    let _ = LOG.set(AccessLog {
        format: AtomicU8::new(format_code(settings.format)),
        enabled: AtomicBool::new(true),
        path: Mutex::new(settings.path.clone()),
        writer,
    });
    Ok(())
}

fn open(settings: &AccessLogSettings) -> Result<sink::Sink, AccessLogError> {
    sink::Sink::open(settings.path.as_deref()).map_err(|source| AccessLogError::Open {
        path: settings.path.clone().unwrap_or_default(),
        source,
    })
}

/// Applies a reload's settings: a new path is opened here (so a file that cannot be opened
/// leaves the running log as it was and is reported) and handed to the writer, which writes
/// the lines recorded before it to the old target; returns once the writer took it, so the
/// next request's line lands in the new file. A log off since start begins here.
///
/// # Errors
/// The new file cannot be opened, or the writer cannot start.
pub fn reconfigure(settings: &AccessLogSettings) -> Result<(), AccessLogError> {
    let Some(log) = LOG.get() else {
        return init(settings);
    };
    if settings.enabled {
        let mut path = scalelab_common::sync::lock(&log.path);
        if *path != settings.path {
            log.writer.retarget(open(settings)?);
            path.clone_from(&settings.path);
            if !log.writer.flush(SWITCH_BOUND) {
                tracing::warn!("the access-log writer is slow to take its new target");
            }
        }
    }
    log.format
        .store(format_code(settings.format), Ordering::Relaxed);
    log.enabled.store(settings.enabled, Ordering::Relaxed);
    Ok(())
}

fn counter(name: &str, help: &str) -> Result<prometheus::IntCounter, AccessLogError> {
    let counter = prometheus::IntCounter::new(name, help).map_err(AccessLogError::Metrics)?;
    if let Err(error) = prometheus::register(Box::new(counter.clone())) {
        tracing::error!(metric = name, %error, "cannot register metric");
    }
    Ok(counter)
}

/// Appends one request's line to this thread's buffer.
pub fn record(line: &Line<'_>) {
    let Some(log) = LOG.get() else { return };
    if !log.enabled.load(Ordering::Relaxed) {
        return;
    }
    let format = match log.format.load(Ordering::Relaxed) {
        FORMAT_JSON => AccessLogFormat::Json,
        _ => AccessLogFormat::Text,
    };
    BUFFER.with(|slot| {
        let mut slot = slot.borrow_mut();
        let buffer = slot.get_or_insert_with(|| log.writer.register());
        let full = {
            let mut batch = scalelab_common::sync::lock(buffer);
            format::write_line(format, line, &mut batch.bytes);
            batch.lines += 1;
            (batch.bytes.len() >= writer::BATCH_BYTES).then(|| batch.take())
        };
        if let Some(full) = full {
            log.writer.hand_over(full);
        }
    });
}

/// Writes every line recorded so far; false if the sink did not take them within `bound`.
pub fn flush(bound: Duration) -> bool {
    LOG.get().is_none_or(|log| log.writer.flush(bound))
}

/// Reopens the log file on every SIGUSR1, for log rotation (rename the file, then signal).
pub async fn reopen_on_sigusr1() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut signals) = signal(SignalKind::user_defined1()) else {
        tracing::error!("cannot install the SIGUSR1 handler; the access log cannot be reopened");
        return;
    };
    while signals.recv().await.is_some() {
        if let Some(log) = LOG.get() {
            log.writer.reopen();
        }
    }
}
