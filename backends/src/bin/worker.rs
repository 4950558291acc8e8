//! `scalelab-worker`: the lab's durable priority worker (default port 5005).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use scalelab_backends::instance::Instance;
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    serve::init_tracing();
    let store: Arc<dyn TaskStore> = Arc::new(
        SqliteTaskStore::open(&args.data_dir)
            .with_context(|| format!("opening the task store in {}", args.data_dir.display()))?,
    );
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
    let state = WorkerState::start(instance, store, settings)
        .await
        .map_err(|error| anyhow::anyhow!("starting the worker: {error}"))?;
    serve::run(listener, priority_worker::router(state), &name)
        .await
        .context("serving")
}
