//! Admission: the steps a request passes before it may go upstream, in order (request id,
//! header size, route, token, pool and strategy, then the cache). Each step either fills the
//! request context or stops the request with a reason; `request_filter` answers every stop in
//! one place.

use super::caching;
use super::{Proxy, RequestCtx};
use crate::balance::Strategy;
use crate::config::RouteAuth;
use crate::error::{Answer, Reject};
use crate::headers;
use crate::upstream::UpstreamPool;
use pingora::prelude::Session;
use pingora::Error;
use std::sync::Arc;

/// What admission decided for a request it let through.
pub(super) enum Admitted {
    /// Go to an upstream.
    Forward,
    /// Already answered from the cache.
    Served,
}

/// Why admission stopped a request.
pub(super) enum Stop {
    /// The proxy answers it itself.
    Answer(Answer),
    /// Reading or writing the session failed.
    Error(Box<Error>),
}

impl From<Reject> for Stop {
    /// Every refusal of admission passes here, so it is counted here, once.
    fn from(reject: Reject) -> Stop {
        crate::listeners::count_refusal(&reject);
        Stop::Answer(reject.into())
    }
}

impl From<Box<Error>> for Stop {
    fn from(error: Box<Error>) -> Stop {
        Stop::Error(error)
    }
}

impl Proxy {
    /// Runs the admission steps in order.
    pub(super) async fn admit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Admitted, Stop> {
        ctx.request_id = match session.req_header().headers.get(headers::names::REQUEST_ID) {
            Some(value) if headers::valid_request_id(value.as_bytes()) => value.clone(),
            _ => headers::new_request_id(),
        };
        // Decided first, so that every answer, refusals included, follows it.
        ctx.explain.debug = super::debug::allowed(session, &ctx.snapshot);
        // Without `debug` the explanation is never built: the header is not even looked up. Decided
        // here, so that every answer, the HTTPS redirect's included, can explain itself.
        ctx.explain.wanted = ctx.explain.debug
            && session
                .req_header()
                .headers
                .get(headers::names::EXPLAIN)
                .is_some_and(|v| {
                    v.as_bytes() == b"1" || v.as_bytes().eq_ignore_ascii_case(b"true")
                });
        super::spans::start(session, ctx);
        super::request_head::admit_framing(session, ctx)?;
        check_header_size(session, ctx)?;
        // `[proxy]`'s IP lists come before anything else learns about the request.
        super::gates::check_proxy_ip(session, ctx)?;
        let route = resolve_route(session, ctx);
        // Plain HTTP may be sent to HTTPS before anything else (the route decides when it has
        // its own setting); a request no route matches is redirected too.
        let snapshot = ctx.snapshot.clone();
        let route_config = route.as_ref().ok().and_then(|&i| snapshot.routes.get(i));
        if let Some(answer) = super::rules::https_redirect(session, ctx, route_config) {
            ctx.route = route.ok();
            return Err(Stop::Answer(answer));
        }
        let route = route?;
        // The token is checked before anything else touches the request: no upstream and no
        // cache lookup for a request that fails auth.
        ctx.route = Some(route);
        super::request_head::limit_body(session, ctx)?;
        let claims = if self.is_guarded_invalidation(session, ctx) {
            // The admin token replaces the route's JWT here: `Authorization` cannot carry both,
            // and purging the cache is an operator's act, not an end user's.
            let token = ctx.snapshot.config.admin().token.as_ref();
            let presented = session
                .req_header()
                .headers
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes());
            if !token.is_some_and(|token| token.authorizes(presented)) {
                return Err(Stop::Answer(Answer::admin_token_required()));
            }
            None
        } else {
            // The route's IP lists, the CORS preflight, then its auth (JWT, basic, forward).
            let began = super::spans::mark(ctx);
            let checked = Box::pin(super::gates::check_route(self, session, ctx, route))
                .await
                .map_err(|stopped| match stopped {
                    super::gates::Stopped::Refused(reject) => Stop::from(reject),
                    super::gates::Stopped::Preflight(answer) => Stop::Answer(answer),
                });
            if ctx.client.token_verified || checked.is_err() {
                super::spans::phase(ctx, "auth", began, None);
            }
            checked?
        };
        super::tunnel::admit(session, ctx, route)?;
        // A route that answers by itself has no pool.
        if let Some(pool) = super::split_route::pool_for(session, ctx, route) {
            ctx.strategy = strategy(session, &pool)?;
            ctx.affinity.hint = super::balancing_hints::hint(session, ctx, &pool);
            ctx.pool = Some(pool);
        }
        // Limits count only requests that passed auth, and refuse before the cache or an
        // upstream does any work.
        // Borrowed, not cloned: most routes have no limits, and this runs on every request.
        let remote = self.shared.cache().remote().map(|remote| &**remote);
        let began = super::spans::mark(ctx).filter(|_| {
            ctx.snapshot
                .limits
                .get(route)
                .is_some_and(|limits| !limits.is_empty())
        });
        let limited =
            super::rate_limiting::check_rate_limits(session, ctx, route, claims.as_ref(), remote)
                .await;
        super::spans::phase(ctx, "ratelimit", began, None);
        limited?;
        if let Some(route_config) = snapshot.routes.get(route) {
            if let Some(answer) = super::rules::route_answer(session, ctx, route_config) {
                return Err(Stop::Answer(answer));
            }
            // Header rules may name the token's claims: kept only for a route that has some.
            if !route_config.request_headers.is_empty() || !route_config.response_headers.is_empty()
            {
                ctx.client.claims = claims;
            }
        }
        // A redirect whose path_regex did not match, on a route with no upstream.
        if ctx.pool.is_none() {
            return Err(Reject::NoRoute {
                path: session.req_header().uri.path().to_string(),
            }
            .into());
        }
        let admitted = self.consult_cache(session, ctx, route).await?;
        if matches!(admitted, Admitted::Forward) {
            super::mirror_copy::start(session, ctx, route);
        }
        Ok(admitted)
    }

    /// Whether this is `POST /cache/invalidate` on a proxy with a cache and an admin token,
    /// which then needs the token. Without a token it stays governed by its route's `auth`, as
    /// in the seed.
    fn is_guarded_invalidation(&self, session: &Session, ctx: &RequestCtx) -> bool {
        let req = session.req_header();
        ctx.snapshot.config.admin().token.is_some()
            && req.method == http::Method::POST
            && req.uri.path() == caching::INVALIDATE_PATH
            && self.cache.for_config(&ctx.snapshot.cache).is_some()
    }

    /// On `auth = "jwt"` routes, verifies the bearer token and counts the outcome; returns
    /// the token's claims (for rate limits keyed by a claim).
    pub(super) fn check_token(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
        route: usize,
    ) -> Result<Option<serde_json::Value>, Reject> {
        if ctx.snapshot.routes.get(route).map(|r| r.auth) != Some(RouteAuth::Jwt) {
            return Ok(None);
        }
        let verified = match ctx.snapshot.config.auth() {
            Some(auth) => auth.verifier.verify_header(
                session
                    .req_header()
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .map(|v| v.as_bytes()),
            ),
            None => Err(scalelab_auth::Rejection::Internal),
        };
        self.shared
            .auth_outcomes()
            .count(scalelab_auth::outcome_label(&verified));
        let claims = verified.map_err(Reject::Unauthorized)?;
        ctx.client.token_verified = true;
        ctx.client.subject = claims.sub;
        Ok(Some(claims.raw))
    }

    /// The cache's step, on routes of a config with `[cache]`: the invalidation endpoint, or a
    /// lookup that may answer the request from the store.
    async fn consult_cache(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: usize,
    ) -> Result<Admitted, Stop> {
        // An upgrade is never answered from the cache, stored or coalesced: each one is its
        // own connection to a server.
        if ctx.upgrade.is_some() {
            return Ok(Admitted::Forward);
        }
        let snapshot = ctx.snapshot.clone();
        let Some(store) = self.cache.for_config(&snapshot.cache) else {
            return Ok(Admitted::Forward);
        };
        let req = session.req_header();
        if req.method == http::Method::POST && req.uri.path() == caching::INVALIDATE_PATH {
            return Err(Stop::Answer(
                Box::pin(caching::invalidate(session, &store)).await?,
            ));
        }
        let cacheable_method = matches!(req.method, http::Method::GET | http::Method::HEAD);
        match snapshot.routes.get(route).and_then(|r| r.cache.as_ref()) {
            Some(route_cache) if cacheable_method => {
                // Boxed like the rate limits' check: a lookup's state (the memory tiers, the
                // Redis tier, waiting for a fill) stays out of the routes that do not cache.
                let began = super::spans::mark(ctx);
                let served = Box::pin(caching::lookup(session, ctx, store, route_cache)).await;
                let result = ctx
                    .cache
                    .as_ref()
                    .map(|cache| cache.served.unwrap_or(cache.origin_word()));
                super::spans::phase(ctx, "cache", began, result);
                if served? {
                    Ok(Admitted::Served)
                } else {
                    Ok(Admitted::Forward)
                }
            }
            _ => Ok(Admitted::Forward),
        }
    }
}

