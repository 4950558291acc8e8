//! Response compression: `negotiate` (the client's `Accept-Encoding` against the route's
//! encodings, pure), `plan` (whether a response is compressed and whether it varies on
//! `Accept-Encoding`, pure), `encoder` (gzip, brotli and zstd as streams that flush each chunk)
//! and `counters` (`scalelab_compression_bytes_total`). `service::compress` applies them to
//! proxied responses and cache hits.
//!
//! Our own instead of Pingora's response compression module: it takes the client's first
//! listed coding and ignores q-values (so `gzip;q=0` would get gzip), has no server order,
//! a fixed size threshold and type list, and compresses what `Cache-Control: no-transform`
//! forbids; and as a downstream module it would run on every request and body chunk of every
//! route (why `init_downstream_modules` installs none).

pub mod counters;
pub mod encoder;
pub mod negotiate;
pub mod plan;

#[cfg(test)]
mod tests;

pub use crate::config::compress::{CompressSettings, Encoding};
pub use encoder::{Encoder, Flush};
pub use negotiate::choose;
pub use plan::{plan, Plan, RequestFacts, ResponseFacts, Skip};
