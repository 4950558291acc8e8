//! Helpers shared by every scalelab crate. Each was written several times over before this
//! crate existed, with small differences (a poisoned `RwLock` once turned into a permanent
//! cache miss); one copy keeps them alike.

pub mod clock;
pub mod dnsmasq;
pub mod problem;
pub mod sync;
pub mod trace;
