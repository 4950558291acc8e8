//! `GET /ws`, the WebSocket echo every backend binary serves (it is one of `instance`'s common
//! routes; the microservice stands for all): messages come back as sent, in order, on several
//! connections at once, and a plain GET gets a JSON 400.

use scalelab_test_support::WsClient;

use crate::harness::{client, Backend};

const MICROSERVICE: &str = env!("CARGO_BIN_EXE_scalelab-microservice");

#[tokio::test]
async fn the_backend_echoes_websocket_messages() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(MICROSERVICE, &[], dir.path()).await;
    let url = format!("{}/ws", backend.url.replacen("http://", "ws://", 1));
    let mut first = WsClient::connect(&url, &[]).await.unwrap();
    let mut second = WsClient::connect(&url, &[]).await.unwrap();
    for i in 0..3 {
        assert_eq!(
            first.echo(&format!("one {i}")).await.unwrap(),
            format!("one {i}")
        );
        assert_eq!(
            second.echo(&format!("two {i}")).await.unwrap(),
            format!("two {i}")
        );
    }
    first.close().await;
    assert_eq!(second.echo("still here").await.unwrap(), "still here");

    let plain = client()
        .get(format!("{}/ws", backend.url))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 400);
    let body: serde_json::Value = plain.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
}
