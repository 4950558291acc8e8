//! `scalelab-gateway`: the lab's API gateway (default port 5000; the lab also runs 5003 and 5006).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use scalelab_backends::gateway::{self, Dependencies, GatewayState};
use scalelab_backends::instance::Instance;
use scalelab_backends::jwt::{self, JwtSettings, Verifier};
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
    /// HMAC secret shared with the proxy, at least 32 bytes.
    #[arg(long, env = "SCALELAB_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    /// Required `iss` claim, if any.
    #[arg(long, env = "SCALELAB_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// Required `aud` claim, if any.
    #[arg(long, env = "SCALELAB_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// Accepted algorithms, comma-separated (HS256, HS384, HS512).
    #[arg(long, default_value = "HS256")]
    jwt_algorithms: String,
    /// Clock skew tolerated on exp/nbf, in seconds.
    #[arg(long, default_value_t = 5)]
    jwt_leeway_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    serve::init_tracing();
    let settings = JwtSettings {
        secret: args.jwt_secret.into_bytes(),
        issuer: args.jwt_issuer,
        audience: args.jwt_audience,
        algorithms: jwt::parse_algorithms(&args.jwt_algorithms)?,
        leeway_secs: args.jwt_leeway_secs,
    };
    let verifier = Arc::new(Verifier::new(&settings).context("JWT settings")?);
    let (listener, addr) = serve::bind(args.common.host, args.common.port.unwrap_or(5000))
        .await
        .context("binding")?;
    let instance = Instance::new("gateway", addr.port(), (&args.common.chaos).into())
        .map_err(anyhow::Error::msg)?;
    let name = instance.name().to_owned();
    let dependencies = Dependencies {
        database: args.database,
        microservice: args.microservice,
        worker: args.worker,
    };
    let state = GatewayState::new(instance, verifier, dependencies, args.upstream_timeout)
        .map_err(|error| anyhow::anyhow!("building the gateway: {error}"))?;
    serve::run(listener, gateway::router(state), &name)
        .await
        .context("serving")
}
