//! Traffic control end to end: rate limits (429 and their headers, keys, reloads), connection
//! limits with a queue, and slow start.

mod queue;
mod rate;
pub mod shared;
mod slow_start;
