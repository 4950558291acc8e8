//! The writer thread and the per-thread buffers it empties.
//!
//! A request appends its line to its thread's buffer (a mutex only this thread and the writer
//! ever take, the writer for a copy every 100 ms). A buffer that reaches `BATCH_BYTES` is
//! handed to the writer through a bounded queue; the writer also sweeps every buffer every
//! `INTERVAL`, and on demand (`flush`). Each batch is one `write`. When the queue is full (the
//! disk or standard error is slow) the batch is dropped and counted: a request never waits for
//! the log, and memory for pending lines stays under `(QUEUED_BATCHES + threads) * BATCH_BYTES`.

use super::sink::Sink;
use scalelab_common::sync::lock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A thread's buffer is handed over once it holds this much.
pub(super) const BATCH_BYTES: usize = 64 * 1024;
/// Full batches waiting for the writer; beyond them, lines are dropped.
const QUEUED_BATCHES: usize = 16;
/// How often the writer sweeps the threads' buffers: the longest a line waits.
const INTERVAL: Duration = Duration::from_millis(100);

/// Lines waiting to be written, and how many.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) bytes: Vec<u8>,
    pub(super) lines: u64,
}

impl Batch {
    fn with_capacity() -> Batch {
        Batch {
            // A line rarely passes 1 KiB, so a batch seldom grows past this.
            bytes: Vec::with_capacity(BATCH_BYTES + 4096),
            lines: 0,
        }
    }

    /// Takes the lines out, leaving a fresh buffer behind.
    pub(super) fn take(&mut self) -> Batch {
        std::mem::replace(self, Batch::with_capacity())
    }
}

enum Message {
    Batch(Batch),
    /// Look at the flush and reopen requests now rather than at the next sweep.
    Wake,
}

/// Lines written and lines lost, exposed as Prometheus counters.
pub(super) struct Counters {
    pub(super) written: prometheus::IntCounter,
    pub(super) dropped: prometheus::IntCounter,
}

/// What the request threads and the writer share.
pub(super) struct Writer {
    queue: SyncSender<Message>,
    /// Every thread's buffer, for the sweeps.
    buffers: Mutex<Vec<Arc<Mutex<Batch>>>>,
    reopen: AtomicBool,
    /// A new target a reload opened, for the writer to take at its next wake.
    next_sink: Mutex<Option<Sink>>,
    /// Flush tickets asked for and the last one the writer finished.
    flush_asked: AtomicU64,
    flushed: AtomicU64,
    pub(super) counters: Counters,
}

impl Writer {
    /// Starts the writer thread on `sink`.
    pub(super) fn start(sink: Sink, counters: Counters) -> std::io::Result<Arc<Writer>> {
        let (queue, receiver) = std::sync::mpsc::sync_channel(QUEUED_BATCHES);
        let writer = Arc::new(Writer {
            queue,
            buffers: Mutex::new(Vec::new()),
            reopen: AtomicBool::new(false),
            next_sink: Mutex::new(None),
            flush_asked: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            counters,
        });
        let running = writer.clone();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || running.run(receiver, sink))?;
        Ok(writer)
    }

    /// A new buffer for the calling thread, registered for the sweeps.
    pub(super) fn register(&self) -> Arc<Mutex<Batch>> {
        let buffer = Arc::new(Mutex::new(Batch::with_capacity()));
        lock(&self.buffers).push(buffer.clone());
        buffer
    }

    /// Queues a full batch, or drops and counts it when the writer is behind.
    pub(super) fn hand_over(&self, batch: Batch) {
        match self.queue.try_send(Message::Batch(batch)) {
            Ok(()) => {}
            Err(TrySendError::Full(Message::Batch(batch)))
            | Err(TrySendError::Disconnected(Message::Batch(batch))) => {
                self.counters.dropped.inc_by(batch.lines);
            }
            Err(_) => {}
        }
    }

    /// Asks for the file to be opened again at its path (after a rotation).
    pub(super) fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
        self.wake();
    }

    /// Hands the writer a new target (a reload changed the path); the lines recorded before
    /// it takes the new one still go to the old one. `flush` afterwards waits for the switch.
    pub(super) fn retarget(&self, sink: Sink) {
        *lock(&self.next_sink) = Some(sink);
        self.wake();
    }

    /// Writes every line recorded before the call; false if that took longer than `bound`
    /// (the sink is stuck).
    pub(super) fn flush(&self, bound: Duration) -> bool {
        let ticket = self.flush_asked.fetch_add(1, Ordering::AcqRel) + 1;
        self.wake();
        let deadline = Instant::now() + bound;
        while self.flushed.load(Ordering::Acquire) < ticket {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    fn wake(&self) {
        // A full queue means the writer is awake anyway and sees the request after its batch.
        let _ = self.queue.try_send(Message::Wake);
    }

    fn run(&self, receiver: Receiver<Message>, mut sink: Sink) {
        let mut next_sweep = Instant::now() + INTERVAL;
        let mut failing = false;
        loop {
            match receiver.recv_timeout(next_sweep.saturating_duration_since(Instant::now())) {
                Ok(Message::Batch(batch)) => self.write(&mut sink, batch, &mut failing),
                Ok(Message::Wake) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if self.reopen.swap(false, Ordering::AcqRel) {
                match sink.reopen() {
                    Ok(()) => tracing::info!("access log reopened"),
                    Err(error) => {
                        tracing::warn!(%error, "cannot reopen the access log; writing to the old file")
                    }
                }
            }
            let next = lock(&self.next_sink).take();
            if let Some(next) = next {
                // The lines recorded before the reload belong to the old target.
                self.write_pending(&receiver, &mut sink, &mut failing);
                sink = next;
                tracing::info!("access log target changed");
            }
            let asked = self.flush_asked.load(Ordering::Acquire);
            if Instant::now() >= next_sweep || asked > self.flushed.load(Ordering::Acquire) {
                self.write_pending(&receiver, &mut sink, &mut failing);
                self.flushed.fetch_max(asked, Ordering::AcqRel);
                next_sweep = Instant::now() + INTERVAL;
            }
        }
    }

    /// Writes the queued batches, then every thread's buffer.
    fn write_pending(&self, receiver: &Receiver<Message>, sink: &mut Sink, failing: &mut bool) {
        // Queued batches first, so each thread's lines stay in order.
        while let Ok(message) = receiver.try_recv() {
            if let Message::Batch(batch) = message {
                self.write(sink, batch, failing);
            }
        }
        let swept = self.sweep();
        self.write(sink, swept, failing);
    }

    /// The lines of every thread's buffer, as one batch.
    fn sweep(&self) -> Batch {
        let mut swept = Batch::default();
        for buffer in lock(&self.buffers).iter() {
            let mut buffer = lock(buffer);
            swept.bytes.extend_from_slice(&buffer.bytes);
            swept.lines += buffer.lines;
            buffer.bytes.clear();
            buffer.lines = 0;
        }
        swept
    }

    fn write(&self, sink: &mut Sink, batch: Batch, failing: &mut bool) {
        if batch.lines == 0 {
            return;
        }
        match sink.write(&batch.bytes) {
            Ok(()) => {
                self.counters.written.inc_by(batch.lines);
                if std::mem::take(failing) {
                    tracing::info!("access log writable again");
                }
            }
            Err(error) => {
                self.counters.dropped.inc_by(batch.lines);
                if !std::mem::replace(failing, true) {
                    tracing::warn!(%error, "cannot write the access log; dropping lines (scalelab_access_log_dropped_lines_total)");
                }
            }
        }
    }
}
