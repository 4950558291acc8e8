//! `upstream_peer`'s work: pick a server and take its in-flight slot, waiting in the group's
//! queue (in arrival order, up to `queue.timeout`) while every candidate is at its
//! `max_connections`.

use super::RequestCtx;
use crate::error::Reject;
use crate::upstream::{Lease, Refused, Selection, UpstreamPool};
use pingora::prelude::HttpPeer;
use pingora::{Error, ErrorType, Result};
use std::sync::Arc;
use std::time::Instant;

/// Picks a server (never one this request already tried), takes its slot and builds the peer.
pub(super) async fn upstream_peer(ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
    let Some(pool) = ctx.pool.clone() else {
        ctx.reject = Some(Reject::Internal);
        return Err(Error::explain(
            ErrorType::HTTPStatus(500),
            "no pool for request",
        ));
    };
    // Release the previous try's slot before picking, so it does not weigh on the choice.
    ctx.attempts.lease = None;
    let (selection, lease) = match acquire(&pool, ctx).await {
        Ok(picked) => picked,
        Err(reject) => {
            let status = reject.status();
            ctx.reject = Some(reject);
            return Err(Error::explain(
                ErrorType::HTTPStatus(status),
                "no upstream server",
            ));
        }
    };
    ctx.attempts.tried |= 1 << selection.index;
    ctx.affinity.picked = Some(selection.index);
    ctx.attempts.count += 1;
    if let Some(explanation) = selection.explanation {
        ctx.explain.note(|| explanation);
    }
    let addr = lease.server().addr;
    ctx.attempts.lease = Some(lease);
    ctx.attempts.started = Some(Instant::now());
    Ok(Box::new(crate::upstream::peer::build(addr, &pool.config)))
}

/// A server and its slot: at once when one is free and no one is waiting (a newcomer never
/// passes a queued request), else after waiting in the queue.
async fn acquire(
    pool: &Arc<UpstreamPool>,
    ctx: &mut RequestCtx,
) -> Result<(Selection, Lease), Reject> {
    let queue = &pool.queue;
    if queue.is_empty() {
        match pool.select_with(
            ctx.strategy,
            ctx.attempts.tried,
            ctx.explain.wanted,
            ctx.affinity.hint,
        ) {
            Ok(picked) => return Ok(picked),
            Err(limited) if !limited => return Err(nothing_left(pool, ctx)),
            Err(_) => {}
        }
    }
    let settings = pool.config.queue;
    // A full circuit lets only `max_pending` wait; the rest are refused at once.
    let (max, refusal) = match pool.config.balancing.circuit {
        Some(circuit) if pool.circuit.is_full(circuit.max_requests) => (
            settings.max.min(circuit.max_pending as usize),
            Refused::CircuitOpen,
        ),
        _ => (settings.max, Refused::QueueFull),
    };
    let Some(ticket) = queue.join(max) else {
        queue.record(Err(refusal), None);
        return Err(busy(pool, refusal));
    };
    let joined = Instant::now();
    let deadline = tokio::time::Instant::now() + settings.timeout;
    loop {
        if ticket.is_head() {
            match pool.select_with(
                ctx.strategy,
                ctx.attempts.tried,
                ctx.explain.wanted,
                ctx.affinity.hint,
            ) {
                Ok((mut selection, lease)) => {
                    let waited = joined.elapsed();
                    queue.record(Ok(()), Some(waited));
                    if let Some(text) = selection.explanation.as_mut() {
                        text.push_str(&format!("; queued {} ms", waited.as_millis()));
                    }
                    return Ok((selection, lease));
                }
                Err(limited) if !limited => return Err(nothing_left(pool, ctx)),
                Err(_) => {}
            }
        }
        if tokio::time::timeout_at(deadline, ticket.woken())
            .await
            .is_err()
        {
            queue.record(Err(Refused::QueueTimeout), Some(joined.elapsed()));
            return Err(busy(pool, Refused::QueueTimeout));
        }
    }
}

/// No server is available: after failed tries the client learns why they failed, not just
/// that nothing is left.
fn nothing_left(pool: &UpstreamPool, ctx: &mut RequestCtx) -> Reject {
    // A group whose servers all come from DNS and that has none says why.
    if let Some(reason) = ctx.snapshot.dns_gaps.get(pool.name()) {
        return Reject::NoDiscoveredServer {
            upstream: pool.name().to_string(),
            reason: reason.clone(),
        };
    }
    ctx.attempts
        .last_failure
        .take()
        .unwrap_or(Reject::NoHealthyUpstream {
            upstream: pool.name().to_string(),
        })
}

fn busy(pool: &UpstreamPool, reason: Refused) -> Reject {
    Reject::UpstreamBusy {
        upstream: pool.name().to_string(),
        reason: reason.label(),
    }
}

/// Methods a retry may send again after bytes reached a server (RFC 9110 section 9.2.2).
pub(super) fn is_idempotent(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::PUT
            | http::Method::DELETE
            | http::Method::TRACE
    )
}
