//! Service discovery: upstream servers from DNS. A group's `servers` may name hosts
//! (`{ name = "api.internal", port = 8080 }`, every A and AAAA address a server) and a group may
//! come whole from SRV records (`discovery = { srv = "..." }`).
//!
//! Each name is re-resolved by its own background task (`run`), never on the request path. The
//! resolved sets live in the `Table` (kept in the server `Registry`, so they outlive snapshots
//! and config reloads); `Snapshot::build` adds them to each group (`expand`). A changed set is
//! applied like a reload of the config the proxy already runs (`apply`): servers that stay keep
//! their state, new ones are checked first, removed ones drain with their in-flight requests.

pub mod apply;
pub mod expand;
pub mod exposition;
pub mod priority;
pub mod resolve;
pub mod run;
mod table;

pub use table::{Entry, Found, Source, Table};
