//! Upstream groups at run time: per-server state that outlives config reloads (health,
//! in-flight count, counters), the pool a snapshot builds from it, and `select`, which turns
//! that state into `balance` candidates and picks one without taking a lock.

#[cfg(test)]
mod balancing_tests;
pub mod circuit;
mod ejection;
mod ewma;
mod explain;
pub mod peer;
mod pick;
mod pool;
mod queue;
mod registry;
mod server_report;
mod server_state;
pub mod sticky_token;
#[cfg(test)]
mod tests;

pub use pick::Hint;
pub use queue::{Refused, Ticket, WaitQueue};
pub use registry::Registry;
pub use server_report::ServerReport;

pub use pool::{effective_weight, Lease, PoolServer, Selection, UpstreamPool};
#[allow(unused_imports)]
use server_state::{epoch, now_ms};
pub use server_state::{next_health, CheckRecord, ServerState, Transition};
