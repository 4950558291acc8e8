//! The one HTTP/1.1 client of the proxy's own requests: the health probe of an upstream server
//! and the background refresh of a stale cache object through the proxy's listener. Each
//! request has a connection of its own (`Connection: close`) and hyper's `client::conn::http1`
//! speaks the protocol; the whole exchange, body included, is bounded by one timeout. A
//! mirrored request (`mirror`) goes out the same way, with its body.

use bytes::Bytes;
use http::header::{CONNECTION, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use hyper::body::Body;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;
use tokio::net::TcpStream;

/// Why a request got no complete answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("invalid request: {0}")]
    Request(http::Error),
    #[error("{0}")]
    Http(hyper::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// Sends `GET path` to `addr` with `headers` (plus `Host: addr` when they have none) and
/// returns the response's status once its body has been read to the end, so that the server
/// sees a complete exchange (the proxy stores a refreshed object only then).
///
/// # Errors
/// A failed connect, an invalid path or header, a broken or malformed response, or no
/// complete answer within `timeout`.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    headers: HeaderMap,
    timeout: Duration,
) -> Result<StatusCode, Error> {
    send(Method::GET, addr, path, headers, timeout).await
}

/// As `get`, with another method (the systemd watchdog's `OPTIONS *`).
///
/// # Errors
/// As `get`.
pub async fn send(
    method: Method,
    addr: SocketAddr,
    path: &str,
    headers: HeaderMap,
    timeout: Duration,
) -> Result<StatusCode, Error> {
    send_body(method, addr, path, headers, Bytes::new(), timeout).await
}

/// As `send`, with a request body (sent whole, with its `Content-Length`).
///
/// # Errors
/// As `get`.
pub async fn send_body(
    method: Method,
    addr: SocketAddr,
    path: &str,
    headers: HeaderMap,
    body: Bytes,
    timeout: Duration,
) -> Result<StatusCode, Error> {
    exchange(method, addr, path, headers, body, timeout, 0)
        .await
        .map(|response| response.status)
}

/// A response as `exchange` returns it.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body's first `keep_body` bytes (the rest is read and dropped).
    pub body: bytes::Bytes,
}

/// As `send`, also returning the response headers and the body's first `keep_body` bytes
/// (forward auth passes a refusal's body on to the client).
///
/// # Errors
/// As `get`.
pub async fn exchange(
    method: Method,
    addr: SocketAddr,
    path: &str,
    mut headers: HeaderMap,
    body: Bytes,
    timeout: Duration,
    keep_body: usize,
) -> Result<Response, Error> {
    if !headers.contains_key(HOST) {
        let host =
            HeaderValue::from_str(&addr.to_string()).map_err(|e| Error::Request(e.into()))?;
        headers.insert(HOST, host);
    }
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        // An empty body ends at once: neither a GET nor an OPTIONS sends one.
        .body(Whole(Some(body).filter(|b| !b.is_empty())))
        .map_err(Error::Request)?;
    *request.headers_mut() = headers;
    let attempt = async {
        let stream = TcpStream::connect(addr).await.map_err(Error::Connect)?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(Error::Http)?;
        let exchange = async move {
            let response = sender.send_request(request).await?;
            let (parts, mut body) = response.into_parts();
            let mut kept = bytes::BytesMut::new();
            while let Some(frame) =
                std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            {
                if let Ok(data) = frame?.into_data() {
                    let room = keep_body.saturating_sub(kept.len());
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Ok::<_, hyper::Error>(Response {
                status: parts.status,
                headers: parts.headers,
                body: kept.freeze(),
            })
        };
        // The connection does the reading and writing; it ends when the exchange is done (and
        // has dropped its sender), or fails with it. Its own error adds nothing to the
        // exchange's, which reports any failure that kept the answer from arriving whole.
        let (response, _) = tokio::join!(exchange, connection);
        response.map_err(Error::Http)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| Error::Timeout(timeout))?
}

/// A body that is one chunk known in advance (hyper implements `Body` for `String` only,
/// and a mirrored body need not be text).
struct Whole(Option<Bytes>);

impl Body for Whole {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.take().map(|b| Ok(hyper::body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

#[cfg(test)]
mod tests;
