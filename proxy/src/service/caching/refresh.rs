//! The background refresh of a stale object, through this proxy's own listener.

use crate::cache::Entry;
use crate::service::RequestCtx;
use pingora::prelude::Session;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Fetches a stale object again through this proxy's own listener, with `no-cache` so the
/// answer replaces the stored object, and with the object's validators so an unchanged object
/// costs the origin only a 304 (which freshens it). Runs in the background; the client already
/// has its stale answer.
pub(super) fn spawn_refresh(session: &Session, ctx: &RequestCtx, entry: &Entry) {
    let Some(listen) = ctx.snapshot.config.proxy.listen.first().copied() else {
        return;
    };
    let target = if listen.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], listen.port()))
    } else {
        listen
    };
    let req = session.req_header();
    let path = req
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut request =
        format!("GET {path} HTTP/1.1\r\nCache-Control: no-cache\r\nConnection: close\r\n");
    for name in [
        http::header::HOST,
        http::header::AUTHORIZATION,
        http::header::ACCEPT,
    ] {
        if let Some(value) = req.headers.get(&name).and_then(|v| v.to_str().ok()) {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    // The varying headers select the variant being refreshed.
    for (name, value) in &entry.vary {
        if matches!(name.as_str(), "host" | "authorization" | "accept") {
            continue;
        }
        if let Some(value) = value {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    let validators = entry.validators();
    for (name, value) in [
        (http::header::IF_NONE_MATCH, validators.etag),
        (http::header::IF_MODIFIED_SINCE, validators.last_modified),
    ] {
        if let Some(value) = value {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    request.push_str("\r\n");
    tokio::spawn(async move {
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect(target).await?;
            stream.write_all(request.as_bytes()).await?;
            let mut sink = Vec::new();
            stream.read_to_end(&mut sink).await?;
            Ok::<_, std::io::Error>(())
        };
        if let Err(error) = tokio::time::timeout(Duration::from_secs(60), attempt)
            .await
            .unwrap_or(Ok(()))
        {
            tracing::warn!(%error, "background cache refresh failed");
        }
    });
}
