//! Where the proxy's log lines (tracing events, Pingora's `log` records) go: standard error,
//! through `tracing-appender`'s non-blocking writer.
//!
//! A thread that logs only queues its line; the appender's own thread writes it. Pingora logs
//! on the request path (an upstream connection it could not reuse, for one), so with a plain
//! writer a standard error nobody reads (a full pipe) would stop every request thread that
//! logs once the pipe filled. The queue is lossy: when it is full, lines are dropped rather
//! than waited for. `flush` writes what is queued before the process exits. `journald` formats
//! the lines for journald when systemd connected standard error to it.

pub mod journald;

use scalelab_common::sync::lock;
use std::sync::{Mutex, OnceLock};
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

/// Lines queued for standard error before new ones are dropped.
const QUEUED_LINES: usize = 64 * 1024;

/// The appender thread's guard: dropping it writes the queued lines (waiting at most 1 s).
static GUARD: OnceLock<Mutex<Option<WorkerGuard>>> = OnceLock::new();

/// The writer for the tracing subscriber; its thread is started on the first call.
pub fn stderr_writer() -> NonBlocking {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    let _ = GUARD.set(Mutex::new(Some(guard)));
    writer
}

/// Writes every queued line (at most 1 s when standard error is stuck); lines logged after
/// this are dropped, so call it only on the way out.
pub fn flush() {
    if let Some(guard) = GUARD.get() {
        drop(lock(guard).take());
    }
}
