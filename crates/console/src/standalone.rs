//! The standalone console (the `console` binary): OTLP/gRPC and OTLP/HTTP receivers and the UI,
//! each on its own listener, one [`Console`] behind them.

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
