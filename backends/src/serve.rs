//! Running a backend: the flags every binary shares, tracing setup, binding, and graceful shutdown on ctrl-c or
//! SIGTERM (in-flight requests finish, new connections are refused).

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use tokio::net::TcpListener;

use crate::chaos::ChaosArgs;

/// Flags common to every backend binary.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (default: the service's lab port); 0 picks a free one, and the instance is then named after
    /// the port actually bound.
    #[arg(long)]
    pub port: Option<u16>,
    /// Chaos knobs at start (also adjustable live via `/admin/chaos`).
    #[command(flatten)]
    pub chaos: ChaosArgs,
    /// The OTLP/HTTP collector spans of traced requests go to (e.g. "http://127.0.0.1:4318");
    /// without it nothing is traced.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// Logs to stderr; `RUST_LOG` overrides the default `info` level.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Binds the listener before the router is built, so the instance can be named after the real port.
///
/// # Errors
/// The bind error (address in use, permission denied).
pub async fn bind(host: IpAddr, port: u16) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(SocketAddr::new(host, port)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Serves `router` until ctrl-c or SIGTERM, then lets in-flight requests finish.
///
/// # Errors
/// An IO error from the accept loop.
pub async fn run(listener: TcpListener, router: Router, name: &str) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(instance = name, %addr, "listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!(instance = name, "stopped");
    Ok(())
}

/// Resolves on the first ctrl-c or SIGTERM. If a signal handler cannot be installed, that signal is simply not
/// awaited (the other still works), rather than shutting down at once.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
