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

/// Destination of formatted log lines. Cheap to clone.
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
    writer: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LogSink {
    /// A sink writing to the process's stdout from a background thread.
    pub fn stdout() -> Self {
        let inner = Arc::new(SinkInner {
            buffer: Mutex::new(Vec::with_capacity(64 * 1024)),
            wake: Condvar::new(),
            memory: None,
            dropped_lines: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            writer: Mutex::new(None),
        });
        let worker = Arc::clone(&inner);
        let handle = std::thread::Builder::new()
            .name("telemetry-stdout".into())
            .spawn(move || worker.run_writer())
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
        if buffer.len() + lines.len() > MAX_BUFFERED_BYTES || self.inner.closed.load(Ordering::Relaxed) {
            drop(buffer);
            self.inner.dropped_lines.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let was_empty = buffer.is_empty();
        buffer.extend_from_slice(lines);
        drop(buffer);
        if was_empty {
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
        self.inner.flush_now();
    }
}

impl SinkInner {
    fn run_writer(&self) {
        let mut pending = Vec::with_capacity(64 * 1024);
        loop {
            {
                let mut buffer = lock(&self.buffer);
                while buffer.is_empty() && !self.closed.load(Ordering::Relaxed) {
                    buffer = self
                        .wake
                        .wait_timeout(buffer, Duration::from_millis(200))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                std::mem::swap(&mut *buffer, &mut pending);
            }
            if !pending.is_empty() {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(&pending);
                let _ = stdout.flush();
                pending.clear();
            }
            if self.closed.load(Ordering::Relaxed) && lock(&self.buffer).is_empty() {
                return;
            }
        }
    }

    fn flush_now(&self) {
        let pending = std::mem::take(&mut *lock(&self.buffer));
        if !pending.is_empty() {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(&pending);
            let _ = stdout.flush();
        }
    }
}
