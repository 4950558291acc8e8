//! `scalelab-database`: the lab's SQLite-backed database service (default port 5002).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context};
use clap::Parser;
use scalelab_backends::database::{self, Database, DatabaseState, Latency};
use scalelab_backends::instance::Instance;
use scalelab_backends::serve::{self, CommonArgs};

#[derive(Debug, Parser)]
#[command(version, about = "The lab's database: GET /db, GET/PUT /items/{id}")]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Directory holding database.sqlite3 (created if missing).
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Shortest simulated query latency in milliseconds.
    #[arg(long, default_value_t = 100)]
    latency_min_ms: u64,
    /// Longest simulated query latency in milliseconds (0 and 0 disable it).
    #[arg(long, default_value_t = 300)]
    latency_max_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    serve::init_tracing();
    scalelab_backends::traced::init("scalelab-database", args.common.otlp_endpoint.as_deref())
        .context("starting the trace export")?;
    ensure!(
        args.latency_min_ms <= args.latency_max_ms,
        "--latency-min-ms must not exceed --latency-max-ms"
    );
    let database = Database::open(&args.data_dir)
        .with_context(|| format!("opening the database in {}", args.data_dir.display()))?;
    let (listener, addr) = serve::bind(args.common.host, args.common.port.unwrap_or(5002))
        .await
        .context("binding")?;
    let instance = Instance::new("database", addr.port(), (&args.common.chaos).into())
        .context("creating the instance")?;
    let name = instance.name().to_owned();
    let latency = Latency {
        min: Duration::from_millis(args.latency_min_ms),
        max: Duration::from_millis(args.latency_max_ms),
    };
    let state = DatabaseState::new(instance, Arc::new(database), latency)
        .map_err(|error| anyhow::anyhow!("building the database service: {error}"))?;
    let router = database::router(state);
    serve::run(listener, router, &name).await.context("serving")
}
