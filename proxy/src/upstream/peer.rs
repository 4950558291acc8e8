//! The Pingora peer for one server of a group: its timeouts, HTTP version and TLS, from the
//! group's config. Requests and health probes both use it, so a probe checks the server the
//! way requests reach it.

use crate::config::transport::UpstreamProtocol;
use crate::config::Upstream;
use pingora::prelude::HttpPeer;
use pingora::protocols::ALPN;
use std::net::SocketAddr;

/// Requests one HTTP/2 connection to a server carries at once before Pingora opens another
/// (Pingora's default is 1, which would make HTTP/2 one request per connection).
const H2_STREAMS_PER_CONNECTION: usize = 100;

/// The peer requests to `addr` of the group `config` are sent to.
pub fn build(addr: SocketAddr, config: &Upstream) -> HttpPeer {
    let tls = config.tls.as_ref();
    // The name is only allocated for a TLS group; clear text needs none.
    let sni = tls.map_or_else(String::new, |tls| tls.sni.clone());
    let mut peer = HttpPeer::new(addr, tls.is_some(), sni);
    let options = &mut peer.options;
    options.connection_timeout = Some(config.connect_timeout);
    options.read_timeout = Some(config.read_timeout);
    options.write_timeout = Some(config.read_timeout);
    // A response framed both ways is refused (502), not read as chunked: a client or cache
    // behind us could frame it the other way.
    options.reject_h1_response_with_content_length_and_transfer_encoding = true;
    // ALPN H2 without TLS is HTTP/2 with prior knowledge: Pingora trusts the configuration
    // that the server speaks h2c.
    options.alpn = match config.protocol {
        UpstreamProtocol::Http1 => ALPN::H1,
        UpstreamProtocol::H2 | UpstreamProtocol::H2c => ALPN::H2,
    };
    if config.protocol != UpstreamProtocol::Http1 {
        options.max_h2_streams = H2_STREAMS_PER_CONNECTION;
    }
    if let Some(tls) = tls {
        options.verify_cert = tls.verify;
        options.verify_hostname = tls.verify;
        if let Some(ca) = &tls.ca {
            options.ca = Some(ca.certificates.clone());
            peer.group_key = ca.pool_key;
        }
    }
    peer
}

#[cfg(test)]
mod tests;
