//! `scalelab-gateway`: the lab's API gateway (default port 5000; the lab also runs 5003 and 5006).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use scalelab_backends::gateway::{self, Dependencies, GatewayState};
use scalelab_backends::instance::Instance;
use scalelab_backends::serve::{self, CommonArgs};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "The lab's API gateway: GET /data, GET /data/complex, POST /longtask (JWT required)"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Base URL of the database service.
    #[arg(long, default_value = "http://127.0.0.1:5002")]
    database: String,
    /// Base URL of the microservice.
    #[arg(long, default_value = "http://127.0.0.1:5001")]
    microservice: String,
    /// Base URL of the priority worker.
    #[arg(long, default_value = "http://127.0.0.1:5005")]
    worker: String,
    /// Timeout of each call to a dependency (e.g. "5s", "800ms").
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    upstream_timeout: Duration,
    /// The lab's config file; its `[auth]` table (the one the proxy enforces) configures token verification.
    /// Without an `[auth]` table the protected routes answer 503 rather than serve unauthenticated clients.
    #[arg(long, env = "SCALELAB_CONFIG", default_value = "config.toml")]
    config: PathBuf,
    /// Entries of the local item cache in front of /data/complex's database and microservice calls (0: off).
    /// Also adjustable live through `POST /admin/local-cache` with `{"entries": N}`.
    #[arg(long, env = "SCALELAB_GATEWAY_LOCAL_CACHE", default_value_t = 0)]
    local_cache: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    serve::init_tracing();
    scalelab_backends::traced::init("scalelab-gateway", args.common.otlp_endpoint.as_deref())
        .context("starting the trace export")?;
    // The shared `scalelab-auth` crate reading the `[auth]` table the proxy enforces, as `scalelab token` does, so the
    // gateway, the proxy and the token CLI cannot disagree about a token.
    let verifier = match scalelab_auth::load_from_config_file(&args.config) {
        Ok(Some(settings)) => Some(Arc::new(scalelab_auth::Verifier::new(settings))),
        Ok(None) => {
            tracing::warn!(
                config = %args.config.display(),
                "no [auth] table: /data, /data/complex and /longtask answer 503 until one is added"
            );
            None
        }
        Err(issues) => {
            let issues: Vec<String> = issues.iter().map(ToString::to_string).collect();
            anyhow::bail!(
                "{}: invalid [auth] table:\n  {}",
                args.config.display(),
                issues.join("\n  ")
            );
        }
    };
    let (listener, addr) = serve::bind(args.common.host, args.common.port.unwrap_or(5000))
        .await
        .context("binding")?;
    let instance = Instance::new("gateway", addr.port(), (&args.common.chaos).into())
        .context("creating the instance")?;
    let name = instance.name().to_owned();
    let dependencies = Dependencies {
        database: args.database,
        microservice: args.microservice,
        worker: args.worker,
    };
    let state = GatewayState::new(instance, verifier, dependencies, args.upstream_timeout)
        .map_err(|error| anyhow::anyhow!("building the gateway: {error}"))?;
    state
        .local_cache()
        .resize(args.local_cache)
        .context("--local-cache")?;
    serve::run(listener, gateway::router(state), &name)
        .await
        .context("serving")
}
