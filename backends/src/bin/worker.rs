//! `scalelab-worker`: the lab's durable priority worker (default port 5005).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use scalelab_backends::instance::Instance;
use scalelab_backends::priority_worker::backlog::{Backlog, LocalBacklog};
use scalelab_backends::priority_worker::shared::{RedisTasks, SharedSettings};
use scalelab_backends::priority_worker::store::{SqliteTaskStore, TaskStore};
use scalelab_backends::priority_worker::{self, WorkerSettings, WorkerState};
use scalelab_backends::serve::{self, CommonArgs};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "The lab's priority worker: POST /tasks, GET /tasks/{id}, GET /stats"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Directory holding worker.sqlite3, the durable queue (created if missing).
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Initial number of workers (adjustable live with PUT /admin/workers).
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// A task waiting this long overtakes fresh tasks of any priority (e.g. "30s", "500ms").
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    aging: Duration,
    /// Share one task queue with other workers through this Redis (`redis://host:port/db`, or `rediss://` for TLS).
    /// Without it the queue is the SQLite file in --data-dir.
    #[arg(long, env = "SCALELAB_REDIS_URL")]
    redis_url: Option<String>,
    /// With a rediss:// URL: a PEM file of the CA that signed the server's certificate (default: the system's roots).
    #[arg(long, requires = "redis_url")]
    redis_ca: Option<PathBuf>,
    /// Prefix of every Redis key (the queue's keys are under `<prefix>tasks:`).
    #[arg(long, default_value = "scalelab:")]
    redis_key_prefix: String,
    /// Connecting to Redis gives up after this long.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    redis_connect_timeout: Duration,
    /// A Redis command gives up after this long.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    redis_command_timeout: Duration,
    /// With Redis: a task whose worker stops renewing its claim for this long (it died) goes to another worker.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    visibility_timeout: Duration,
}

/// How often an idle worker on a shared queue looks for tasks that other workers accepted.
const SHARED_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The store and the backlog: the local SQLite file, or the shared queue on Redis.
async fn tasks(args: &Args) -> anyhow::Result<(Arc<dyn TaskStore>, Arc<dyn Backlog>)> {
    let Some(url) = &args.redis_url else {
        let store: Arc<dyn TaskStore> =
            Arc::new(SqliteTaskStore::open(&args.data_dir).with_context(|| {
                format!("opening the task store in {}", args.data_dir.display())
            })?);
        let backlog = Arc::new(LocalBacklog::new(Arc::clone(&store), args.aging));
        return Ok((store, backlog));
    };
    let shared = Arc::new(
        RedisTasks::connect(SharedSettings {
            url: url.clone(),
            ca: args.redis_ca.clone(),
            key_prefix: format!("{}tasks:", args.redis_key_prefix),
            connect_timeout: args.redis_connect_timeout,
            command_timeout: args.redis_command_timeout,
            visibility_timeout: args.visibility_timeout,
            aging: args.aging,
            poll_interval: SHARED_POLL_INTERVAL,
        })
        .await
        .context("connecting to the shared task queue")?,
    );
    tracing::info!(url, "task queue shared on redis");
    Ok((shared.clone(), shared))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    serve::init_tracing();
    scalelab_backends::traced::init("scalelab-worker", args.common.otlp_endpoint.as_deref())
        .context("starting the trace export")?;
    let (store, backlog) = tasks(&args).await?;
    let (listener, addr) = serve::bind(args.common.host, args.common.port.unwrap_or(5005))
        .await
        .context("binding")?;
    let instance = Instance::new("worker", addr.port(), (&args.common.chaos).into())
        .context("creating the instance")?;
    let name = instance.name().to_owned();
    let settings = WorkerSettings {
        workers: args.workers,
        aging: args.aging,
    };
    let state = WorkerState::start_with(instance, store, backlog, settings)
        .await
        .map_err(|error| anyhow::anyhow!("starting the worker: {error}"))?;
    serve::run(listener, priority_worker::router(state), &name)
        .await
        .context("serving")
}
