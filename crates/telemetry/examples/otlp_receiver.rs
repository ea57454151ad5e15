//! The in-process OTLP receiver of [`telemetry::testkit`] as a process, for scripts that need to
//! know what a service really exported (scripts/check-promql-live.py compares the exemplars
//! Prometheus stored with the spans the shop exported).
//!
//! ```sh
//! cargo run -p telemetry --example otlp_receiver -- spans.tsv
//! # prints "grpc=http://127.0.0.1:PORT http=http://127.0.0.1:PORT", then keeps spans.tsv
//! # up to date (every 200 ms): one line per received span, "trace_id span_id kind name"
//! ```
//!
//! Runs until killed. Not a collector: it stores everything in memory and forwards nothing.

use std::io::Write as _;
use std::time::Duration;

use telemetry::testkit::OtlpReceiver;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::io::Result<()> {
    let Some(out) = std::env::args().nth(1) else {
        eprintln!("usage: otlp_receiver SPANS_FILE");
        std::process::exit(2);
    };
    let receiver = OtlpReceiver::start().await?;
    let mut stdout = std::io::stdout();
    writeln!(
        stdout,
        "grpc={} http={}",
        receiver.grpc_endpoint(),
        receiver.http_endpoint()
    )?;
    stdout.flush()?;
    let partial = format!("{out}.partial");
    let mut written = usize::MAX;
    loop {
        let spans = receiver.spans();
        if spans.len() != written {
            let mut text = String::new();
            for span in &spans {
                text.push_str(&format!(
                    "{} {} {:?} {}\n",
                    span.trace_id, span.span_id, span.kind, span.name
                ));
            }
            std::fs::write(&partial, text)?;
            std::fs::rename(&partial, &out)?;
            written = spans.len();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
