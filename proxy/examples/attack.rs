//! Runs the HTTP/1.1 vector table (`tests/vectors/http1.toml`, the one the fault suite asserts)
//! against several proxies that all forward to one recording upstream, and prints a side by side
//! table: the statuses each client read and how many requests reached the upstream. Not a test:
//! `bench/attack.sh` starts HAProxy, nginx and scalelab-proxy and runs this as the oracle.
//!
//! Usage: `cargo run --example attack -- --upstream 127.0.0.1:PORT NAME=HOST:PORT...`

#![allow(clippy::print_stdout)]

// Shared with the integration tests; not every helper is used here.
#[allow(dead_code)]
#[path = "../tests/it/attack.rs"]
mod attack;

use std::net::SocketAddr;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut upstream: Option<SocketAddr> = None;
    let mut targets: Vec<(String, SocketAddr)> = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--upstream" {
            let addr = args.next().ok_or("--upstream needs an address")?;
            upstream = Some(addr.parse().map_err(|e| format!("{addr}: {e}"))?);
        } else {
            let (name, addr) = arg
                .split_once('=')
                .ok_or(format!("{arg}: want NAME=ADDR"))?;
            targets.push((
                name.to_string(),
                addr.parse().map_err(|e| format!("{addr}: {e}"))?,
            ));
        }
    }
    let upstream = upstream.ok_or("--upstream is required")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let recorder = attack::Recorder::start_on(upstream).await?;
        let vectors = attack::vectors();
        let mut header = "| vector | class | suite expects |".to_string();
        let mut rule = "|---|---|---|".to_string();
        for (name, _) in &targets {
            header.push_str(&format!(" {name} |"));
            rule.push_str("---|");
        }
        println!("{header}\n{rule}");
        for vector in &vectors {
            let expected_requests = attack::count_requests(&attack::expand(&vector.upstream));
            let mut row = format!(
                "| {} | {} | {} |",
                vector.name,
                vector.class,
                cell(&vector.statuses, expected_requests)
            );
            for (_, addr) in &targets {
                let verdict = attack::run(vector, *addr, &recorder).await;
                let mut text = cell(&verdict.statuses, verdict.upstream_requests);
                if verdict.canary != [200] {
                    text.push_str(&format!(" canary {:?}", verdict.canary));
                }
                row.push_str(&format!(" {text} |"));
            }
            println!("{row}");
        }
        Ok::<(), String>(())
    })
}

/// `400 / up 0`: the statuses the client read and the requests the upstream parsed.
fn cell(statuses: &[u16], upstream_requests: usize) -> String {
    let statuses: Vec<String> = statuses.iter().map(u16::to_string).collect();
    let statuses = if statuses.is_empty() {
        "none".to_string()
    } else {
        statuses.join(",")
    };
    format!("{statuses} / up {upstream_requests}")
}
