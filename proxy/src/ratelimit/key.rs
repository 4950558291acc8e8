//! Which bucket a request falls in: the client address behind trusted proxies, and the text of
//! a limit's key. Pure: the caller hands over the peer, the header and the query.

use crate::config::TrustedProxies;
use std::net::IpAddr;

/// The client for `key = "client_ip"`: the peer, unless it is a trusted proxy; then the
/// `X-Forwarded-For` hops are walked from the right (the nearest first) past every trusted
/// one, and the first untrusted hop is the client. A hop that is not an address stops the walk
/// at the last trusted one, which is then the client (a forged entry never names a bucket).
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &TrustedProxies) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for.into_iter().flat_map(|v| v.rsplit(',')) {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted.contains(ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}
