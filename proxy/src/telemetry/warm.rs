//! Which request series a route has from its start (at 0), so that the first requests of a
//! route are seen by Prometheus' `rate()` and `increase()` (see `RouteMetrics::warm`). Pure.
//!
//! Not every combination: a route would then hold 660 request series (10 methods, 22 codes,
//! 3 protocols) that mostly never move. The set is what a route's configuration says it will
//! answer: its methods (GET when it names none), the protocols its listeners speak, 200 and
//! the failures every proxied route can give (500, 502, 503, 504), 401 when it verifies tokens,
//! 429 when it has rate limits, and 304 on a cached route; cache-use labels only where the
//! cache is on. Requests no route matched (`none`) start with their 404.

use super::{CacheUse, Protocol};
use crate::config::{Route, RouteAuth};
use http::Method;

/// The series a route starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub methods: Vec<Method>,
    pub protocols: Vec<Protocol>,
    pub codes: Vec<u16>,
    pub caches: Vec<CacheUse>,
}

impl Expected {
    /// For `route`, or for the requests no route matched when `None`; `h2` when a listener
    /// speaks HTTP/2 (`h2c`, or HTTPS with ALPN).
    pub fn of(route: Option<&Route>, h2: bool) -> Expected {
        let mut protocols = vec![Protocol::Http11];
        if h2 {
            protocols.push(Protocol::H2);
        }
        let Some(route) = route else {
            return Expected {
                methods: vec![Method::GET],
                protocols,
                codes: vec![404],
                caches: vec![CacheUse::None],
            };
        };
        let methods = match &route.methods {
            Some(methods) if !methods.is_empty() => methods.clone(),
            _ => vec![Method::GET],
        };
        let mut codes = vec![200, 500, 502, 503, 504];
        if route.auth != RouteAuth::None {
            codes.push(401);
        }
        if !route.rate_limits.is_empty() {
            codes.push(429);
        }
        let caches = if route.cache.is_some() {
            codes.push(304);
            vec![
                CacheUse::Hit,
                CacheUse::Miss,
                CacheUse::Stale,
                CacheUse::Bypass,
            ]
        } else {
            vec![CacheUse::None]
        };
        codes.sort_unstable();
        Expected {
            methods,
            protocols,
            codes,
            caches,
        }
    }
}
