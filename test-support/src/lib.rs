//! What the integration tests of the proxy, the backends and the lab share: free ports, one
//! patience multiplier for every timing bound, polling with a deadline, HTTP clients that
//! ignore proxy settings, and child processes that are killed (and show their log) when a
//! test ends.
//!
//! Every harness keeps only what is specific to it (the proxy's config builders, the backend
//! binaries' flags, the lab's `scalelab up` driver) and takes the rest from here, so a slow
//! machine needs one knob, `SCALELAB_TEST_PATIENCE`, rather than one per harness.

mod dnsmasq;
mod http;
mod patience;
mod pki;
mod poll;
mod ports;
mod process;
mod prometheus;
mod promtool;
mod redis;
mod redis_cluster;
mod websocket;

pub use dnsmasq::{Dnsmasq, SlowDns, Srv};
pub use http::percent_decode;
#[cfg(feature = "blocking")]
pub use http::{blocking_client, blocking_client_builder};
pub use http::{client, client_builder};
pub use nix::sys::signal::Signal;
pub use patience::{patience, patient, PATIENCE_VARIABLE};
pub use pki::{replace_file, Ca, Leaf};
pub use poll::{eventually, eventually_blocking, POLL_INTERVAL};
pub use ports::{free_port, free_ports};
pub use process::ChildGuard;
pub use prometheus::{Prometheus, SCRAPE_INTERVAL};
pub use promtool::assert_promtool_clean;
pub use redis::RedisServer;
pub use redis_cluster::RedisCluster;
pub use websocket::{Refused, WsClient};
