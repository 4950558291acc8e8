//! Assembles the pingora `Server` from a `Config` and runs it: listeners, the proxy service,
//! the admin background service, and a shutdown that drains in-flight requests on SIGTERM and
//! exits as soon as they are done (pingora alone would always wait the full grace period).

use crate::admin::AdminService;
use crate::config::Config;
use crate::service::Proxy;
use crate::state::Shared;
use async_trait::async_trait;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::background_service;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind the admin listener {addr}: {source}")]
    AdminBind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot build the request metrics: {0}")]
    Metrics(prometheus::Error),
    #[error(transparent)]
    AccessLog(#[from] crate::access_log::AccessLogError),
    #[error(transparent)]
    Tls(#[from] crate::https::server_config::TlsSetupError),
    #[error(transparent)]
    Listen(#[from] crate::listeners::services::BindError),
}

/// Options that come from the command line rather than the file.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Take over listening sockets from a running instance (pingora's graceful upgrade).
    pub upgrade: bool,
    pub upgrade_sock: Option<String>,
}

/// Builds everything, runs one health-check round, then serves until shutdown.
///
/// # Errors
/// When the admin port cannot be bound or the start-up runtime cannot be created.
pub fn run(
    config_path: &Path,
    config: Config,
    source: &str,
    options: RunOptions,
) -> Result<(), StartError> {
    let settings = config.proxy().clone();
    // An upgrading process takes the listening sockets over from the running one, which
    // still holds them: only a fresh start must find its addresses free.
    if !options.upgrade {
        let addrs: Vec<_> = settings
            .listen
            .iter()
            .chain(&settings.tls_listen)
            .copied()
            .collect();
        crate::listeners::services::check_bindable(&addrs)?;
    }
    crate::telemetry::init().map_err(StartError::Metrics)?;
    crate::access_log::init(&settings.access_log)?;
    let startup = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    // Servers given by name are resolved once before the first snapshot, so they serve from
    // the start; a name that does not resolve leaves its group without them (it is retried in
    // the background) rather than stopping the proxy.
    let discovered = crate::discovery::Table::default();
    for problem in startup.block_on(crate::dns::run::first_round(&config, &discovered)) {
        tracing::warn!("{problem}");
    }
    let shared = Shared::with_discovered(config_path, config, source, discovered);

    // One round of checks before any listener opens, so no request goes to a server whose
    // health is unknown.
    startup.block_on(crate::health::run_round(&shared.snapshot().pools));
    drop(startup);

    // An upgrading process shares the proxy listeners through pingora's fd handoff, but the
    // admin listener is ours: the old process keeps it until its shutdown starts, so the new
    // one binds it later, in the admin service.
    let admin_listener = if options.upgrade {
        None
    } else {
        let listener = std::net::TcpListener::bind(settings.admin_listen).map_err(|source| {
            StartError::AdminBind {
                addr: settings.admin_listen,
                source,
            }
        })?;
        listener
            .set_nonblocking(true)
            .map_err(StartError::Runtime)?;
        Some(listener)
    };

    let opt = Opt {
        upgrade: options.upgrade,
        ..Opt::default()
    };
    let mut conf = ServerConf {
        threads: settings.threads,
        grace_period_seconds: Some(settings.shutdown_timeout.as_secs().max(1)),
        graceful_shutdown_timeout_seconds: Some(1),
        // One single-threaded runtime per thread (nginx's worker model): a connection stays on
        // the thread that accepted it, so a request costs no cross-thread wakeups.
        work_stealing: false,
        ..ServerConf::default()
    };
    if let Some(sock) = options.upgrade_sock {
        conf.upgrade_sock = sock;
    }
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    // Validation guarantees a `[tls]` table with a certificate when there is a TLS listener.
    let min_version = shared
        .snapshot()
        .config
        .tls()
        .as_ref()
        .map(|tls| tls.min_version)
        .unwrap_or_default();
    let mut tls = Vec::with_capacity(settings.tls_listen.len());
    for addr in &settings.tls_listen {
        let config =
            crate::https::server_config::settings(shared.certificates().clone(), min_version)?;
        tls.push((*addr, config));
    }
    server.add_service(crate::listeners::services::service(
        &server.configuration,
        Proxy::new(shared.clone()),
        crate::listeners::services::Listeners {
            plain: settings.listen.clone(),
            tls,
        },
        &settings.client,
        settings.h2c,
    ));
    server.add_service(background_service(
        "admin",
        AdminService {
            shared: shared.clone(),
            bind_later: admin_listener.is_none().then_some(settings.admin_listen),
            listener: Mutex::new(admin_listener),
        },
    ));
    add_systemd_service(&mut server, &shared, &settings);
    tracing::info!(listen = ?settings.listen, tls_listen = ?settings.tls_listen, admin = %settings.admin_listen, "scalelab-proxy serving");
    server.run(RunArgs {
        shutdown_signal: Box::new(Signals {
            shared,
            drain_timeout: settings.shutdown_timeout,
        }),
    });
    flush_logs();
    Ok(())
}

/// Under a service manager (`NOTIFY_SOCKET` set), the task that tells it when every listener
/// answers and pings its watchdog (`systemd`).
fn add_systemd_service(
    server: &mut Server,
    shared: &Shared,
    settings: &crate::config::ProxySettings,
) {
    if !crate::systemd::enabled() {
        return;
    }
    let mut others = settings.tls_listen.clone();
    others.push(settings.admin_listen);
    server.add_service(background_service(
        "systemd",
        crate::systemd::Service {
            shared: shared.clone(),
            plain: settings.listen.clone(),
            others,
        },
    ));
}

/// Writes the access log's and the log's last lines, before the process exits.
fn flush_logs() {
    crate::access_log::flush(LOG_FLUSH_BOUND);
    crate::logging::flush();
}

/// How long an exit waits for the access log's last lines (a stuck standard error must not
/// hold the process).
const LOG_FLUSH_BOUND: Duration = Duration::from_secs(1);

/// SIGTERM drains, SIGINT stops at once, SIGQUIT hands the sockets to an upgrading process.
struct Signals {
    shared: Shared,
    drain_timeout: Duration,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut quit), Ok(mut term), Ok(mut interrupt)) = (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers; stopping");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = quit.recv() => {
                tracing::info!("SIGQUIT: handing listeners to the new process, then draining");
                ShutdownSignal::GracefulUpgrade
            }
            _ = term.recv() => {
                crate::systemd::stopping();
                tracing::info!(active = self.shared.active_requests(), "SIGTERM: draining in-flight requests");
                spawn_drain_monitor(self.shared.clone(), self.drain_timeout);
                ShutdownSignal::GracefulTerminate
            }
            _ = interrupt.recv() => {
                crate::systemd::stopping();
                tracing::info!("SIGINT: stopping now");
                spawn_exit_watchdog(FAST_SHUTDOWN_BOUND);
                ShutdownSignal::FastShutdown
            }
        }
    }
}

