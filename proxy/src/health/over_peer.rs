//! The probe of a server reached over TLS or HTTP/2: the same GET as the HTTP/1.1 probe, sent
//! through Pingora's own connector with the peer requests use (`upstream::peer`), so TLS
//! verification, SNI, the CA and ALPN or h2c are exactly the request path's. Each probe opens a
//! connection of its own and drops it at the end (never returned to a pool).

use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::protocols::ALPN;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

/// Sends `GET path` to `peer` and returns the status once the body has been read to its end.
///
/// # Errors
/// A failed connect or handshake, a broken response, or no complete answer within `timeout`,
/// as text for the health report.
pub async fn get(
    addr: SocketAddr,
    mut peer: HttpPeer,
    path: &str,
    timeout: Duration,
) -> Result<u16, String> {
    // One stream per connection, so Pingora keeps no HTTP/2 connection of the probe's for
    // later requests.
    peer.options.max_h2_streams = 1;
    let h2 = peer.options.alpn == ALPN::H2;
    let authority = if peer.sni.is_empty() {
        addr.to_string()
    } else {
        peer.sni.clone()
    };
    let attempt = async {
        let mut request =
            RequestHeader::build("GET", path.as_bytes(), None).map_err(|e| e.to_string())?;
        if h2 {
            // HTTP/2 carries the authority and scheme in the target, not in `Host`.
            let scheme = if peer.is_tls() { "https" } else { "http" };
            let uri = format!("{scheme}://{authority}{path}")
                .parse::<http::Uri>()
                .map_err(|e| e.to_string())?;
            request.set_uri(uri);
        } else {
            request
                .insert_header(http::header::HOST, authority.as_str())
                .map_err(|e| e.to_string())?;
        }
        request
            .insert_header(http::header::USER_AGENT, "scalelab-health")
            .map_err(|e| e.to_string())?;
        let (mut session, _reused) = connector()
            .get_http_session(&peer)
            .await
            .map_err(|e| e.to_string())?;
        session
            .write_request_header(Box::new(request))
            .await
            .map_err(|e| e.to_string())?;
        session
            .finish_request_body()
            .await
            .map_err(|e| e.to_string())?;
        session
            .read_response_header()
            .await
            .map_err(|e| e.to_string())?;
        let status = session
            .response_header()
            .map_or(0, |response| response.status.as_u16());
        while session
            .read_response_body()
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {}
        Ok(status)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("timed out after {timeout:?}"))?
}

/// One connector for every probe: building one loads the system's CA roots.
fn connector() -> &'static Connector {
    static CONNECTOR: OnceLock<Connector> = OnceLock::new();
    CONNECTOR.get_or_init(|| Connector::new(None))
}
