//! `Proxy`: the pingora `ProxyHttp` implementation. Each phase only moves data between the
//! request context and the pure modules (`routing`, `balance`, `headers`, `error`, `cache`).

mod admission;
mod answer;
mod balancing_hints;
mod caching;
mod compress;
mod context;
mod debug;
mod gates;
mod mirror_copy;
mod observe;
mod own_headers;
mod rate_limiting;
mod request_head;
mod rules;
mod spans;
mod split_route;
mod tunnel;
mod upstream_peer;
mod upstream_request;

use answer::write_answer;

use crate::balance::Strategy;
use crate::cache::CacheHandle;
use crate::error::{Answer, Reject};
use crate::headers;
use crate::snapshot::Snapshot;
use crate::state::{ActiveRequest, Shared};
use crate::telemetry::UpstreamError;
use crate::upstream::UpstreamPool;
use admission::{Admitted, Stop};
use async_trait::async_trait;
use bytes::Bytes;
use http::header::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorType, Result};
use std::sync::Arc;
use std::time::Instant;

pub struct Proxy {
    shared: Shared,
    cache: Arc<CacheHandle>,
}

impl Proxy {
    pub fn new(shared: Shared) -> Proxy {
        let cache = shared.cache().clone();
        crate::compression::counters::register();
        Proxy { shared, cache }
    }
}

/// What one request carries between phases, grouped by concern (`context`).
pub struct RequestCtx {
    /// The one config this request sees from start to end.
    snapshot: Arc<Snapshot>,
    started: Instant,
    request_id: HeaderValue,
    route: Option<usize>,
    pool: Option<Arc<UpstreamPool>>,
    strategy: Strategy,
    /// Who the client is: address, verified token, subject, claims.
    client: context::Client,
    /// The tries on the group's servers.
    attempts: context::Attempts,
    /// The diagnostic headers' switch and the explain header's notes.
    explain: context::Explain,
    /// A copy of this request on its way to the route's mirror (`service::mirror_copy`).
    mirror: Option<mirror_copy::Copying>,
    /// The path sent upstream when a rule changed it, for the access log.
    upstream_path: Option<String>,
    /// The budget left under the route's rate limits, for the `RateLimit` headers.
    quota: Option<crate::ratelimit::Quota>,
    reject: Option<Reject>,
    /// Cache state when the route caches (with the `X-Cache` of a response it served).
    cache: Option<caching::CacheCtx>,
    /// The request body's limit and the bytes read so far.
    body: context::BodyLimit,
    /// Set for an upgrade request the proxy forwards, and while its tunnel is open.
    upgrade: Option<tunnel::Upgrading>,
    /// The hash key and sticky server the request brings, and the server picked.
    affinity: balancing_hints::Affinity,
    /// The response body's encoder, when `compress` encodes this response.
    compressing: Option<Box<crate::compression::Encoder>>,
    /// The request's trace context; `None` without `[tracing]` (nothing traced).
    trace: Option<crate::trace::request::RequestTrace>,
    /// Phases and upstream tries, kept only for a sampled request or `Server-Timing`.
    timeline: Option<Box<crate::trace::request::Timeline>>,
    /// What the access gates leave for later phases (`service::gates`).
    access: gates::AccessCtx,
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
            .is_some_and(|pool| self.attempts.count <= pool.config.retries)
    }
}

#[async_trait]
impl ProxyHttp for Proxy {
    /// Boxed: Pingora holds the context by value in each request's future, and copies that
    /// future whole at the start of every request. Inline, the context's 928 bytes made
    /// scalelab copy about 2.7 KB more per request than bare Pingora (bench/RESULTS.md); boxed
    /// it is one pointer and one allocation.
    type CTX = Box<RequestCtx>;