/// Refuses a request header section over `[proxy] max_header_bytes` (431).
fn check_header_size(session: &Session, ctx: &RequestCtx) -> Result<(), Reject> {
    let limit = ctx.snapshot.config.proxy().max_header_bytes;
    let req = session.req_header();
    // The size as it arrived, roughly: names, values and separators, plus the target.
    let size = req
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + req.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if size > limit {
        return Err(Reject::HeadersTooLarge { size, limit });
    }
    Ok(())
}

/// The route for the request's host, path and method (404 when none matches).
fn resolve_route(session: &Session, ctx: &RequestCtx) -> Result<usize, Reject> {
    let req = session.req_header();
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.host());
    ctx.snapshot
        .routes
        .resolve(host, req.uri.path(), &req.method)
        .ok_or_else(|| Reject::NoRoute {
            path: req.uri.path().to_string(),
        })
}

/// The pool's strategy, or the one the request asks for with `?strategy=` or the override
/// header (400 for an unknown name).
fn strategy(session: &Session, pool: &Arc<UpstreamPool>) -> Result<Strategy, Reject> {
    let req = session.req_header();
    let requested = req
        .uri
        .query()
        .and_then(|q| headers::query_param(q, headers::STRATEGY_PARAM))
        .or_else(|| {
            req.headers
                .get(headers::names::STRATEGY_OVERRIDE)
                .and_then(|v| v.to_str().ok())
        });
    match requested {
        None => Ok(pool.config.strategy),
        Some(name) => Strategy::parse(name).ok_or_else(|| Reject::UnknownStrategy {
            given: name.to_string(),
        }),
    }
}
