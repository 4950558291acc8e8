//! One Pingora service for every listen address: the proxy application with the whole-head
//! deadline in its server options, wrapped in the connection limit (which counts each listener
//! on its own, by the address a connection arrived on).

use super::connection_limit::ConnectionLimit;
use crate::config::ClientLimits;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::ListenerConfig;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::proxy::{HttpProxy, ProxyHttp};
use pingora::server::configuration::ServerConf;
use pingora::services::listening::Service;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where the proxy listens: plain HTTP addresses and HTTPS addresses with their TLS settings.
pub struct Listeners {
    pub plain: Vec<SocketAddr>,
    pub tls: Vec<(SocketAddr, TlsSettings)>,
}

/// The one service answering on every listen address (generic over the proxy so `listeners`
/// does not depend on `service`, which depends on `listeners`). One service, so that
/// `[proxy] threads` is the number of request threads whatever the number of listeners (one
/// service per address gave each address its own `threads`). With `h2c`, a plain connection
/// that opens with the HTTP/2 preface is served as HTTP/2 (Pingora peeks at its first bytes),
/// any other as HTTP/1; over TLS, HTTP/2 comes by ALPN (Pingora turns the peek off there).
pub fn service<P>(
    conf: &Arc<ServerConf>,
    proxy: P,
    listeners: Listeners,
    limits: &ClientLimits,
    h2c: bool,
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
    let addrs = listeners
        .plain
        .iter()
        .copied()
        .chain(listeners.tls.iter().map(|(addr, _)| *addr))
        .collect();
    let limited = ConnectionLimit::new(app, limits.max_connections, addrs);
    let mut service = Service::new("scalelab-proxy".to_string(), limited);
    for addr in &listeners.plain {
        service.add_listener(ListenerConfig::tcp(addr.to_string()).l4_buffer(plain_buffers()));
    }
    for (addr, settings) in listeners.tls {
        service.add_tls_with_settings(&addr.to_string(), None, settings);
    }
    service
}

/// A plain connection reads straight into the HTTP session's own buffers, without Pingora's
/// 64 KiB L4 read buffer: that buffer is zeroed when allocated and kept for the connection's
/// life, so every idle keep-alive connection held about 64 KiB (nginx holds well under 1 KiB),
/// and a plain request head is read in one read either way. HTTPS listeners keep it: rustls
/// reads records of up to 16 KiB in small pieces, where the buffer saves system calls.
fn plain_buffers() -> L4BufferSettings {
    L4BufferSettings::default().read(0)
}

/// Why a listen address cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {}", describe(cause))]
pub struct BindError {
    pub addr: SocketAddr,
    /// Described in the message, not chained as a source: the OS's wording adds nothing.
    pub cause: std::io::Error,
}

fn describe(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => "address in use (another program listens there)".into(),
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)".into()
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "no interface of this machine has that address".into()
        }
        _ => error.to_string(),
    }
}

/// Checks that every address can be bound now, before Pingora binds them: Pingora retries an
/// address in use for about 30 s and then panics in its service thread, leaving a process
/// without that listener, while an operator needs a clear error and a non-zero exit at once.
/// The probe binds as Pingora does (std sets `SO_REUSEADDR`, so a port held only by
/// connections in TIME_WAIT passes) and closes the socket again at once.
///
/// # Errors
/// The first address that cannot be bound, with the reason.
pub fn check_bindable(addrs: &[SocketAddr]) -> Result<(), BindError> {
    for &addr in addrs {
        std::net::TcpListener::bind(addr).map_err(|cause| BindError { addr, cause })?;
    }
    Ok(())
}
