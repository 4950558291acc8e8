//! Two worker processes on one shared queue in a real redis-server: both answer for every task, picks follow the
//! priorities across processes, and a worker killed with SIGKILL mid-task loses nothing and runs nothing twice.

use std::collections::BTreeMap;

use scalelab_test_support::RedisServer;

use crate::harness::{client, eventually, get_json, Backend};
use crate::worker::{submit, task};

const WORKER: &str = env!("CARGO_BIN_EXE_scalelab-worker");

/// The tasks are io_intensive: each runs 1.5 x this, 0.3 s.
const TASK_SECONDS: f64 = 0.2;

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

async fn start_worker(dir: &std::path::Path, redis: &RedisServer) -> Backend {
    // With --redis-url the data dir is not used for tasks.
    Backend::start(
        WORKER,
        &[
            "--data-dir",
            dir.to_str().unwrap(),
            "--workers",
            "1",
            "--redis-url",
            &redis.url(),
            "--redis-command-timeout",
            "2s",
            "--visibility-timeout",
            "2s",
            // Aging stays out of the way: this test checks plain priority order.
            "--aging",
            "300s",
        ],
        dir,
    )
    .await
}

#[tokio::test]
async fn two_workers_share_one_queue_and_a_killed_worker_loses_no_task() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let survivor = start_worker(dir.path(), &redis).await;
    let mut victim = start_worker(dir.path(), &redis).await;
    let client = client();

    // Two blockers keep both workers busy while the 30 tasks are queued, so the picks that follow show the order.
    let blockers = [
        submit(&client, &survivor, "normal", 0.7).await,
        submit(&client, &victim, "normal", 0.7).await,
    ];
    for id in &blockers {
        eventually(&format!("{id} to start"), || async {
            (task(&client, &survivor, id).await["status"] == "running").then_some(())
        })
        .await;
    }
    let mut priorities = BTreeMap::new();
    for (round, priority) in ["low", "normal", "high"].into_iter().enumerate() {
        for index in 0..10 {
            // Alternate the worker that accepts, so both write to the shared queue.
            let worker = if (round + index) % 2 == 0 {
                &survivor
            } else {
                &victim
            };
            priorities.insert(
                submit(&client, worker, priority, TASK_SECONDS).await,
                priority,
            );
        }
    }

    // Either worker answers for any task, and both see the same queue.
    for id in priorities.keys() {
        assert_eq!(
            task(&client, &survivor, id).await,
            task(&client, &victim, id).await
        );
    }
    let (_, survivor_stats) = get_json(&client, &format!("{}/stats", survivor.url)).await;
    let (_, victim_stats) = get_json(&client, &format!("{}/stats", victim.url)).await;
    assert_eq!(survivor_stats["total_tasks"], 32);
    assert_eq!(victim_stats["total_tasks"], 32);

    // Kill the victim in the middle of a queued task (not a blocker), with no chance to clean up.
    let held = eventually("the victim to run a queued task", || async {
        let (_, pool) = get_json(&client, &format!("{}/admin/workers", victim.url)).await;
        let running = pool["running"].as_array()?;
        let id = running.first()?.as_str()?;
        priorities.contains_key(id).then(|| id.to_owned())
    })
    .await;
    victim.kill_hard();
    let killed_at = unix_now();

    // The survivor finishes everything, including the task the victim held once its claim expired.
    let mut done = BTreeMap::new();
    for id in priorities.keys().chain(&blockers) {
        let record = eventually(&format!("{id} to complete"), || async {
            let record = task(&client, &survivor, id).await;
            (record["status"] == "completed").then_some(record)
        })
        .await;
        done.insert(id.clone(), record);
    }
    let (_, stats) = get_json(&client, &format!("{}/stats", survivor.url)).await;
    assert_eq!(
        stats["completed_tasks"], 32,
        "each task finished exactly once: {stats}"
    );
    assert_eq!(stats["failed_tasks"], 0);

    let retried: Vec<&String> = done
        .iter()
        .filter(|(_, record)| record["attempts"] != 1)
        .map(|(id, _)| id)
        .collect();
    // The task the victim held ran again, unless it finished in the moment between the look and the kill.
    let held_record = &done[&held];
    if held_record["attempts"] == 1 {
        assert!(
            held_record["finished_at"].as_f64().unwrap() <= killed_at,
            "{held_record}"
        );
        assert!(retried.is_empty(), "{retried:?}");
    } else {
        assert_eq!(held_record["attempts"], 2, "{held_record}");
        assert_eq!(retried, [&held], "only the killed task runs twice");
    }

    // Priority order across both workers: every high started before every normal, every normal before every
    // low (first attempts; a retried task goes back to the front of its own level). Starts of two workers can
    // interleave by a few ms around a level boundary, hence the tolerance.
    let first_starts = |level: &str| -> Vec<f64> {
        done.iter()
            .filter(|(id, record)| priorities.get(*id) == Some(&level) && record["attempts"] == 1)
            .map(|(_, record)| record["started_at"].as_f64().unwrap())
            .collect()
    };
    let latest = |starts: Vec<f64>| starts.into_iter().fold(f64::MIN, f64::max);
    let earliest = |starts: Vec<f64>| starts.into_iter().fold(f64::MAX, f64::min);
    let tolerance = 0.05;
    assert!(latest(first_starts("high")) <= earliest(first_starts("normal")) + tolerance);
    assert!(latest(first_starts("normal")) <= earliest(first_starts("low")) + tolerance);
}
