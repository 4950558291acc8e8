//! `Proxy`: the pingora `ProxyHttp` implementation. Each phase only moves data between the
//! request context and the pure modules (`routing`, `balance`, `headers`, `error`, `cache`).

mod caching;

use crate::balance::Strategy;
use crate::cache::CacheHandle;
use crate::config::RouteAuth;
use crate::error::Reject;
use crate::headers;
use crate::snapshot::Snapshot;
use crate::state::{ActiveRequest, Shared};
use crate::upstream::{Lease, UpstreamPool};
use async_trait::async_trait;
use bytes::Bytes;
use http::header::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorType, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub struct Proxy {
    shared: Shared,
    cache: Arc<CacheHandle>,
}

impl Proxy {
    pub fn new(shared: Shared) -> Proxy {
        let cache = shared.cache().clone();
        Proxy { shared, cache }
    }
}

/// What one request carries between phases.
pub struct RequestCtx {
    /// The one config this request sees from start to end.
    snapshot: Arc<Snapshot>,
    started: Instant,
    request_id: HeaderValue,
    route: Option<usize>,
    pool: Option<Arc<UpstreamPool>>,
    strategy: Strategy,
    explain: bool,
    explanation: Option<String>,
    /// The in-flight slot on the server currently tried; replaced on retry, dropped at the end.
    lease: Option<Lease>,
    /// Bit per server index already tried by this request.
    tried: u64,
    attempts: u32,
    /// Set once upstream response headers arrived: nothing may be retried after that.
    responded: bool,
    reject: Option<Reject>,
    /// Why the last try failed, reported when no server is left to retry on.
    last_failure: Option<Reject>,
    /// Cache state when the route caches.
    cache: Option<caching::CacheCtx>,
    /// `X-Cache` of a response served from the cache, for the access log.
    cache_served: Option<&'static str>,
    /// The proxy verified this request's token (so its response may be cached).
    token_verified: bool,
    /// `sub` of the verified token, sent upstream as `X-Auth-Subject`.
    auth_subject: Option<String>,
    /// The client's IP as a header value, carried across keep-alive requests of one
    /// connection so it is looked up and formatted once per connection, not per request.
    client_ip: Option<HeaderValue>,
    _active: ActiveRequest,
}

impl RequestCtx {
    fn upstream_name(&self) -> Option<&str> {
        self.pool.as_deref().map(UpstreamPool::name)
    }

    fn route_name(&self) -> &str {
        self.route
            .and_then(|i| self.snapshot.routes.get(i))
            .map_or("unmatched", |route| route.name.as_str())
    }

    fn retries_left(&self) -> bool {
        self.pool
            .as_ref()
            .is_some_and(|pool| self.attempts <= pool.config.retries)
    }
}

fn is_idempotent(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::PUT
            | http::Method::DELETE
            | http::Method::TRACE
    )
}

/// Writes the JSON error response for `reject`; the only writer of proxy-made error responses.
async fn respond(session: &mut Session, ctx: &RequestCtx, reject: &Reject) -> Result<()> {
    let no_store = reject.status() >= 500 || reject.status() == 401;
    write_json(
        session,
        ctx,
        reject.status(),
        reject.body(),
        reject.extra_header(),
        no_store,
    )
    .await
}

/// Writes a JSON answer the proxy makes itself (the invalidation endpoint).
async fn respond_json(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    value: serde_json::Value,
) -> Result<()> {
    write_json(
        session,
        ctx,
        status,
        value.to_string().into_bytes(),
        None,
        false,
    )
    .await
}

