//! The `scalelab` command: `up` starts the whole lab as supervised child processes, `token` mints a JWT the
//! config accepts, `check` validates the config, `bench` is a small load generator, `trace` draws one trace.
//!
//! Code map:
//! - `cli`: the clap command line.
//! - `labfile`: the `[lab]` table (which processes to start, on which ports) plus the few `[proxy]` keys the
//!   launcher needs to find the proxy; everything else in the file belongs to the proxy.
//! - `fleet`: `up --fleet`: a redis-server, extra proxies and workers sharing it, and the banner lines saying
//!   which URL hits which proxy.
//! - `dns`: `up --dns`: the lab's own dnsmasq publishing the gateways as one name's A records, the proxy config
//!   that resolves it, and `lab.json`, with which `bench -s scale-out` changes the records.
//! - `devca`: the development CA and localhost certificate of the HTTPS listener, made on the first `up`.
//! - `plan`: the child processes `up` starts, with their flags and health URLs.
//! - `observe`: `up --observe`'s Prometheus: the scrape config generated from the lab's ports, its child spec, the
//!   check that it sees every target, and the query links it prints.
//! - `supervise`: spawning, log prefixing, readiness, exit reporting, restarts and shutdown.
//! - `admin_token`: the token `up` makes for the proxies' admin API, and where the lab's admin calls find it.
//! - `token`: minting through `scalelab-auth` from the config's `[auth]` table.
//! - `bench`: the load generator.
//! - `scenario`: the named bench scenarios and the runs each one expands into.
//! - `plot`: SVG charts of a scenario's runs (latency CDF, requests per upstream and per cache result, lines over
//!   time).
//! - `lesson`: the scenarios that set up a condition on the running lab, compare tactics under it, restore the lab
//!   and compute a verdict.
//! - `report`: the self-contained `report.html`.
//! - `traces`: `up --observe`'s trace receiver (bounded, in memory), reading it back for `scalelab trace` and the
//!   report's slowest trace; `plot::waterfall` draws a trace.

pub mod admin_token;
pub mod bench;
pub mod cli;
pub mod devca;
pub mod dns;
pub mod fleet;
pub mod labfile;
pub mod lesson;
pub mod observe;
pub mod plan;
pub mod plot;
pub mod report;
pub mod scenario;
pub mod supervise;
pub mod token;
pub mod traces;
