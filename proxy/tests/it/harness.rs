//! The integration world: counting axum backends on their own runtimes (so killing one drops
//! every connection it holds), a typed builder for the proxy's config, and the real
//! `scalelab-proxy` binary on free ports. Ports, patience, polling, clients and the process
//! guard come from `scalelab-test-support` and are re-exported for the test modules.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
pub use scalelab_test_support::ChildGuard;
pub use scalelab_test_support::{client_builder, eventually, free_port, patient, Signal};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct BackendState {
    pub name: String,
    pub hits: AtomicUsize,
    pub latency_ms: AtomicU64,
    pub failing_health: AtomicBool,
    /// Answers 500 to every request but `/health` (which keeps its own answer).
    pub failing_requests: AtomicBool,
    pub last_headers: Mutex<Option<HeaderMap>>,
    pub last_query: Mutex<Option<String>>,
    /// The HTTP version of the last non-health request (h2c upstreams get HTTP/2).
    pub last_version: Mutex<Option<axum::http::Version>>,
    /// Client ports of the connections that carried non-health requests (the proxy's pool).
    pub connections: Mutex<HashSet<u16>>,
}

/// One test backend: answers every path with its identity, counts hits, and can be slowed,
/// made to fail its health check, killed and restarted on the same port.
pub struct TestBackend {
    pub addr: SocketAddr,
    pub state: Arc<BackendState>,
    runtime: Option<tokio::runtime::Runtime>,
}

async fn handle(
    State(state): State<Arc<BackendState>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    if parts.uri.path() != "/health" {
        state.connections.lock().expect("lock").insert(peer.port());
    }
    if parts.uri.path() == "/health" {
        return if state.failing_health.load(Ordering::Relaxed) {
            (StatusCode::SERVICE_UNAVAILABLE, "unhealthy").into_response()
        } else {
            (StatusCode::OK, "ok").into_response()
        };
    }
    state.hits.fetch_add(1, Ordering::Relaxed);
    if state.failing_requests.load(Ordering::Relaxed) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "broken").into_response();
    }
    *state.last_headers.lock().expect("lock") = Some(parts.headers.clone());
    *state.last_query.lock().expect("lock") = parts.uri.query().map(str::to_string);
    *state.last_version.lock().expect("lock") = Some(parts.version);
    let body: Bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let mut delay = state.latency_ms.load(Ordering::Relaxed);
    if let Some(ms) = parts
        .uri
        .query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("sleep_ms=")))
        .and_then(|v| v.parse::<u64>().ok())
    {
        delay += ms;
    }
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let value = json!({
        "server": state.name,
        "hit": state.hits.load(Ordering::Relaxed),
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "body_len": body.len(),
        "body_fnv": fnv(&body),
    });
    let mut response = axum::Json(value).into_response();
    // Response controls for cache tests: ?cc=, ?sk= (Surrogate-Key), ?vary=, ?cookie=1, ?status=,
    // ?etag= (below).
    for pair in parts.uri.query().unwrap_or("").split('&') {
        let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let value = raw.replace("%20", " ").replace("%2C", ",");
        let headers = response.headers_mut();
        match name {
            "cc" => {
                headers.insert("cache-control", value.parse().expect("value"));
            }
            "sk" => {
                headers.insert("surrogate-key", value.parse().expect("value"));
            }
            "vary" => {
                headers.insert("vary", value.parse().expect("value"));
            }
            "cookie" => {
                headers.insert("set-cookie", "session=1".parse().expect("value"));
            }
            "status" => {
                if let Ok(code) = value.parse::<u16>() {
                    *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
                }
            }
            _ => {}
        }
    }
    // ?etag=V: the response carries ETag "V", and a request naming it gets a bodiless 304
    // (with the same controlled headers). Every answer says which origin hit it was.
    let etag = parts
        .uri
        .query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("etag=")))
        .map(|v| format!("\"{v}\""));
    if let Some(etag) = etag {
        let named = parts
            .headers
            .get("if-none-match")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
        if named {
            let mut not_modified = StatusCode::NOT_MODIFIED.into_response();
            for (name, value) in response.headers() {
                if name != "content-type" && name != "content-length" {
                    not_modified.headers_mut().insert(name, value.clone());
                }
            }
            response = not_modified;
        }
        response
            .headers_mut()
            .insert("etag", etag.parse().expect("value"));
    }
    response.headers_mut().insert(
        "x-origin-hit",
        state
            .hits
            .load(Ordering::Relaxed)
            .to_string()
            .parse()
            .expect("value"),
    );
    // Hop-by-hop fields the proxy must not relay.
    response
        .headers_mut()
        .insert("keep-alive", "timeout=5".parse().expect("value"));
    response
}