async fn write_json(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    body: Vec<u8>,
    extra_header: Option<(&'static str, String)>,
    no_store: bool,
) -> Result<()> {
    let body = Bytes::from(body);
    let mut header = ResponseHeader::build(status, Some(6))?;
    header.insert_header("content-type", "application/json")?;
    header.insert_header("content-length", body.len().to_string())?;
    header.insert_header("x-request-id", ctx.request_id.clone())?;
    header.insert_header(
        "x-config-generation",
        ctx.snapshot.generation_header.clone(),
    )?;
    if no_store {
        header.insert_header("cache-control", "no-store")?;
    }
    if let Some((name, value)) = extra_header {
        header.insert_header(name, value)?;
    }
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// The size of the request header section as it arrived, roughly (name, value, separators).
fn header_bytes(session: &Session) -> usize {
    let req = session.req_header();
    req.headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + req.uri.path_and_query().map_or(0, |p| p.as_str().len())
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = RequestCtx;

    /// No downstream modules: pingora's default adds a (disabled) compression module whose
    /// filters would still run on every request and every body chunk.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    /// Takes the current snapshot and counts the request as active (for draining).
    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            snapshot: self.shared.snapshot(),
            started: Instant::now(),
            request_id: HeaderValue::from_static("-"),
            route: None,
            pool: None,
            strategy: Strategy::RoundRobin,
            explain: false,
            explanation: None,
            lease: None,
            tried: 0,
            attempts: 0,
            responded: false,
            reject: None,
            last_failure: None,
            cache: None,
            cache_served: None,
            token_verified: false,
            auth_subject: None,
            client_ip: None,
            _active: self.shared.start_request(),
        }
    }

    /// Request id, header size limit, route, strategy override; answers 404/400/431 itself.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.request_id = match session.req_header().headers.get(headers::REQUEST_ID) {
            Some(value) if headers::valid_request_id(value.as_bytes()) => value.clone(),
            _ => headers::new_request_id(),
        };
        let limit = ctx.snapshot.config.proxy.max_header_bytes;
        let size = header_bytes(session);
        if size > limit {
            let reject = Reject::HeadersTooLarge { size, limit };
            respond(session, ctx, &reject).await?;
            return Ok(true);
        }
        let req = session.req_header();
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.host());
        let Some(route) = ctx
            .snapshot
            .routes
            .resolve(host, req.uri.path(), &req.method)
        else {
            let reject = Reject::NoRoute {
                path: req.uri.path().to_string(),
            };
            respond(session, ctx, &reject).await?;
            return Ok(true);
        };
        // The token is checked before anything else touches the request: no upstream and no
        // cache lookup for a request that fails auth.
        let route_auth = ctx.snapshot.routes.get(route).map(|r| r.auth);
        if route_auth == Some(RouteAuth::Jwt) {
            let verified = match ctx.snapshot.config.auth.as_ref() {
                Some(auth) => auth.verifier.verify_header(
                    req.headers
                        .get(http::header::AUTHORIZATION)
                        .map(|v| v.as_bytes()),
                ),
                None => Err(scalelab_auth::Rejection::Internal),
            };
            count_auth_outcome(scalelab_auth::outcome_label(&verified));
            match verified {
                Ok(claims) => {
                    ctx.token_verified = true;
                    ctx.auth_subject = claims.sub;
                }
                Err(rejection) => {
                    ctx.route = Some(route);
                    respond(session, ctx, &Reject::Unauthorized(rejection)).await?;
                    return Ok(true);
                }
            }
        }
        let req = session.req_header();
        let Some(pool) = ctx.snapshot.pool_for_route(route).cloned() else {
            respond(session, ctx, &Reject::Internal).await?;
            return Ok(true);
        };
        let requested = req
            .uri
            .query()
            .and_then(|q| headers::query_param(q, headers::STRATEGY_PARAM))
            .or_else(|| {
                req.headers
                    .get(headers::STRATEGY_OVERRIDE)
                    .and_then(|v| v.to_str().ok())
            });
        ctx.strategy = match requested {
            None => pool.config.strategy,
            Some(name) => match Strategy::parse(name) {
                Some(strategy) => strategy,
                None => {
                    let reject = Reject::UnknownStrategy {
                        given: name.to_string(),
                    };
                    respond(session, ctx, &reject).await?;
                    return Ok(true);
                }
            },
        };
        ctx.explain = req
            .headers
            .get(headers::EXPLAIN)
            .is_some_and(|v| v.as_bytes() == b"1" || v.as_bytes().eq_ignore_ascii_case(b"true"));
        ctx.route = Some(route);
        ctx.pool = Some(pool);

        let snapshot = ctx.snapshot.clone();
        let Some(store) = self.cache.for_config(&snapshot.cache) else {
            return Ok(false);
        };
        let req = session.req_header();
        if req.method == http::Method::POST && req.uri.path() == "/cache/invalidate" {
            let (status, body) = caching::invalidate(session, ctx, &store).await?;
            respond_json(session, ctx, status, body).await?;
            return Ok(true);
        }
        let cacheable_method = matches!(req.method, http::Method::GET | http::Method::HEAD);
        match snapshot.routes.get(route).and_then(|r| r.cache.as_ref()) {
            Some(route_cache) if cacheable_method => {
                caching::lookup(session, ctx, store, route_cache).await
            }
            _ => Ok(false),
        }
    }

    /// Picks a server (never one this request already tried) and takes its in-flight slot.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(pool) = ctx.pool.clone() else {
            ctx.reject = Some(Reject::Internal);
            return Err(Error::explain(
                ErrorType::HTTPStatus(500),
                "no pool for request",
            ));
        };
        // Release the previous try's slot before picking, so it does not weigh on the choice.
        ctx.lease = None;
        let Some((selection, lease)) = pool.select(ctx.strategy, ctx.tried, ctx.explain) else {
            // After failed tries the client learns why they failed, not just that nothing is left.
            ctx.reject = Some(
                ctx.last_failure
                    .take()
                    .unwrap_or(Reject::NoHealthyUpstream {
                        upstream: pool.name().to_string(),
                    }),
            );
            return Err(Error::explain(
                ErrorType::HTTPStatus(503),
                "no healthy upstream",
            ));
        };
        ctx.tried |= 1 << selection.index;
        ctx.attempts += 1;
        if selection.explanation.is_some() {
            ctx.explanation = selection.explanation;
        }
        let addr = lease.server().addr;
        ctx.lease = Some(lease);
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.connection_timeout = Some(pool.config.connect_timeout);
        peer.options.read_timeout = Some(pool.config.read_timeout);
        peer.options.write_timeout = Some(pool.config.read_timeout);
        Ok(Box::new(peer))
    }

    /// Nothing reached the server, so any method may go to another one; the failure also takes
    /// the server out of rotation at once (passive health).
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let (Some(lease), Some(pool)) = (&ctx.lease, &ctx.pool) {
            let server = lease.server();
            if server.record_connect_failure(
                pool.config.health_check.is_some(),
                pool.config.fail_timeout,
            ) {
                tracing::warn!(
                    upstream = %pool.name(), server = %server.addr, error = %e.etype().as_str(),
                    "server is unhealthy: connection failed, out of rotation"
                );
            }
        }
        ctx.last_failure = Reject::from_proxy_error(&e, ctx.upstream_name());
        e.set_retry(ctx.retries_left());
        e
    }

    /// After bytes were sent, only idempotent requests whose response has not started (and whose
    /// body is still buffered) are retried; a POST is never replayed.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        _client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("peer: {peer}"));
        let retry = !ctx.responded
            && e.esource() == &pingora::ErrorSource::Upstream
            && is_idempotent(&session.req_header().method)
            && !session.as_ref().retry_buffer_truncated()
            && ctx.retries_left();
        if retry {
            ctx.last_failure = Reject::from_proxy_error(&e, ctx.upstream_name());
        }
        e.set_retry(retry);
        e
    }

    /// Removes the override parameter and control headers; adds forwarding headers.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let strip = ctx
            .route
            .and_then(|r| ctx.snapshot.routes.get(r))
            .filter(|route| route.strip_prefix)
            .map(|route| route.path.as_str());
        let path = match strip {
            Some(prefix) => headers::strip_path_prefix(upstream_request.uri.path(), prefix),
            None => std::borrow::Cow::Borrowed(upstream_request.uri.path()),
        };
        let query = upstream_request.uri.query();
        let rewritten =
            headers::strip_query_param(&path, query, headers::STRATEGY_PARAM).or_else(|| {
                (path != upstream_request.uri.path()).then(|| match query {
                    Some(q) => format!("{path}?{q}"),
                    None => path.to_string(),
                })
            });
        if let Some(rewritten) = rewritten {
            let uri = rewritten
                .parse::<http::Uri>()
                .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "bad rewritten uri"))?;
            upstream_request.set_uri(uri);
        }
        upstream_request.remove_header(headers::STRATEGY_OVERRIDE);
        upstream_request.remove_header(headers::EXPLAIN);
        // Identity headers are the proxy's to set; a client's own are never passed on.
        upstream_request.remove_header(headers::AUTH_SUBJECT);
        upstream_request.remove_header(headers::AUTH_CLAIMS);
        // A `sub` that cannot be a header value is not forwarded rather than failing the request.
        if let Some(subject) = ctx
            .auth_subject
            .as_deref()
            .and_then(|s| HeaderValue::from_str(s).ok())
        {
            upstream_request.insert_header(headers::AUTH_SUBJECT, subject)?;
        }
        if ctx.client_ip.is_none() {
            ctx.client_ip = session
                .client_addr()
                .and_then(|a| a.as_inet())
                .and_then(|addr| HeaderValue::from_str(&addr.ip().to_string()).ok());
        }
        if let Some(client_ip) = &ctx.client_ip {
            match upstream_request
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(existing) => {
                    let chain =
                        headers::forwarded_for(Some(existing), client_ip.to_str().unwrap_or(""));
                    upstream_request.insert_header("x-forwarded-for", chain)?;
                }
                None => upstream_request.insert_header("x-forwarded-for", client_ip.clone())?,
            }
        }
        upstream_request.insert_header("x-forwarded-proto", "http")?;
        upstream_request.insert_header("x-request-id", ctx.request_id.clone())?;
        Ok(())
    }

    /// Marks the response as started and drops hop-by-hop fields.
    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.responded = true;
        caching::on_upstream_response(session, ctx, upstream_response)?;
        let nominated: Vec<String> = upstream_response
            .headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| headers::connection_nominated(v).collect::<Vec<_>>())
            .collect();
        for name in nominated {
            upstream_response.remove_header(name.as_str());
        }
        if upstream_response.status != http::StatusCode::SWITCHING_PROTOCOLS {
            for name in headers::HOP_BY_HOP_RESPONSE {
                upstream_response.remove_header(name);
            }
        }
        Ok(())
    }

    /// Explain headers on every proxied response.
    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        response.insert_header("x-request-id", ctx.request_id.clone())?;
        response.insert_header(
            "x-config-generation",
            ctx.snapshot.generation_header.clone(),
        )?;
        response.insert_header("x-strategy", ctx.strategy.name())?;
        if let Some(lease) = &ctx.lease {
            response.insert_header("x-upstream-server", lease.server().addr_header.clone())?;
        }
        if let Some(explanation) = ctx.explanation.take() {
            response.insert_header("x-scalelab-explain", explanation)?;
        }
        caching::decorate(ctx, response)?;
        Ok(())
    }

    /// Collects cacheable bodies as they stream by.
    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        caching::on_upstream_body(ctx, body, end_of_stream);
        Ok(None)
    }

    /// Swaps an origin 5xx body for the stale object's when stale-if-error applies.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        caching::replace_body_if_stale(ctx, body);
        Ok(None)
    }

    /// The single place that answers a failed request: status and JSON from `Reject`.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let reject = ctx
            .reject
            .take()
            .or_else(|| Reject::from_proxy_error(e, ctx.upstream_name()));
        let Some(reject) = reject else {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        let code = reject.status();
        if session.response_written().is_none() && caching::serve_stale_on_error(session, ctx).await
        {
            return FailToProxy {
                error_code: 200,
                can_reuse_downstream: false,
            };
        }
        if session.response_written().is_none() {
            // The connection is not reused after a failure; say so, so clients do not race
            // their next request against the close.
            session.set_keepalive(None);
            if let Err(error) = respond(session, ctx, &reject).await {
                tracing::debug!(%error, "could not send the error response");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// Keeps the client's IP for the next request on this keep-alive connection.
    fn persist_connection_context(
        &self,
        _session: &Session,
        ctx: &RequestCtx,
    ) -> Option<Box<dyn std::any::Any + Send + Sync>> {
        ctx.client_ip
            .clone()
            .map(|ip| Box::new(ip) as Box<dyn std::any::Any + Send + Sync>)
    }

    fn on_connection_reuse(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
        previous: Box<dyn std::any::Any + Send + Sync>,
    ) {
        if let Ok(ip) = previous.downcast::<HeaderValue>() {
            ctx.client_ip = Some(*ip);
        }
    }

    /// A client that closes its connection is not an error worth a log line of its own; the
    /// access log still records the request.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        error.esource() == &pingora::ErrorSource::Downstream
            && matches!(
                error.etype(),
                ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
            )
    }

    /// One access-log line per request; releases the in-flight slot.
    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session
            .response_written()
            .map_or(0, |response| response.status.as_u16());
        let req = session.req_header();
        let server = ctx.lease.as_ref().map(|lease| lease.server().addr);
        tracing::info!(
            target: "access",
            method = %req.method,
            path = %req.uri.path(),
            status,
            route = ctx.route_name(),
            upstream = ctx.upstream_name().unwrap_or("-"),
            server = %server.map_or_else(|| "-".to_string(), |addr| addr.to_string()),
            strategy = ctx.strategy.name(),
            attempts = ctx.attempts,
            cache = ctx.cache_served.unwrap_or(if ctx.cache.is_some() { "MISS" } else { "-" }),
            duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
            request_id = ctx.request_id.to_str().unwrap_or("-"),
            error = error.map(|e| e.etype().as_str()),
        );
        ctx.lease = None;
    }
}

