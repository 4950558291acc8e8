//! A WebSocket test client (tokio-tungstenite): connect through the proxy, send a message and
//! wait for its echo with a deadline, and see the connection end. The proxy's own answer to an
//! upgrade it refuses (status and JSON body) comes back as a [`Refused`].

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::patience::patient;

/// How long one echo may take on a quiet machine (scaled by patience).
const ECHO_BOUND: Duration = Duration::from_secs(5);

/// One open WebSocket and the headers of the 101 that opened it.
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    headers: http::HeaderMap,
}

/// A handshake that did not end in 101: the status and body the client got instead, or the
/// error when there was no response at all (status 0).
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: String,
}

impl WsClient {
    /// Opens `url` (`ws://host:port/path`) with the extra request `headers`.
    pub async fn connect(url: &str, headers: &[(&str, &str)]) -> Result<WsClient, Refused> {
        let mut request = url.into_client_request().map_err(refused)?;
        for (name, value) in headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| Refused {
                status: 0,
                body: e.to_string(),
            })?;
            let value = http::HeaderValue::from_str(value).map_err(|e| Refused {
                status: 0,
                body: e.to_string(),
            })?;
            request.headers_mut().insert(name, value);
        }
        let connecting = tokio_tungstenite::connect_async(request);
        let (stream, response) = tokio::time::timeout(patient(ECHO_BOUND), connecting)
            .await
            .map_err(|_| Refused {
                status: 0,
                body: "handshake timed out".to_string(),
            })?
            .map_err(refused)?;
        Ok(WsClient {
            stream,
            headers: response.headers().clone(),
        })
    }

    /// A header of the 101 response, e.g. the proxy's `x-upstream-server`.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    }

    /// Sends `text` and returns the next text message, or why there was none in time.
    pub async fn echo(&mut self, text: &str) -> Result<String, String> {
        self.stream
            .send(Message::text(text))
            .await
            .map_err(|e| format!("send: {e}"))?;
        let reply = tokio::time::timeout(patient(ECHO_BOUND), self.next_text()).await;
        reply.map_err(|_| "no echo in time".to_string())?
    }

    async fn next_text(&mut self) -> Result<String, String> {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Text(text))) => return Ok(text.to_string()),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(other)) => return Err(format!("unexpected message {other:?}")),
                Some(Err(error)) => return Err(format!("receive: {error}")),
                None => return Err("connection ended".to_string()),
            }
        }
    }

    /// Waits up to `bound` (scaled by patience) for the other side to end the connection;
    /// true if it did (a close frame, a reset or end of stream), false if it stayed open.
    pub async fn ended_within(&mut self, bound: Duration) -> bool {
        let ending = async {
            loop {
                match self.stream.next().await {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => continue,
                }
            }
        };
        tokio::time::timeout(patient(bound), ending).await.is_ok()
    }

    /// Closes the connection the WebSocket way (a close frame, then the peer's).
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

fn refused(error: tungstenite::Error) -> Refused {
    match error {
        tungstenite::Error::Http(response) => Refused {
            status: response.status().as_u16(),
            body: response
                .body()
                .as_ref()
                .map(|body| String::from_utf8_lossy(body).into_owned())
                .unwrap_or_default(),
        },
        other => Refused {
            status: 0,
            body: other.to_string(),
        },
    }
}