/// FNV-1a, to compare bodies without shipping them back.
pub fn fnv(data: &[u8]) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in data {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    let mut text = String::new();
    let _ = write!(text, "{hash:016x}");
    text
}

impl TestBackend {
    pub fn start(name: &str) -> TestBackend {
        let port = free_port();
        let state = Arc::new(BackendState {
            name: name.to_string(),
            ..BackendState::default()
        });
        let mut backend = TestBackend {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            state,
            runtime: None,
        };
        backend.restart();
        backend
    }

    /// A backend on `addr` (another loopback address than 127.0.0.1 too, such as the
    /// addresses of a DNS name in the discovery tests).
    pub fn start_at(name: &str, addr: SocketAddr) -> TestBackend {
        let mut backend = TestBackend {
            addr,
            state: Arc::new(BackendState {
                name: name.to_string(),
                ..BackendState::default()
            }),
            runtime: None,
        };
        backend.restart();
        backend
    }

    /// Serves again on the same port (after `kill`).
    pub fn restart(&mut self) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        // `/ws` is the backends' own WebSocket echo; every other path is `handle`.
        let router = Router::new()
            .route(
                "/ws",
                axum::routing::get(scalelab_backends::websocket::echo),
            )
            .fallback(handle)
            .with_state(self.state.clone());
        let addr = self.addr;
        let deadline = Instant::now() + patient(Duration::from_secs(5));
        let listener = {
            let _context = runtime.enter();
            loop {
                let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                socket.set_reuseaddr(true).expect("reuseaddr");
                match socket.bind(addr).and_then(|()| socket.listen(1024)) {
                    Ok(listener) => break listener,
                    Err(error) if Instant::now() > deadline => panic!("rebind {addr}: {error}"),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        };
        runtime.spawn(async move {
            let _ = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        self.runtime = Some(runtime);
    }

    /// Stops the backend and every connection it holds, as a crash would.
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::Relaxed)
    }

    pub fn set_latency(&self, ms: u64) {
        self.state.latency_ms.store(ms, Ordering::Relaxed);
    }

    pub fn set_failing_health(&self, failing: bool) {
        self.state.failing_health.store(failing, Ordering::Relaxed);
    }

    pub fn set_failing_requests(&self, failing: bool) {
        self.state
            .failing_requests
            .store(failing, Ordering::Relaxed);
    }

    pub fn last_header(&self, name: &str) -> Option<String> {
        self.state
            .last_headers
            .lock()
            .expect("lock")
            .as_ref()
            .and_then(|h| h.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// How many distinct connections carried requests to this backend.
    pub fn last_version(&self) -> Option<axum::http::Version> {
        *self.state.last_version.lock().expect("lock")
    }

    pub fn connections(&self) -> usize {
        self.state.connections.lock().expect("lock").len()
    }

    pub fn last_query(&self) -> Option<String> {
        self.state.last_query.lock().expect("lock").clone()
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Counting backends named `names` behind one proxy: upstream `g` with `strategy` and
/// `weights` (in `names` order), routed at `/`.
pub async fn backends_behind_proxy<const N: usize>(
    names: [&str; N],
    strategy: &str,
    weights: &[u32],
) -> ([TestBackend; N], TestProxy) {
    let backends = names.map(TestBackend::start);
    let refs: Vec<&TestBackend> = backends.iter().collect();
    let config = TestConfig::new()
        .upstream(UpstreamSpec::new("g", strategy, &refs, weights))
        .route("all", "/", "g");
    let proxy = TestProxy::start(&config).await;
    // The proxy checks every server once before it listens, but on a loaded machine that
    // first probe can time out (200 ms); tests start from servers that take traffic.
    for backend in &backends {
        eventually(
            Duration::from_secs(5),
            "every server to be healthy",
            || async { (proxy.server_healthy(backend.addr).await == Some(true)).then_some(()) },
        )
        .await;
    }
    (backends, proxy)
}

/// The cache lock timeout of every [`TestConfig::cache`]: 5 s, scaled by patience so that a
/// test's bound proving a waiter did not wait for it can be scaled too and stay below it.
pub fn cache_lock_timeout() -> Duration {
    patient(Duration::from_secs(5))
}

/// A typed builder for the TOML the proxy reads.
pub struct TestConfig {
    pub proxy_port: u16,
    pub admin_port: u16,
    upstreams: Vec<String>,
    routes: Vec<String>,
    extra_proxy: String,
    threads: u32,
    /// `[proxy] debug_headers`: "on" by default here, because most tests read
    /// `X-Upstream-Server` and the other diagnostic headers; `None` leaves the daemon's default.
    debug_headers: Option<&'static str>,
    /// The protocol the test speaks to the proxy's listener (`TestProxy::http`).
    client: Client,
}

pub struct UpstreamSpec<'a> {
    pub name: &'a str,
    pub strategy: &'a str,
    pub servers: Vec<(SocketAddr, u32)>,
    pub retries: u32,
    pub read_timeout: &'a str,
    /// (interval, healthy_threshold, unhealthy_threshold); `None` means no active check.
    pub health: Option<(&'a str, u32, u32)>,
}

impl<'a> UpstreamSpec<'a> {
    pub fn new(
        name: &'a str,
        strategy: &'a str,
        backends: &[&TestBackend],
        weights: &[u32],
    ) -> Self {
        UpstreamSpec {
            name,
            strategy,
            servers: backends
                .iter()
                .enumerate()
                .map(|(i, b)| (b.addr, weights.get(i).copied().unwrap_or(1)))
                .collect(),
            retries: 2,
            read_timeout: "10s",
            health: Some(("200ms", 2, 2)),
        }
    }
}

impl TestConfig {
    pub fn new() -> TestConfig {
        TestConfig {
            proxy_port: free_port(),
            admin_port: free_port(),
            upstreams: Vec::new(),
            routes: Vec::new(),
            extra_proxy: String::new(),
            threads: 2,
            debug_headers: Some("on"),
            client: Client::Http1,
        }
    }

    /// A new config for the same proxy (same ports), to reload into it.
    pub fn same_ports(other: &TestConfig) -> TestConfig {
        TestConfig {
            proxy_port: other.proxy_port,
            admin_port: other.admin_port,
            ..TestConfig::new()
        }
    }

    /// Tests speak `client` to the proxy (`TestProxy::http`); h2c also turns on the listener's
    /// `h2c` (HTTP/1.1 keeps working beside it).
    pub fn client(mut self, client: Client) -> Self {
        self.client = client;
        if client == Client::H2c {
            self = self.proxy_setting("h2c = true");
        }
        self
    }

    /// The proxy's worker threads (2 unless a test needs another number).
    pub fn threads(mut self, threads: u32) -> Self {
        self.threads = threads;
        self
    }

    /// `[proxy] debug_headers` ("off", "on", "trusted"), or `None` for no line (the default).
    pub fn debug_headers(mut self, mode: Option<&'static str>) -> Self {
        self.debug_headers = mode;
        self
    }

    pub fn proxy_setting(mut self, line: &str) -> Self {
        self.extra_proxy.push_str(line);
        self.extra_proxy.push('\n');
        self
    }

    pub fn upstream(mut self, spec: UpstreamSpec) -> Self {
        let servers: Vec<String> = spec
            .servers
            .iter()
            .map(|(addr, weight)| format!("{{ addr = \"{addr}\", weight = {weight} }}"))
            .collect();
        let mut text = format!(
            "[upstreams.{}]\nstrategy = \"{}\"\nservers = [{}]\nconnect_timeout = \"500ms\"\nread_timeout = \"{}\"\nretries = {}\n",
            spec.name,
            spec.strategy,
            servers.join(", "),
            spec.read_timeout,
            spec.retries
        );
        if let Some((interval, healthy, unhealthy)) = spec.health {
            text.push_str(&format!(
                "[upstreams.{}.health_check]\npath = \"/health\"\ninterval = \"{interval}\"\ntimeout = \"200ms\"\nhealthy_threshold = {healthy}\nunhealthy_threshold = {unhealthy}\n",
                spec.name
            ));
        }
        self.upstreams.push(text);
        self
    }

    /// Adds a `[cache]` table with the given tiers `(name, max_entries)` and promotion hits; its
    /// lock timeout is [`cache_lock_timeout`].
    pub fn cache(mut self, tiers: &[(&str, usize)], promotion_hits: u32) -> Self {
        let mut text = format!(
            "[cache]\nmax_object_bytes = \"64KiB\"\nlock_timeout = \"{}ms\"\n",
            cache_lock_timeout().as_millis()
        );
        for (name, entries) in tiers {
            text.push_str(&format!(
                "[[cache.tiers]]\nname = \"{name}\"\nmax_entries = {entries}\nmax_bytes = \"1MiB\"\nttl = \"600s\"\n"
            ));
        }
        text.push_str(&format!("[cache.promotion]\nhits = {promotion_hits}\n"));
        self.upstreams.push(text);
        self
    }

    /// A `[cache]` table whose memory tiers `(name, max_entries)` come before a shared last tier
    /// `shared` in the Redis at `redis_url` (a `[redis]` table); lock timeout as in [`TestConfig::cache`].
    pub fn shared_cache(
        self,
        memory: &[(&str, usize)],
        shared: &str,
        redis_url: &str,
        promotion_hits: u32,
    ) -> Self {
        let redis = format!("url = \"{redis_url}\"\n");
        self.shared_cache_in(memory, shared, &redis, "", promotion_hits)
    }

    /// [`TestConfig::shared_cache`] with the `[redis]` table's lines as given (`url` and more:
    /// a cluster's list of seed nodes, a TLS server's `ca`) and more lines for the shared tier.
    pub fn shared_cache_in(
        mut self,
        memory: &[(&str, usize)],
        shared: &str,
        redis: &str,
        shared_tier: &str,
        promotion_hits: u32,
    ) -> Self {
        self = self.cache(memory, promotion_hits);
        let cache = self.upstreams.pop().unwrap_or_default();
        let (tiers, promotion) = cache
            .split_once("[cache.promotion]")
            .unwrap_or((cache.as_str(), ""));
        self.upstreams.push(format!(
            "[redis]\n{redis}command_timeout = \"{}ms\"\n{tiers}[[cache.tiers]]\nname = \"{shared}\"\nkind = \"redis\"\nttl = \"600s\"\n{shared_tier}[cache.promotion]{promotion}",
            patient(Duration::from_millis(200)).as_millis()
        ));
        self
    }

    /// A route with an inline `cache = { ... }` table.
    pub fn cached_route(mut self, name: &str, path: &str, upstream: &str, cache: &str) -> Self {
        self.routes.push(format!(
            "[[routes]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"{upstream}\"\ncache = {{ {cache} }}\n"
        ));
        self
    }

    /// Adds TOML tables written by the test (an upstream with settings the builder lacks).
    pub fn tables(mut self, text: &str) -> Self {
        self.upstreams.push(text.to_string());
        self
    }

    /// Adds an `[auth]` table; `body` is its content without the `[auth]` line.
    pub fn auth_table(mut self, body: &str) -> Self {
        self.upstreams.push(format!("[auth]\n{body}\n"));
        self
    }

    /// A route that requires a JWT (`auth = "jwt"`); needs `auth_table`.
    pub fn jwt_route(mut self, name: &str, path: &str, upstream: &str) -> Self {
        self.routes.push(format!(
            "[[routes]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"{upstream}\"\nauth = \"jwt\"\n"
        ));
        self
    }

    /// `cached_route` that also requires a JWT.
    pub fn cached_jwt_route(mut self, name: &str, path: &str, upstream: &str, cache: &str) -> Self {
        self.routes.push(format!(
            "[[routes]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"{upstream}\"\nauth = \"jwt\"\ncache = {{ {cache} }}\n"
        ));
        self
    }

    /// A route that removes its path prefix before forwarding.
    pub fn stripping_route(mut self, name: &str, path: &str, upstream: &str) -> Self {
        self.routes.push(format!(
            "[[routes]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"{upstream}\"\nstrip_prefix = true\n"
        ));
        self
    }

    /// A route whose table ends with `extra` (TOML lines such as `rate_limits = [...]`).
    pub fn route_with(mut self, name: &str, path: &str, upstream: &str, extra: &str) -> Self {
        self.routes.push(format!(
            "[[routes]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"{upstream}\"\n{extra}\n"
        ));
        self
    }

    /// A `[[routes]]` table written out in full, for keys no other builder sets.
    pub fn raw_route(mut self, text: &str) -> Self {
        self.routes.push(text.to_string());
        self
    }

    pub fn route(mut self, name: &str, path: &str, upstream: &str) -> Self {
        self.routes.push(format!(
            "[[routes]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"{upstream}\"\n"
        ));
        self
    }

    pub fn render(&self) -> String {
        let debug = self.debug_headers.map_or(String::new(), |mode| {
            format!("debug_headers = \"{mode}\"\n")
        });
        format!(
            "[proxy]\nlisten = [\"127.0.0.1:{}\"]\nadmin_listen = \"127.0.0.1:{}\"\nthreads = {}\n{}{}\n{}\n{}",
            self.proxy_port,
            self.admin_port,
            self.threads,
            debug,
            self.extra_proxy,
            self.upstreams.join("\n"),
            self.routes.join("\n")
        )
    }
}

/// The real proxy binary, started on the config's ports.
pub struct TestProxy {
    /// Killed on drop, printing the end of the proxy's log if the test failed.
    pub child: ChildGuard,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub admin: String,
    pub config_path: PathBuf,
    /// What `http` speaks to the listener.
    pub client: Client,
}

impl TestProxy {
    /// Replaces the config file (write to a temporary file, then rename, as editors do).
    pub fn write_config(&self, text: &str) {
        let temporary = self.dir.path().join("config.toml.tmp");
        std::fs::write(&temporary, text).expect("write config");
        std::fs::rename(&temporary, &self.config_path).expect("rename config");
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_scalelab-proxy")
}

/// Runs `scalelab-proxy --check` on a config file holding `text`: its exit code and standard
/// error.
pub fn check_text(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).expect("write config");
    check_file(&path)
}

/// Runs `scalelab-proxy --check` on the config file at `path`: its exit code and standard error.
pub fn check_file(path: &std::path::Path) -> (Option<i32>, String) {
    let output = Command::new(binary())
        .arg("--check")
        .arg("--config")
        .arg(path)
        .output()
        .expect("run --check");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A client for the proxy and its admin API; requests time out after 10 s (scaled).
pub fn client() -> reqwest::Client {
    scalelab_test_support::client(Duration::from_secs(10))
}

/// GETs `url` with `http` and returns the JSON body (panics on a transport or JSON error).
pub async fn get_json(http: &reqwest::Client, url: impl reqwest::IntoUrl) -> Value {
    http.get(url)
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json body")
}

/// The protocol a test speaks to the proxy's listener: the main cases of the forwarding, auth
/// and cache suites run over both (`over_each_client!`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Http1,
    /// HTTP/2 with prior knowledge on the plain listener (`[proxy] h2c = true`).
    H2c,
}

impl Client {
    /// A client speaking this protocol only, so a test cannot pass by falling back to HTTP/1.1;
    /// requests time out after 10 s (scaled).
    pub fn build(self) -> reqwest::Client {
        let builder = client_builder().timeout(patient(Duration::from_secs(10)));
        let builder = match self {
            Client::Http1 => builder.http1_only(),
            Client::H2c => builder.http2_prior_knowledge(),
        };
        builder.build().expect("HTTP client")
    }

    /// The version every response to this client must carry.
    pub fn version(self) -> reqwest::Version {
        match self {
            Client::Http1 => reqwest::Version::HTTP_11,
            Client::H2c => reqwest::Version::HTTP_2,
        }
    }
}

impl TestProxy {
    pub async fn start(config: &TestConfig) -> TestProxy {
        TestProxy::start_with_args(config, &[]).await
    }

    /// As `start`, with extra command-line arguments (such as `--upgrade-sock`).
    pub async fn start_with_args(config: &TestConfig, args: &[std::ffi::OsString]) -> TestProxy {
        TestProxy::start_on(config, (config.proxy_port, config.admin_port), args).await
    }

    /// As `start_with_args`, for a proxy whose arguments (`--listen`, `--admin-listen`) move it
    /// from the config's ports to `(proxy, admin)`.
    pub async fn start_on(
        config: &TestConfig,
        (proxy_port, admin_port): (u16, u16),
        args: &[std::ffi::OsString],
    ) -> TestProxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config.render()).expect("write config");
        let mut command = Command::new(binary());
        command
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .env("RUST_LOG", "info");
        let child =
            ChildGuard::spawn_logged(&mut command, &dir.path().join("proxy.log"), "proxy").tail(60);
        TestProxy {
            child,
            dir,
            base: format!("http://127.0.0.1:{proxy_port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            config_path,
            client: config.client,
        }
        .ready(proxy_port)
        .await
    }

    /// As `start`, with the proxy's standard error a pipe whose read end is returned: the test
    /// decides whether anyone reads it (its tracing output is not in a log file then).
    pub async fn start_piped(config: &TestConfig) -> (TestProxy, std::process::ChildStderr) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config.render()).expect("write config");
        let mut child = Command::new(binary())
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn the proxy");
        let stderr = child.stderr.take().expect("the piped standard error");
        let proxy = TestProxy {
            child: ChildGuard::new(child, "proxy"),
            dir,
            base: format!("http://127.0.0.1:{}", config.proxy_port),
            admin: format!("http://127.0.0.1:{}", config.admin_port),
            config_path,
            client: config.client,
        };
        (proxy.ready(config.proxy_port).await, stderr)
    }

    /// Waits until the admin API answers and the proxy port accepts connections.
    async fn ready(self, port: u16) -> TestProxy {
        let proxy = self;
        let http = client();
        let admin = proxy.admin.clone();
        eventually(Duration::from_secs(20), "the proxy to listen", || {
            let http = http.clone();
            let admin = admin.clone();
            async move {
                let admin_ok = http
                    .get(format!("{admin}/health"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                let proxy_ok = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok();
                (admin_ok && proxy_ok).then_some(())
            }
        })
        .await;
        proxy
    }

    /// A client for the proxy listener speaking the config's `Client` (the admin API stays on
    /// `client()`: it is HTTP/1.1 only).
    pub fn http(&self) -> reqwest::Client {
        self.client.build()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn upstreams(&self) -> Value {
        self.admin_get("/admin/upstreams").await
    }

    /// Sum of in-flight counts over every server of every group.
    pub async fn total_in_flight(&self) -> u64 {
        let upstreams = self.upstreams().await;
        upstreams["upstreams"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["servers"].as_array().cloned().unwrap_or_default())
            .map(|s| s["in_flight"].as_u64().unwrap_or(0))
            .sum()
    }

    /// Waits until exactly `count` requests are in flight on all servers together.
    pub async fn wait_in_flight(&self, count: u64, deadline: Duration) {
        eventually(
            deadline,
            &format!("{count} request(s) in flight"),
            || async { (self.total_in_flight().await == count).then_some(()) },
        )
        .await;
    }

    /// Waits for the proxy process to exit and returns its status.
    pub async fn wait_exit(&mut self, deadline: Duration) -> std::process::ExitStatus {
        self.child.wait_exit(deadline).await
    }

    pub async fn server_healthy(&self, addr: SocketAddr) -> Option<bool> {
        self.server_report(addr).await?["healthy"].as_bool()
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        client()
            .get(format!("{}{path}", self.admin))
            .send()
            .await
            .expect("admin")
            .json()
            .await
            .expect("json")
    }

    /// POSTs to the admin API and returns the status with the JSON body.
    pub async fn admin_post(&self, path: &str) -> (u16, Value) {
        self.admin_send(reqwest::Method::POST, path).await
    }

    /// DELETEs on the admin API and returns the status with the JSON body.
    pub async fn admin_delete(&self, path: &str) -> (u16, Value) {
        self.admin_send(reqwest::Method::DELETE, path).await
    }

    async fn admin_send(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let response = client()
            .request(method, format!("{}{path}", self.admin))
            .send()
            .await
            .expect("admin");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The reload journal, newest first.
    pub async fn reloads(&self) -> Vec<Value> {
        self.admin_get("/admin/reloads").await["reloads"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The admin report of one server, if the current config lists it.
    pub async fn server_report(&self, addr: SocketAddr) -> Option<Value> {
        let upstreams = self.upstreams().await;
        upstreams["upstreams"]
            .as_array()?
            .iter()
            .flat_map(|g| g["servers"].as_array().cloned().unwrap_or_default())
            .find(|s| s["addr"] == addr.to_string())
    }

    pub fn signal(&self, signal: Signal) {
        self.child.signal(signal);
    }

    pub fn log(&self) -> String {
        self.child.log()
    }
}

/// The value of the sample whose line starts with `series` (name plus labels, as exposed).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// The proxy's `GET /metrics` (Prometheus text exposition).
pub async fn scrape(proxy: &TestProxy) -> String {
    let response = client()
        .get(format!("{}/metrics", proxy.admin))
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .expect("content type")
        .starts_with("text/plain"));
    response.text().await.expect("exposition")
}

/// A test server on a runtime of its own, bound to a free port: `accept` runs for each
/// connection. Dropping it stops the runtime in the background (a test drops it inside its
/// own runtime, where a blocking shutdown would panic), cutting every connection as a crash
/// would.
pub struct ServerRuntime {
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl ServerRuntime {
    pub fn serve<F, Fut>(accept: F) -> ServerRuntime
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(accept(tcp));
            }
        });
        ServerRuntime {
            addr,
            runtime: Some(runtime),
        }
    }
}

impl Drop for ServerRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