/// How many auth outcomes are counted: every `Rejection` reason, then `accepted`.
const AUTH_OUTCOME_COUNT: usize = scalelab_auth::Rejection::ALL_REASONS.len() + 1;

/// Token checks since the process started, one counter per outcome: every `Rejection` reason in
/// `ALL_REASONS` order, then `accepted` (for `GET /admin/auth` and the metrics issue).
static AUTH_OUTCOMES: [AtomicU64; AUTH_OUTCOME_COUNT] =
    [const { AtomicU64::new(0) }; AUTH_OUTCOME_COUNT];

fn count_auth_outcome(label: &str) {
    let reasons = scalelab_auth::Rejection::ALL_REASONS;
    let index = if label == scalelab_auth::ACCEPTED {
        Some(reasons.len())
    } else {
        reasons.iter().position(|reason| *reason == label)
    };
    if let Some(counter) = index.and_then(|i| AUTH_OUTCOMES.get(i)) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// `{"accepted": n, "rejected": {reason: n, ...}}` with every reason present.
pub fn auth_outcomes() -> serde_json::Value {
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let reasons = scalelab_auth::Rejection::ALL_REASONS;
    let rejected: serde_json::Map<String, serde_json::Value> = reasons
        .iter()
        .zip(&AUTH_OUTCOMES)
        .map(|(reason, counter)| ((*reason).to_owned(), load(counter).into()))
        .collect();
    let accepted = AUTH_OUTCOMES.get(reasons.len()).map_or(0, load);
    serde_json::json!({"accepted": accepted, "rejected": rejected})
}
