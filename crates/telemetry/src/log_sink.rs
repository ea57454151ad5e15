//! Where log lines go: stdout through a non-blocking writer thread, or memory (tests).
//!
//! A request never waits for the terminal or a log collector: lines are appended to an
//! in-memory buffer under a short lock and a dedicated thread writes them out. When the
//! buffer holds more than [`MAX_BUFFERED_BYTES`] (stdout blocked), new lines are dropped
//! and counted instead of growing memory or stalling requests.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Bytes buffered for stdout before new lines are dropped (8 MiB).
pub const MAX_BUFFERED_BYTES: usize = 8 * 1024 * 1024;

/// Longest time a line waits in the buffer before the writer thread writes it out.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(20);

/// Buffered bytes at which the writer is woken before its next interval.
const WAKE_THRESHOLD_BYTES: usize = 256 * 1024;

/// Destination of formatted log lines. Cheap to clone.
///
/// After [`LogSink::close`], the writer thread has written everything and new lines are dropped.
#[derive(Debug, Clone)]
pub struct LogSink {
    inner: Arc<SinkInner>,
}

#[derive(Debug)]
struct SinkInner {
    buffer: Mutex<Vec<u8>>,
    wake: Condvar,
    memory: Option<Arc<Mutex<Vec<u8>>>>,
    dropped_lines: AtomicU64,
    closed: AtomicBool,
    writer_idle: AtomicBool,
    writer: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LogSink {
    /// A sink writing to the process's stdout from a background thread.
    pub fn stdout() -> Self {
        Self::writer(std::io::stdout())
    }

    /// A sink writing to any `output` (a file, stderr, `std::io::sink()`) from a background thread.
    pub fn writer(output: impl Write + Send + 'static) -> Self {
        let inner = Arc::new(SinkInner {
            buffer: Mutex::new(Vec::with_capacity(64 * 1024)),
            wake: Condvar::new(),
            memory: None,
            dropped_lines: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            writer_idle: AtomicBool::new(false),
            writer: Mutex::new(None),
        });
        let worker = Arc::clone(&inner);
        let handle = std::thread::Builder::new()
            .name("telemetry-stdout".into())
            .spawn(move || worker.run_writer(output))
            .ok();
        *lock(&inner.writer) = handle;
        Self { inner }
    }

    /// A sink keeping every line in memory, for tests; read it with [`LogSink::captured`].
    pub fn memory() -> Self {
        Self {
            inner: Arc::new(SinkInner {
                buffer: Mutex::new(Vec::new()),
                wake: Condvar::new(),
                memory: Some(Arc::new(Mutex::new(Vec::new()))),
                dropped_lines: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                writer_idle: AtomicBool::new(false),
                writer: Mutex::new(None),
            }),
        }
    }

    /// Everything written so far, for a memory sink (empty for stdout).
    pub fn captured(&self) -> String {
        match &self.inner.memory {
            Some(memory) => String::from_utf8_lossy(&lock(memory)).into_owned(),
            None => String::new(),
        }
    }

    /// Lines dropped because stdout could not keep up.
    pub fn dropped_lines(&self) -> u64 {
        self.inner.dropped_lines.load(Ordering::Relaxed)
    }

    /// Appends complete lines (each ending in `\n`).
    pub(crate) fn write(&self, lines: &[u8]) {
        if let Some(memory) = &self.inner.memory {
            lock(memory).extend_from_slice(lines);
            return;
        }
        let mut buffer = lock(&self.inner.buffer);
        if buffer.len() + lines.len() > MAX_BUFFERED_BYTES
            || self.inner.closed.load(Ordering::Relaxed)
        {
            drop(buffer);
            self.inner.dropped_lines.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let before = buffer.len();
        buffer.extend_from_slice(lines);
        drop(buffer);
        // Waking the writer costs a syscall and a context switch; do it only when a burst has
        // built up, or when the writer went to sleep idle. Otherwise it wakes on its own every
        // FLUSH_INTERVAL while lines keep coming.
        let burst = before < WAKE_THRESHOLD_BYTES && before + lines.len() >= WAKE_THRESHOLD_BYTES;
        if burst || (before == 0 && self.inner.writer_idle.swap(false, Ordering::Relaxed)) {
            self.inner.wake.notify_one();
        }
    }

    /// Writes out everything buffered, then stops the writer thread. Idempotent.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
        self.inner.wake.notify_one();
        if let Some(handle) = lock(&self.inner.writer).take() {
            let _ = handle.join();
        }
    }
}

impl SinkInner {
    fn run_writer(&self, mut output: impl Write) {
        let mut pending = Vec::with_capacity(64 * 1024);
        loop {
            {
                let mut buffer = lock(&self.buffer);
                if buffer.is_empty() && !self.closed.load(Ordering::Relaxed) {
                    // Nothing arrived during a whole interval: sleep until a line arrives.
                    self.writer_idle.store(true, Ordering::Relaxed);
                    while buffer.is_empty() && !self.closed.load(Ordering::Relaxed) {
                        buffer = self
                            .wake
                            .wait_timeout(buffer, Duration::from_secs(1))
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                    self.writer_idle.store(false, Ordering::Relaxed);
                }
                std::mem::swap(&mut *buffer, &mut pending);
            }
            if !pending.is_empty() {
                let _ = output.write_all(&pending);
                let _ = output.flush();
                pending.clear();
            }
            if self.closed.load(Ordering::Relaxed) {
                if lock(&self.buffer).is_empty() {
                    return;
                }
                continue;
            }
            // Let lines accumulate for one interval (or until a burst wakes us).
            let buffer = lock(&self.buffer);
            if buffer.len() < WAKE_THRESHOLD_BYTES {
                let _unused = self
                    .wake
                    .wait_timeout(buffer, FLUSH_INTERVAL)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
    }
}
