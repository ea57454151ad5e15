//! The standalone console (the `console` binary): OTLP/gRPC and OTLP/HTTP receivers and the UI,
//! each on its own listener, one [`Console`] behind them.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::StandaloneConfig;
use crate::{Console, receiver};

/// A running standalone console.
#[derive(Debug)]
pub struct Standalone {
    /// Where the UI and JSON API listen (`http://{ui}/_console/`).
    pub ui: SocketAddr,
    /// Where OTLP/gRPC is received.
    pub otlp_grpc: SocketAddr,
    /// Where OTLP/HTTP is received.
    pub otlp_http: SocketAddr,
    /// The console behind them.
    pub console: Console,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

async fn bind(address: SocketAddr, what: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|error| {
        std::io::Error::new(
            error.kind(),
            format!("cannot listen for {what} on {address}: {error}"),
        )
    })
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

impl Standalone {
    /// Binds the three listeners and serves them on the current runtime.
    pub async fn start(config: &StandaloneConfig) -> std::io::Result<Self> {
        let ui = bind(config.ui, "the console UI (APP_CONSOLE_ADDR)").await?;
        let grpc = bind(config.otlp_grpc, "OTLP/gRPC (APP_CONSOLE_OTLP_GRPC_ADDR)").await?;
        let http = bind(config.otlp_http, "OTLP/HTTP (APP_CONSOLE_OTLP_HTTP_ADDR)").await?;
        let (ui_address, grpc_address, http_address) =
            (ui.local_addr()?, grpc.local_addr()?, http.local_addr()?);
        let console = Console::new(config.limits);
        let (stop, watching) = watch::channel(false);
        let ui_app = console.router();
        let mut tasks = Vec::new();
        let until = stopped(watching.clone());
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(
                ui,
                ui_app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(until)
            .await;
        }));
        let http_app = receiver::http_router(console.clone());
        let until = stopped(watching.clone());
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(http, http_app)
                .with_graceful_shutdown(until)
                .await;
        }));
        let grpc_console = console.clone();
        let until = stopped(watching);
        tasks.push(tokio::spawn(async move {
            let _ = receiver::serve_grpc(grpc, grpc_console, until).await;
        }));
        Ok(Self {
            ui: ui_address,
            otlp_grpc: grpc_address,
            otlp_http: http_address,
            console,
            stop,
            tasks,
        })
    }

    /// The UI's URL.
    pub fn url(&self) -> String {
        format!("http://{}{}/", self.ui, crate::MOUNT)
    }

    /// Stops the listeners and waits for open connections to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// What the `console` binary (and `shop console`) runs: starts, writes the start-up line (one
/// JSON line on stdout, target `console::startup`, with the three addresses), serves until
/// `shutdown` completes, then stops.
pub async fn run(
    config: &StandaloneConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let console = Standalone::start(config).await?;
    let line = serde_json::json!({
        "level": "INFO",
        "target": "console::startup",
        "message": "telemetry console listening",
        "console.url": console.url(),
        "otlp.grpc": format!("http://{}", console.otlp_grpc),
        "otlp.http": format!("http://{}", console.otlp_http),
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    shutdown.await;
    console.stop().await;
    Ok(())
}

/// The whole binary: `--help`, the settings (exit 2 naming the variable), [`run`] until SIGTERM
/// or Ctrl-C. `program` names the command in messages (`console`, `shop console`).
pub fn main(program: &str, args: &[String]) -> std::process::ExitCode {
    use std::process::ExitCode;
    if args.iter().any(|a| a == "--help" || a == "-h") {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{program}: the standalone telemetry console (OTLP/gRPC + OTLP/HTTP receiver and UI)\n\nusage: {program}\n\n{}",
            crate::config::SETTINGS_HELP
        );
        return ExitCode::SUCCESS;
    }
    if let Some(unknown) = args.first() {
        eprintln!(
            "{program}: unknown argument {unknown:?} (settings are environment variables; see --help)"
        );
        return ExitCode::from(2);
    }
    let config = match StandaloneConfig::from_lookup(|k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{program}: {error}");
            return ExitCode::from(2);
        }
    };
    let result = telemetry::serve::block_on(async move {
        let signals = telemetry::serve::ShutdownSignals::install()?;
        run(&config, signals.received()).await
    });
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) | Err(error) => {
            eprintln!("{program}: {error}");
            ExitCode::FAILURE
        }
    }
}