/// How long a fast shutdown (SIGINT) may take before the process exits regardless.
const FAST_SHUTDOWN_BOUND: Duration = Duration::from_secs(1);

/// Exits the process after `bound` if it is still running. Pingora's fast shutdown drops its
/// runtimes, but its listeners' accept loops can keep failing ("a Tokio context is being
/// shutdown") and hold the process for many seconds (seen once in about ten test runs);
/// SIGINT means stop now, so nothing is worth waiting for past the bound.
fn spawn_exit_watchdog(bound: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(bound);
        tracing::warn!(?bound, "fast shutdown did not finish in time; exiting");
        flush_logs();
        std::process::exit(0);
    });
}

/// Exits the process once no request is in flight (listeners are closed by then), or when
/// the drain bound passes.
fn spawn_drain_monitor(shared: Shared, bound: Duration) {
    std::thread::spawn(move || {
        let deadline = Instant::now() + bound;
        // Give pingora a moment to stop accepting, so a request racing the signal is counted.
        std::thread::sleep(Duration::from_millis(100));
        while shared.active_requests() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = shared.active_requests();
        if left > 0 {
            tracing::warn!(left, "drain bound reached; exiting with requests in flight");
        } else {
            tracing::info!("drained; exiting");
        }
        flush_logs();
        std::process::exit(0);
    });
}
