//! Service discovery's data: what DNS names resolved to and how that shapes the groups. A
//! group's `servers` may name hosts (`{ name = "api.internal", port = 8080 }`, every A and AAAA
//! address a server) and a group may come whole from SRV records (`discovery = { srv = "..." }`).
//!
//! The resolved sets live in the `Table` (kept in the server `Registry`, so they outlive
//! snapshots and config reloads); `Snapshot::build` adds them to each group (`expand`), and
//! `priority` keeps SRV backups out of rotation while a lower priority serves. The active side
//! (resolving, following the config, applying changes) is `crate::dns`, which depends on this
//! module and on the state holder, never the other way round.

pub mod expand;
pub mod priority;
mod table;

pub use table::{Entry, Found, Source, Table};
