//! The `scalelab-proxy` binary: command line, logging, config loading; everything else is in
//! the library.

use clap::{Parser, ValueEnum};
use scalelab_proxy::config;
use scalelab_proxy::server::{self, RunOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The version and the git commit the binary was built from (`build.rs`), so a running
/// daemon's `--version` names the exact source.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SCALELAB_GIT_COMMIT"),
    ")"
);

/// A configuration-driven reverse proxy on Pingora.
#[derive(Debug, Parser)]
#[command(name = "scalelab-proxy", version = VERSION)]
struct Cli {
    /// The config file.
    #[arg(short, long, default_value = "config.toml")]
    config: PathBuf,
    /// Validate the config file, print a summary or every problem, and exit.
    #[arg(long, short = 't')]
    check: bool,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Take over the listening sockets of a running instance (then send it SIGQUIT).
    #[arg(long, short = 'u')]
    upgrade: bool,
    /// The Unix socket used to hand listeners over during an upgrade.
    #[arg(long)]
    upgrade_sock: Option<String>,
    /// Listen here instead of `[proxy] listen` (repeatable), also after reloads: several
    /// proxies can share one config file.
    #[arg(long, value_name = "ADDR")]
    listen: Vec<SocketAddr>,
    /// The admin API's address instead of `[proxy] admin_listen`.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// Share the last cache tier in this Redis (`redis://host:port/db`): sets `[redis] url`
    /// (adding the table if the file has none) and makes the last `[[cache.tiers]]` a redis tier.
    #[arg(long, value_name = "URL")]
    shared_cache_url: Option<String>,
    /// Serve HTTPS here instead of `[proxy] tls_listen` (repeatable), also after reloads.
    #[arg(long, value_name = "ADDR")]
    tls_listen: Vec<SocketAddr>,
    /// Serve this PEM certificate chain (for `localhost`) instead of `[[tls.certificates]]`;
    /// watched for changes like the file's own. Needs `--tls-key`.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Export spans to this OTLP/HTTP collector instead of `[tracing] otlp_endpoint` (adding a
    /// `[tracing]` table with its defaults when the file has none), also after reloads.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
}

impl Cli {
    fn overrides(&self) -> Result<config::Overrides, config::OverrideError> {
        let overrides = config::Overrides {
            listen: self.listen.clone(),
            admin_listen: self.admin_listen,
            shared_cache: None,
            tls_listen: self.tls_listen.clone(),
            // Absolute, because the config's own paths start at the config file's directory.
            tls_certificate: self
                .tls_cert
                .as_deref()
                .map(absolute)
                .zip(self.tls_key.as_deref().map(absolute)),
            otlp_endpoint: self.otlp_endpoint.clone(),
        };
        match &self.shared_cache_url {
            Some(url) => overrides.with_shared_cache_url(url),
            None => Ok(overrides),
        }
    }
}

fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn init_logging(format: LogFormat) {
    if scalelab_proxy::logging::journald::connected() {
        return init_journal_logging(format);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // A line that cannot be written is dropped: the subscriber's default reports it with
        // `eprintln!`, which panics the logging thread when standard error is a closed pipe.
        .log_internal_errors(false)
        .with_ansi(colour_wanted())
        .with_writer(scalelab_proxy::logging::stderr_writer());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Colours only for a person at a terminal: a pipe or a file gets plain text, and `NO_COLOR`
/// (any non-empty value, <https://no-color.org>) turns them off everywhere.
fn colour_wanted() -> bool {
    use std::io::IsTerminal as _;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// Logging when standard error is systemd's journal stream: no timestamps (journald adds its
/// own), no colours, and each line led by its syslog priority (`logging::journald`).
fn init_journal_logging(format: LogFormat) {
    use scalelab_proxy::logging::journald::Prefixed;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .log_internal_errors(false)
        .with_ansi(false)
        .with_writer(scalelab_proxy::logging::stderr_writer());
    let line = tracing_subscriber::fmt::format()
        .without_time()
        .with_ansi(false);
    match format {
        LogFormat::Text => builder.event_format(Prefixed(line)).init(),
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(Prefixed(line.json().flatten_event(true)))
            .init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.overrides() {
        Ok(overrides) => config::set_overrides(overrides),
        Err(error) => {
            eprintln!("scalelab-proxy: --shared-cache-url: {error}");
            return ExitCode::from(2);
        }
    }
    if cli.check {
        return match config::load(&cli.config) {
            Ok((config, _)) => {
                // A closed pipe (`| head`) is not an error worth a panic.
                let _ = writeln!(
                    std::io::stdout(),
                    "{}: OK\n{}",
                    cli.config.display(),
                    config.summary()
                );
                for warning in scalelab_proxy::dns::run::check_blocking(&config) {
                    let _ = writeln!(std::io::stdout(), "warning: {warning}");
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{error}");
                ExitCode::FAILURE
            }
        };
    }
    init_logging(cli.log_format);
    let code = match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Once, without a timestamp or level: the one line an operator must read.
            eprintln!("scalelab-proxy: {error:#}");
            ExitCode::FAILURE
        }
    };
    scalelab_proxy::logging::flush();
    code
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // The text is kept so the running config's hash describes exactly the bytes parsed.
    let (config, source) = config::load(&cli.config).map_err(|error| anyhow::anyhow!("{error}"))?;
    server::run(
        &cli.config,
        config,
        &source,
        RunOptions {
            upgrade: cli.upgrade,
            upgrade_sock: cli.upgrade_sock,
        },
    )?;
    Ok(())
}
