//! The cache's side of the origin's answer, as one call: whether a response is stored (and the
//! object it becomes, collected as its body arrives), the freshening of a stored object on a
//! 304, and the stale-if-error swap on a 5xx. The request path maps the `Storing` outcome to
//! headers and never sees the storage policy, the store's variants or its tiers.

use super::entry::NewEntry;
use super::policy::{self, CacheControl, Conditionals, NotStored, StoreInput, TtlSource};
use super::store::CacheStore;
use super::Entry;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use std::sync::Arc;
use std::time::Duration;

/// What the cache needs to know about the request and the origin's response head.
pub struct OriginResponse<'r> {
    /// The primary key the route's template rendered for the request.
    pub key: &'r str,
    /// The route's name, stored with the object for reports and purges.
    pub route: &'r str,
    pub method: &'r Method,
    pub status: StatusCode,
    pub headers: &'r HeaderMap,
    /// The request carried `Authorization`.
    pub request_has_authorization: bool,
    /// The proxy verified the request's token itself.
    pub proxy_verified_token: bool,
    /// The request's `?cache_ttl=` value, which overrides the response's lifetime.
    pub cache_ttl_param: Option<&'r str>,
    /// The request's conditional headers (to tell whether a 304 is about the stored object).
    pub conditionals: Conditionals<'r>,
    /// The request's header by (lower-case) name, for `Vary`.
    pub request_header: &'r dyn Fn(&str) -> Option<String>,
    /// The route's lifetimes.
    pub lifetimes: Lifetimes,
}

/// A route's object lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub default_ttl: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
}

/// What the request path does with the origin's response.
#[derive(Debug)]
pub enum Storing {
    /// The origin failed with a 5xx and a stale-if-error object was at hand: answer with it.
    ServeStale(Arc<Entry>),
    /// The origin answered 304; `detail` says what became of the stored object (`freshened`,
    /// `not-stored`, `validator-mismatch`, `no-store`).
    NotModified { detail: &'static str },
    /// The response is stored once its body has arrived: feed it to the `Collect`.
    Store {
        /// Boxed: the object under construction is large beside the other outcomes.
        collect: Box<Collect>,
        ttl: Duration,
        ttl_source: TtlSource,
    },
    /// The response is forwarded without being stored, for this reason.
    Skip(NotStored),
}

/// A response being stored: the object so far and its body as it arrives.
#[derive(Debug)]
pub struct Collect {
    new: NewEntry,
    body: BytesMut,
    max: usize,
}

impl Collect {
    /// Adds a piece of the body. Returns `false`, and should be dropped, once the body grew
    /// past the largest storable object.
    pub fn push(&mut self, chunk: &[u8]) -> bool {
        if self.body.len() + chunk.len() > self.max {
            return false;
        }
        self.body.extend_from_slice(chunk);
        true
    }

    /// The object to store, its body complete.
    pub fn finish(mut self) -> NewEntry {
        // A body of unknown length grew by doubling; don't store the slack with it.
        self.new.body = if self.body.capacity() > self.body.len() + self.body.len() / 8 {
            Bytes::copy_from_slice(&self.body)
        } else {
            self.body.freeze()
        };
        self.new
    }
}

/// Response fields never stored with an object: they describe one connection or one response.
const NOT_STORED_HEADERS: [&str; 10] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "age",
    "date",
    "set-cookie",
];

/// A response's fields that are stored with an object (or merged into it on a 304).
///
/// Each value is copied: Pingora's parsed header values are slices of the whole response read
/// buffer (4 KiB or more), so a clone would keep that buffer alive for as long as the object is
/// stored, several times the size of a small object and invisible to `max_bytes`.
fn storable_headers(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    headers
        .iter()
        .filter(|(name, _)| !NOT_STORED_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            let copy = HeaderValue::from_bytes(value.as_bytes()).ok()?;
            Some((name.clone(), copy))
        })
        .collect()
}

fn texts(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
}

