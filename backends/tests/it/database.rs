//! The database binary: data survives a restart, and SIGTERM shuts it down cleanly.

use serde_json::json;

use crate::harness::{client, get_json, Backend};

const DATABASE: &str = env!("CARGO_BIN_EXE_scalelab-database");

async fn start(data_dir: &std::path::Path) -> Backend {
    let dir = data_dir.to_str().unwrap();
    Backend::start(
        DATABASE,
        &[
            "--data-dir",
            dir,
            "--latency-min-ms",
            "0",
            "--latency-max-ms",
            "0",
        ],
        data_dir,
    )
    .await
}

#[tokio::test]
async fn database_survives_restart_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let client = client();
    let mut database = start(dir.path()).await;
    let response = client
        .put(format!("{}/items/7", database.url))
        .json(&json!({"name": "changed", "version": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let status = database.terminate().await;
    assert!(
        status.success(),
        "SIGTERM should exit cleanly, got {status}"
    );

    let restarted = start(dir.path()).await;
    let (status, item) = get_json(&client, &format!("{}/items/7", restarted.url)).await;
    assert_eq!(status, 200);
    assert_eq!(item["value"], json!({"name": "changed", "version": 2}));
    let (_, db) = get_json(&client, &format!("{}/db", restarted.url)).await;
    assert_eq!(db["items"], 1000);
    assert_eq!(db["message"], "Fetched fresh data from DB");
}
