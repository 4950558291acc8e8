//! The request path's part of protocol upgrades: admission applies `upgrade::classify` to the
//! head (forward, forward fewer protocols, strip, or refuse), and the upstream's answer opens
//! the tunnel's accounting when it is a 101. The tunnel itself is Pingora's: after the 101 it
//! copies bytes both ways until either side closes, and the request (with its snapshot, its
//! lease on the server's slot and its `OpenTunnel`) lasts until then.

use super::RequestCtx;
use crate::error::Reject;
use crate::upgrade::series::{self, OpenTunnel, Outcome};
use crate::upgrade::{self, Allowed, Upgrade, UPGRADE_FIELDS};
use http::header::{CONNECTION, UPGRADE};
use http::StatusCode;
use pingora::http::RequestHeader;
use pingora::prelude::{HttpPeer, Session};
use pingora::upstreams::peer::H1UpgradePolicy;
use std::time::Duration;

/// An upgrade request on its way through the proxy.
#[derive(Debug)]
pub(super) enum Upgrading {
    /// Forwarded; the server has not switched (yet).
    Requested,
    /// The server answered 101: the tunnel is open until the request ends. `_tunnel` is held
    /// for its drop, which takes the tunnel off the route's gauge.
    Open {
        _tunnel: OpenTunnel,
        /// From the request's start to the 101.
        switched_after: Duration,
    },
}

/// Applies the route's and the proxy's upgrade rules to the request head. Requests without an
/// `Upgrade` field (nearly all) cost one header lookup.
pub(super) fn admit(
    session: &mut Session,
    ctx: &mut RequestCtx,
    route: usize,
) -> Result<(), Reject> {
    let head = session.req_header();
    if !head.headers.contains_key(UPGRADE) {
        return Ok(());
    }
    let Some(config) = ctx.snapshot.routes.get(route) else {
        return Ok(());
    };
    let allowed = Allowed {
        route: config.upgrades,
        h2c: ctx.snapshot.config.proxy().forward_h2c_upgrade,
    };
    match upgrade::classify(head.version, &head.headers, allowed) {
        Upgrade::None => {}
        Upgrade::Forward => ctx.upgrade = Some(Upgrading::Requested),
        Upgrade::ForwardOnly(protocols) => {
            let head = session.req_header_mut();
            head.insert_header(UPGRADE, protocols)
                .map_err(|_| Reject::Internal)?;
            head.remove_header("http2-settings");
            ctx.upgrade = Some(Upgrading::Requested);
        }
        Upgrade::Strip => {
            series::count(&config.name, Outcome::Stripped);
            strip(session.req_header_mut()).map_err(|_| Reject::Internal)?;
        }
        Upgrade::Refuse => {
            series::count(&config.name, Outcome::Refused);
            return Err(Reject::UpgradeRefused {
                route: config.name.clone(),
            });
        }
    }
    Ok(())
}

/// Removes `Upgrade`, `HTTP2-Settings` and their `Connection` options. The client's own head is
/// changed (not only the copy sent upstream), so Pingora too serves it as an ordinary request.
fn strip(head: &mut RequestHeader) -> pingora::Result<()> {
    let kept = upgrade::connection_without(&connection(head), &UPGRADE_FIELDS);
    for name in UPGRADE_FIELDS {
        head.remove_header(name);
    }
    head.remove_header(&CONNECTION);
    if let Some(kept) = kept {
        head.insert_header(CONNECTION, kept)?;
    }
    Ok(())
}

/// The server's answer to an upgrade request: a 101 opens the tunnel (counted on the route's
/// gauge and on the server, whose slot the lease keeps until the tunnel ends); anything else
/// is an ordinary response.
pub(super) fn on_response(session: &mut Session, ctx: &mut RequestCtx, status: StatusCode) {
    if !matches!(ctx.upgrade, Some(Upgrading::Requested)) {
        return;
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        // The client side of the tunnel may be as quiet as the server side.
        session.set_read_timeout(Some(ctx.snapshot.config.proxy().tunnel_timeout));
        if let Some(lease) = ctx.attempts.lease.as_mut() {
            lease.upgraded();
        }
        ctx.upgrade = Some(Upgrading::Open {
            _tunnel: OpenTunnel::open(ctx.route_name()),
            switched_after: ctx.started.elapsed(),
        });
    } else {
        series::count(ctx.route_name(), Outcome::Declined);
    }
}

/// An upgrade's peer keeps the request's upgrade fields: Pingora's standard policy would pass
/// only `Upgrade: websocket` and drop every other protocol. `prepare_upstream` then does the
/// hop-by-hop normalisation Pingora leaves to the application under this policy.
///
/// Its read and write timeouts become `tunnel_timeout`: Pingora sets them on the upstream
/// connection once, before the request is sent, and no later phase can change them, so the
/// group's `read_timeout` would cut a quiet WebSocket. The price is that a server that never
/// answers an upgrade request is waited on for `tunnel_timeout` too.
pub(super) fn prepare_peer(peer: &mut HttpPeer, ctx: &RequestCtx) {
    if ctx.upgrade.is_some() {
        peer.options.http_upstream_request_policy.h1_upgrade = H1UpgradePolicy::Preserve;
        let tunnel_timeout = Some(ctx.snapshot.config.proxy().tunnel_timeout);
        peer.options.read_timeout = tunnel_timeout;
        peer.options.write_timeout = tunnel_timeout;
    }
}

/// The upgrade request as the server gets it: the client's connection-specific fields removed,
/// `Connection` reduced to the upgrade's own options. Runs before the proxy adds its own
/// headers, so nothing a client nominates can remove those.
pub(super) fn prepare_upstream(head: &mut RequestHeader, ctx: &RequestCtx) -> pingora::Result<()> {
    if ctx.upgrade.is_none() {
        return Ok(());
    }
    let nominated = upgrade::nominated_fields(&connection(head));
    for name in nominated {
        head.remove_header(name.as_str());
    }
    for name in upgrade::HOP_BY_HOP_REQUEST {
        head.remove_header(name);
    }
    let settings = head.headers.contains_key("http2-settings");
    head.insert_header(CONNECTION, upgrade::upstream_connection(settings))?;
    Ok(())
}

/// Every `Connection` field of the head as one comma-separated value.
fn connection(head: &RequestHeader) -> String {
    let values: Vec<&str> = head
        .headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    values.join(",")
}

/// The request's duration for the latency series: until the 101 for a tunnel (its whole life
/// would swamp the route's latency with minutes or hours), else `elapsed` (until now).
pub(super) fn duration(ctx: &RequestCtx, elapsed: Duration) -> Duration {
    match &ctx.upgrade {
        Some(Upgrading::Open { switched_after, .. }) => *switched_after,
        _ => elapsed,
    }
}
