//! `GET /ws` on every backend: a WebSocket echo. Each text or binary message comes back as it
//! was sent, so a client can tell a live tunnel (through the proxy, across reloads) from a cut
//! one; pings are answered by the WebSocket layer itself, and a close ends the connection.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;

use crate::error::AppError;

/// Accepts the upgrade and echoes until the client closes or the connection drops; a request
/// that is not a WebSocket handshake gets the backends' JSON 400 rather than axum's plain text.
pub async fn echo(
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let upgrade = upgrade.map_err(|rejection| AppError::BadRequest(rejection.body_text()))?;
    Ok(upgrade.on_upgrade(echo_messages))
}

async fn echo_messages(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        let reply = match message {
            Message::Text(_) | Message::Binary(_) => message,
            // Pongs are answered automatically; a close (or anything else) ends the echo.
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Close(_) => break,
        };
        if socket.send(reply).await.is_err() {
            break;
        }
    }
}