impl CacheStore {
    /// Decides what becomes of the origin's response. `stale` is the stale-if-error object
    /// the lookup found, if any; it is used only when the origin failed.
    pub fn on_origin_response(
        &self,
        response: &OriginResponse<'_>,
        stale: Option<Arc<Entry>>,
    ) -> Storing {
        if response.status.is_server_error() {
            if let Some(stale) = stale {
                return Storing::ServeStale(stale);
            }
        }
        if response.status == StatusCode::NOT_MODIFIED {
            return Storing::NotModified {
                detail: self.freshen_after_304(response),
            };
        }
        let headers = response.headers;
        let response_cc = CacheControl::parse(texts(headers, http::header::CACHE_CONTROL));
        let vary: Vec<String> = texts(headers, http::header::VARY)
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        let content_length = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let settings = &self.settings;
        let decision = policy::storable(&StoreInput {
            method: response.method.as_str(),
            status: response.status.as_u16(),
            cacheable_statuses: &settings.cacheable_statuses,
            response_cc: &response_cc,
            has_set_cookie: headers.contains_key(http::header::SET_COOKIE),
            vary_star: vary.iter().any(|v| v == "*"),
            request_has_authorization: response.request_has_authorization,
            proxy_verified_token: response.proxy_verified_token,
            content_length,
            max_object_bytes: settings.max_object_bytes,
            has_trailers: policy::ends_in_trailers(headers),
        });
        if let Err(reason) = decision {
            return Storing::Skip(reason);
        }
        let lifetimes = response.lifetimes;
        let (ttl, ttl_source) = policy::freshness(
            response.cache_ttl_param,
            &response_cc,
            lifetimes.default_ttl,
        );
        if ttl.is_zero() {
            return Storing::Skip(NotStored::ZeroTtl);
        }
        let tags = texts(headers, HeaderName::from_static("surrogate-key"))
            .flat_map(str::split_whitespace)
            .map(str::to_string)
            .collect();
        let vary = vary
            .into_iter()
            .map(|name| {
                let value = (response.request_header)(&name);
                (name, value)
            })
            .collect();
        let collect = Box::new(Collect {
            new: NewEntry {
                key: response.key.to_string(),
                route: response.route.to_string(),
                status: response.status.as_u16(),
                headers: storable_headers(headers),
                body: Bytes::new(),
                head_only: response.method == Method::HEAD,
                ttl,
                ttl_source,
                stale_while_revalidate: policy::bounded(lifetimes.stale_while_revalidate),
                stale_if_error: policy::bounded(lifetimes.stale_if_error),
                tags,
                vary,
            },
            body: BytesMut::with_capacity(
                content_length
                    .unwrap_or(1024)
                    .min(settings.max_object_bytes),
            ),
            max: settings.max_object_bytes,
        });
        Storing::Store {
            collect,
            ttl,
            ttl_source,
        }
    }

    /// The origin answered 304 to a request whose validators came from the stored object (a
    /// revalidation, a background refresh, or a client's own conditional request that matches
    /// what we store): that object is current, so it gets the 304's headers and a new TTL.
    /// Returns what happened, for `Cache-Status`.
    fn freshen_after_304(&self, response: &OriginResponse<'_>) -> &'static str {
        let key = self.storage_key(response.key, response.request_header);
        let Some((_, stored)) = self.peek(&key) else {
            return "not-stored";
        };
        // The 304 must be about our representation: its ETag, when it sends one, is ours, and
        // the validators the request carried match the stored ones.
        let named_etag = response
            .headers
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok());
        let ours = named_etag.is_none_or(|etag| {
            policy::not_modified(
                Conditionals {
                    if_none_match: Some(etag),
                    if_modified_since: None,
                },
                stored.validators(),
            )
        }) && policy::not_modified(response.conditionals, stored.validators());
        if !ours {
            return "validator-mismatch";
        }
        let updates = storable_headers(response.headers);
        let mut headers: Vec<_> = stored
            .headers
            .iter()
            .filter(|(name, _)| !updates.iter().any(|(updated, _)| updated == name))
            .cloned()
            .collect();
        headers.extend(
            updates
                .into_iter()
                .filter(|(name, _)| *name != http::header::CONTENT_LENGTH),
        );
        let cc = CacheControl::parse(
            headers
                .iter()
                .filter(|(name, _)| *name == http::header::CACHE_CONTROL)
                .filter_map(|(_, v)| v.to_str().ok()),
        );
        if cc.no_store || cc.private {
            return "no-store";
        }
        let (ttl, source) = policy::freshness(
            response.cache_ttl_param,
            &cc,
            response.lifetimes.default_ttl,
        );
        match self.freshen(&stored, headers, ttl, source) {
            Some(_) => "freshened",
            None => "not-stored",
        }
    }
}
