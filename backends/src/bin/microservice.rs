//! `scalelab-microservice`: the lab's business-logic service (default port 5001).

use anyhow::Context;
use clap::Parser;
use scalelab_backends::instance::Instance;
use scalelab_backends::microservice::{self, MicroserviceState};
use scalelab_backends::serve::{self, CommonArgs};

#[derive(Debug, Parser)]
#[command(version, about = "The lab's microservice: GET /process")]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    serve::init_tracing();
    scalelab_backends::traced::init(
        "scalelab-microservice",
        args.common.otlp_endpoint.as_deref(),
    )
    .context("starting the trace export")?;
    let (listener, addr) = serve::bind(args.common.host, args.common.port.unwrap_or(5001))
        .await
        .context("binding")?;
    let instance = Instance::new("microservice", addr.port(), (&args.common.chaos).into())
        .context("creating the instance")?;
    let name = instance.name().to_owned();
    let router = microservice::router(MicroserviceState { instance });
    serve::run(listener, router, &name).await.context("serving")
}