    /// No downstream modules: pingora's default adds a (disabled) compression module whose
    /// filters would still run on every request and every body chunk.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    /// Takes the current snapshot and counts the request as active (for draining).
    fn new_ctx(&self) -> Box<RequestCtx> {
        Box::new(RequestCtx {
            snapshot: self.shared.snapshot(),
            started: Instant::now(),
            request_id: HeaderValue::from_static("-"),
            route: None,
            pool: None,
            strategy: Strategy::RoundRobin,
            client: context::Client::default(),
            attempts: context::Attempts::default(),
            explain: context::Explain::default(),
            mirror: None,
            upstream_path: None,
            quota: None,
            reject: None,
            cache: None,
            body: context::BodyLimit::default(),
            upgrade: None,
            affinity: balancing_hints::Affinity::default(),
            compressing: None,
            trace: None,
            timeline: None,
            access: gates::AccessCtx::default(),
            _active: self.shared.start_request(),
        })
    }

    /// Runs the admission steps (`admit`); a step that stops the request is answered here.
    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<bool> {
        match self.admit(session, ctx).await {
            Ok(Admitted::Forward) => Ok(false),
            Ok(Admitted::Served) => Ok(true),
            Err(Stop::Answer(answer)) => {
                // Boxed: writing a refusal is rare, and its state would otherwise enlarge the
                // future of every request.
                Box::pin(write_answer(session, ctx, &answer)).await?;
                Ok(true)
            }
            Err(Stop::Error(error)) => Err(error),
        }
    }

