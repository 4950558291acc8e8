//! One Pingora service per listen address, so `max_connections` bounds each listener on its
//! own: the proxy application with the whole-head deadline in its server options, wrapped in
//! the connection limit.

use super::limits::ConnectionLimit;
use crate::config::ClientLimits;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::proxy::{HttpProxy, ProxyHttp};
use pingora::server::configuration::ServerConf;
use pingora::services::listening::Service;
use std::net::SocketAddr;
use std::sync::Arc;

/// The service answering on `addr` (generic over the proxy so `edge` does not depend on
/// `service`, which depends on `edge`). With `h2c`, a connection that opens with the HTTP/2
/// preface is served as HTTP/2 (Pingora peeks at its first bytes), any other as HTTP/1; over
/// TLS with `tls` when given (HTTP/2 then comes by ALPN, which Pingora's HTTP application
/// handles by itself).
pub fn service<P>(
    conf: &Arc<ServerConf>,
    proxy: P,
    addr: SocketAddr,
    limits: &ClientLimits,
    h2c: bool,
    tls: Option<TlsSettings>,
) -> Service<ConnectionLimit<HttpProxy<P>>>
where
    P: ProxyHttp + Send + Sync + 'static,
    P::CTX: Send + Sync,
{
    let mut app = pingora::proxy::http_proxy(conf, proxy);
    let mut options = HttpServerOptions::default();
    options.h1_header_read_timeout = Some(limits.client_header_timeout);
    options.h2c = h2c;
    // An HTTP/2 connection has no per-request keep-alive timer (Pingora's bounded defaults cap
    // its streams at 100 and its header list at 64 KiB); it closes after the same idle time.
    options.h2_idle_timeout = Some(limits.keepalive_timeout);
    app.server_options = Some(options);
    let listener = addr.to_string();
    let limited = ConnectionLimit::new(app, limits.max_connections, listener.clone());
    match tls {
        Some(settings) => {
            let mut service = Service::new(format!("scalelab-proxy https {listener}"), limited);
            service.add_tls_with_settings(&listener, None, settings);
            service
        }
        None => {
            let mut service = Service::new(format!("scalelab-proxy {listener}"), limited);
            service.add_tcp(&listener);
            service
        }
    }
}
