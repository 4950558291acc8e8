//! Times `RouteTable::resolve` with 10, 100, 1,000 and 10,000 routes, half of them on virtual
//! hosts (exact and wildcard), for a request that matches a host's deep route, one that falls
//! through every host to the host-less catch-all, and one that no route's host names. Not a
//! test: `bench/routes.sh` runs it in release and records the table (issue 24: at most 2 µs a
//! lookup at 10,000 routes).
//!
//! Usage: `cargo run --release --example route_lookup`

#![allow(clippy::print_stdout)]

use scalelab_proxy::config;
use scalelab_proxy::routing::RouteTable;
use std::hint::black_box;
use std::time::Instant;

fn table(routes: usize) -> Result<RouteTable, String> {
    let mut text = String::from(
        "[proxy]\nlisten = [\"127.0.0.1:1\"]\nadmin_listen = \"127.0.0.1:2\"\n\
         [upstreams.g]\nservers = [{ addr = \"127.0.0.1:3\" }]\n\
         [[routes]]\nname = \"catch-all\"\npath = \"/\"\nupstream = \"g\"\n",
    );
    for i in 1..routes {
        let host = match i % 4 {
            0 => format!("host = \"site{i}.example.com\"\n"),
            1 => format!("host = \"*.zone{i}.example.net\"\n"),
            _ => String::new(),
        };
        text.push_str(&format!(
            "[[routes]]\nname = \"r{i}\"\npath = \"/svc{i}/api/v{}\"\nupstream = \"g\"\n{host}",
            i % 3
        ));
    }
    let config = config::parse(std::path::Path::new("./routes.toml"), &text)
        .map_err(|error| error.to_string())?;
    Ok(RouteTable::new(config.routes()))
}

fn time(table: &RouteTable, host: Option<&str>, path: &str) -> f64 {
    let rounds = 200_000;
    let method = http::Method::GET;
    let started = Instant::now();
    for _ in 0..rounds {
        black_box(table.resolve(black_box(host), black_box(path), &method));
    }
    started.elapsed().as_nanos() as f64 / f64::from(rounds)
}

fn main() -> Result<(), String> {
    println!("| routes | host route, deep path (ns) | falls through to catch-all (ns) | unknown host (ns) |");
    println!("|---:|---:|---:|---:|");
    for routes in [10usize, 100, 1_000, 10_000] {
        let table = table(routes)?;
        let deep = time(
            &table,
            Some("site8.example.com"),
            "/svc8/api/v2/items/42/details",
        );
        let through = time(&table, Some("a.zone9.example.net"), "/nowhere/a/b/c/d/e");
        let unknown = time(&table, Some("other.example.org:8000"), "/svc7/api/v1/x");
        println!("| {routes} | {deep:.0} | {through:.0} | {unknown:.0} |");
    }
    Ok(())
}