    /// Enforces the body limit on bodies without a Content-Length (chunked).
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        mirror_copy::on_body(ctx, body.as_ref(), end_of_stream);
        request_head::count_body(ctx, body.as_ref()).map_err(|reject| {
            ctx.reject = Some(reject);
            Error::explain(ErrorType::HTTPStatus(413), "request body too large")
        })
    }

    /// Picks a server (never one this request already tried) and takes its in-flight slot,
    /// queueing while every candidate is at its `max_connections`.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<Box<HttpPeer>> {
        let mut peer = upstream_peer::upstream_peer(ctx).await?;
        tunnel::prepare_peer(&mut peer, ctx);
        Ok(peer)
    }

    /// Nothing reached the server, so any method may go to another one; the failure also takes
    /// the server out of rotation at once (passive health).
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Box<RequestCtx>,
        mut e: Box<Error>,
    ) -> Box<Error> {
        spans::attempt_failed(ctx, &e);
        if let (Some(lease), Some(pool)) = (&ctx.attempts.lease, &ctx.pool) {
            let server = lease.server();
            if ctx.snapshot.config.proxy().request_metrics {
                server.metrics.error(UpstreamError::of(e.etype()));
            }
            if server.record_connect_failure(
                pool.config.health_check.is_some(),
                pool.config.fail_timeout,
            ) {
                server.metrics.health_transition(false);
                tracing::warn!(
                    upstream = %pool.name(), server = %server.addr, error = %e.etype().as_str(),
                    "server is unhealthy: connection failed, out of rotation"
                );
            }
        }
        ctx.attempts.last_failure = Reject::from_proxy_error(&e, ctx.upstream_name());
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
        ctx: &mut Box<RequestCtx>,
        _client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("peer: {peer}"));
        if !ctx.attempts.responded && e.esource() == &pingora::ErrorSource::Upstream {
            balancing_hints::observe_try(ctx, None);
            spans::attempt_failed(ctx, &e);
        }
        if ctx.snapshot.config.proxy().request_metrics
            && e.esource() == &pingora::ErrorSource::Upstream
        {
            if let Some(lease) = &ctx.attempts.lease {
                lease.server().metrics.error(UpstreamError::of(e.etype()));
            }
        }
        let retry = !ctx.attempts.responded
            && e.esource() == &pingora::ErrorSource::Upstream
            && upstream_peer::is_idempotent(&session.req_header().method)
            && !session.as_ref().retry_buffer_truncated()
            && ctx.retries_left();
        if retry {
            ctx.attempts.last_failure = Reject::from_proxy_error(&e, ctx.upstream_name());
        }
        e.set_retry(retry);
        e
    }

    /// Removes the override parameter and control headers; adds forwarding headers.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        upstream_request::rewrite_upstream_request(session, upstream_request, ctx)?;
        compress::upstream_request(ctx, upstream_request);
        mirror_copy::capture_head(ctx, upstream_request);
        Ok(())
    }

    /// Marks the response as started and drops hop-by-hop fields.
    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        ctx.attempts.responded = true;
        balancing_hints::observe_try(ctx, Some(upstream_response.status.as_u16()));
        spans::attempt_responded(ctx, upstream_response.status.as_u16());
        if ctx.snapshot.config.proxy().request_metrics {
            if let (Some(lease), Some(started)) = (&ctx.attempts.lease, ctx.attempts.started) {
                lease
                    .server()
                    .metrics
                    .response(upstream_response.status.as_u16(), started.elapsed());
            }
        }
        caching::on_upstream_response(session, ctx, upstream_response)?;
        tunnel::on_response(session, ctx, upstream_response.status);
        // A 101's `Connection: upgrade` and `Upgrade` are the switch itself: they must reach
        // the client.
        if upstream_response.status == http::StatusCode::SWITCHING_PROTOCOLS {
            return Ok(());
        }
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
        for name in headers::present(&upstream_response.headers, &headers::HOP_BY_HOP_RESPONSE) {
            upstream_response.remove_header(name);
        }
        Ok(())
    }

    /// The sticky cookie and the cache's headers, then the proxy's own headers and the response
    /// header rules (`own_headers`, the writer of every answer's).
    async fn response_filter(
        &self,
        session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        balancing_hints::set_cookie(ctx, response)?;
        caching::decorate(ctx, response)?;
        compress::on_response(session, ctx, response)?;
        own_headers::write(session, ctx, response, own_headers::Origin::Proxied)?;
        Ok(())
    }

    /// Collects cacheable bodies as they stream by.
    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<Option<std::time::Duration>> {
        caching::on_upstream_body(ctx, body, end_of_stream);
        Ok(None)
    }

    /// Swaps an origin 5xx body for the stale object's when stale-if-error applies, then
    /// compresses it when `compress` applies.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<Option<std::time::Duration>> {
        caching::replace_body_if_stale(ctx, body);
        compress::on_body(ctx, body, end_of_stream)?;
        Ok(None)
    }

    /// The single place that answers a failed request: status and JSON from `Reject`.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Box<RequestCtx>,
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
        crate::listeners::count_refusal(&reject);
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
            if let Err(error) = write_answer(session, ctx, &Answer::from(reject)).await {
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
        ctx: &Box<RequestCtx>,
    ) -> Option<Box<dyn std::any::Any + Send + Sync>> {
        ctx.client
            .ip
            .clone()
            .map(|ip| Box::new(ip) as Box<dyn std::any::Any + Send + Sync>)
    }

    fn on_connection_reuse(
        &self,
        _session: &mut Session,
        ctx: &mut Box<RequestCtx>,
        previous: Box<dyn std::any::Any + Send + Sync>,
    ) {
        if let Ok(ip) = previous.downcast::<HeaderValue>() {
            ctx.client.ip = Some(*ip);
        }
    }

    /// Heads Pingora's parser refuses are answered, counted and logged like other refusals.
    fn request_head_error(
        &self,
        session: &pingora::protocols::http::ServerSession,
        error: &Error,
    ) -> Option<(ResponseHeader, Bytes)> {
        request_head::answer_head_error(&self.shared, session, error)
    }

    /// A client that closes its connection is not an error worth a log line of its own; the
    /// access log still records the request.
    fn suppress_error_log(
        &self,
        _session: &Session,
        _ctx: &Box<RequestCtx>,
        error: &Error,
    ) -> bool {
        error.esource() == &pingora::ErrorSource::Downstream
            && matches!(
                error.etype(),
                ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
            )
    }

    /// One access-log line per request; releases the in-flight slot.
    async fn logging(
        &self,
        session: &mut Session,
        error: Option<&Error>,
        ctx: &mut Box<RequestCtx>,
    ) {
        let status = session
            .response_written()
            .map_or(0, |response| response.status.as_u16());
        // One clock read for both the log line and the latency series.
        let elapsed = ctx.started.elapsed();
        observe::access_log(session, error, ctx, status, elapsed);
        spans::finish(session, ctx, status, error);
        if ctx.snapshot.config.proxy().request_metrics {
            observe::record_request(session, ctx, status, elapsed);
        }
        mirror_copy::finish(ctx);
        ctx.attempts.lease = None;
    }
}
