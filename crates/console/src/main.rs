//! `console`: the standalone telemetry console. Receives OTLP/gRPC and OTLP/HTTP (protobuf)
//! from any service and serves the console UI to loopback clients. Settings: `console --help`.

use std::io::Write as _;
use std::process::ExitCode;

use console::config::{SETTINGS_HELP, StandaloneConfig};
use console::standalone::Standalone;

fn line(message: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{message}");
    let _ = out.flush();
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        line(&format!(
            "console: the standalone telemetry console (OTLP receiver + UI)\n\nUsage: console\n\n{SETTINGS_HELP}"
        ));
        return ExitCode::SUCCESS;
    }
    if let Some(unknown) = args.first() {
        eprintln!(
            "console: unknown argument {unknown:?} (settings are environment variables; see --help)"
        );
        return ExitCode::from(2);
    }
    let config = match StandaloneConfig::from_lookup(|k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("console: {error}");
            return ExitCode::from(2);
        }
    };
    let result = telemetry::serve::block_on(async move {
        let signals = telemetry::serve::ShutdownSignals::install()?;
        let console = Standalone::start(&config).await?;
        line(
            &serde_json::json!({
                "level": "INFO",
                "target": "console::startup",
                "message": "telemetry console listening",
                "console.url": console.url(),
                "otlp.grpc": format!("http://{}", console.otlp_grpc),
                "otlp.http": format!("http://{}", console.otlp_http),
            })
            .to_string(),
        );
        signals.received().await;
        console.stop().await;
        Ok::<(), std::io::Error>(())
    });
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) | Err(error) => {
            eprintln!("console: {error}");
            ExitCode::FAILURE
        }
    }
}
