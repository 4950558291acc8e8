//! The gateway's local item cache through the real binaries: off by default, `--local-cache N` and
//! `POST /admin/local-cache` turn it on, a hit answers without calling the dependencies, and the header and the
//! counter agree.

use serde_json::{json, Value};

use crate::harness::{client, Backend};
use crate::metrics::{token, AUTH_TABLE, DATABASE, GATEWAY, MICROSERVICE};

/// `GET /data/complex?id=ID` through the gateway: its status, `X-Local-Cache` (if any) and body.
async fn complex(
    client: &reqwest::Client,
    gateway: &str,
    bearer: &str,
    id: u32,
) -> (u16, Option<String>, Value) {
    let response = client
        .get(format!("{gateway}/data/complex?id={id}"))
        .header("authorization", bearer)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let local = response
        .headers()
        .get("x-local-cache")
        .map(|value| value.to_str().unwrap().to_owned());
    (status, local, response.json().await.unwrap())
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let response = client.post(url).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn the_local_cache_answers_hits_without_the_dependencies_and_is_resized_live() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let database = Backend::start(
        DATABASE,
        &[
            "--data-dir",
            data,
            "--latency-min-ms",
            "0",
            "--latency-max-ms",
            "0",
        ],
        dir.path(),
    )
    .await;
    let microservice = Backend::start(MICROSERVICE, &[], dir.path()).await;
    let config = dir.path().join("config.toml");
    std::fs::write(&config, AUTH_TABLE).unwrap();
    let gateway = Backend::start(
        GATEWAY,
        &[
            "--database",
            &database.url,
            "--microservice",
            &microservice.url,
            "--config",
            config.to_str().unwrap(),
            "--local-cache",
            "2",
        ],
        dir.path(),
    )
    .await;
    let client = client();
    let bearer = format!("Bearer {}", token(dir.path()));
    let g = gateway.url.as_str();

    let (status, local, first) = complex(&client, g, &bearer, 1).await;
    assert_eq!((status, local.as_deref()), (200, Some("miss")), "{first}");
    assert_eq!(first["db_data"]["id"], 1);
    let (status, local, again) = complex(&client, g, &bearer, 1).await;
    assert_eq!((status, local.as_deref()), (200, Some("hit")), "{again}");
    assert_eq!(again["db_data"], first["db_data"]);
    assert_eq!(again["service_data"], first["service_data"]);

    // Every call to the microservice now fails: a hit still answers (it calls nothing), a miss does not, and a
    // failed fetch is not stored.
    let chaos = format!("{}/admin/chaos", microservice.url);
    assert_eq!(
        post(&client, &chaos, &json!({"error_rate": 1.0})).await.0,
        200
    );
    let (status, local, _) = complex(&client, g, &bearer, 1).await;
    assert_eq!((status, local.as_deref()), (200, Some("hit")));
    let (status, _, body) = complex(&client, g, &bearer, 2).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["dependency"], "microservice", "{body}");
    assert_eq!(
        post(&client, &chaos, &json!({"error_rate": 0.0})).await.0,
        200
    );

    // Two entries: 2 and 3 push 1 out (1 was used before both).
    for (id, expected) in [(2, "miss"), (3, "miss"), (1, "miss"), (3, "hit")] {
        let (status, local, _) = complex(&client, g, &bearer, id).await;
        assert_eq!((status, local.as_deref()), (200, Some(expected)), "id {id}");
    }

    let admin = format!("{g}/admin/local-cache");
    let status: Value = client
        .get(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status,
        json!({"entries": 2, "stored": 2, "hits": 3, "misses": 5})
    );
    let metrics = client
        .get(format!("{g}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"scalelab_gateway_local_cache_requests_total{result="hit"} 3"#,
        r#"scalelab_gateway_local_cache_requests_total{result="miss"} 5"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in\n{metrics}"
        );
    }

    // Bad sizes get a clear 400 and change nothing.
    let (code, body) = post(&client, &admin, &json!({"entries": 2_000_000})).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        body["error"],
        "entries must be at most 1000000 (0 turns the cache off), got 2000000"
    );
    let (code, body) = post(&client, &admin, &json!({"size": 3})).await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("unknown field"),
        "{body}"
    );

    // Resizing empties it; 0 turns it off, and the answers carry no header again.
    let (code, body) = post(&client, &admin, &json!({"entries": 2})).await;
    assert_eq!((code, &body["stored"]), (200, &json!(0)), "{body}");
    let (_, local, _) = complex(&client, g, &bearer, 3).await;
    assert_eq!(local.as_deref(), Some("miss"));
    let (code, body) = post(&client, &admin, &json!({"entries": 0})).await;
    assert_eq!((code, &body["entries"]), (200, &json!(0)), "{body}");
    let (status, local, _) = complex(&client, g, &bearer, 3).await;
    assert_eq!((status, local), (200, None));
}
