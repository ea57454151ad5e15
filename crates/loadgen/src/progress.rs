//! The live progress line on a terminal: elapsed / remaining, current rate, errors, p99.
//! Redrawn in place once a second; erased before the summary.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::cli::Limit;
use crate::duration::display_micros;
use crate::runner::Run;

/// Redraws the line until dropped (the task is aborted then).
#[derive(Debug)]
pub(crate) struct Progress {
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub(crate) fn start(run: Arc<Run>) -> Self {
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = (0u64, tokio::time::Instant::now());
            loop {
                tick.tick().await;
                let done = run.stats.done.load(Ordering::Relaxed);
                let errors = run.stats.errors.load(Ordering::Relaxed);
                let now = tokio::time::Instant::now();
                let rate = (done - last.0) as f64 / now.duration_since(last.1).as_secs_f64();
                last = (done, now);
                let elapsed = run.started.elapsed();
                let p99 = run.stats.overall_latency().value_at_quantile(0.99);
                let (fraction, position) = match run.plan.limit {
                    Limit::Duration(total) => (
                        elapsed.as_secs_f64() / total.as_secs_f64(),
                        format!(
                            "{:.0}s / {:.0}s, {:.0}s left",
                            elapsed.as_secs_f64(),
                            total.as_secs_f64(),
                            total.saturating_sub(elapsed).as_secs_f64()
                        ),
                    ),
                    Limit::Requests(total) => (
                        done as f64 / total as f64,
                        format!("{done} / {total} requests, {:.0}s", elapsed.as_secs_f64()),
                    ),
                };
                let filled = ((fraction.clamp(0.0, 1.0)) * 20.0) as usize;
                let bar: String = "#".repeat(filled) + &"-".repeat(20 - filled);
                let share = if done == 0 {
                    0.0
                } else {
                    100.0 * errors as f64 / done as f64
                };
                let mut stdout = std::io::stdout().lock();
                let _ = write!(
                    stdout,
                    "\r\x1b[2K[{bar}] {position}  {rate:.0} req/s  errors {errors} ({share:.2}%)  p99 {}",
                    display_micros(p99)
                );
                let _ = stdout.flush();
            }
        });
        Self { task }
    }

    /// Stops redrawing and erases the line.
    pub(crate) fn finish(self) {
        self.task.abort();
        let mut stdout = std::io::stdout().lock();
        let _ = write!(stdout, "\r\x1b[2K");
        let _ = stdout.flush();
    }
}
