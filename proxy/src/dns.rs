//! Service discovery's active side: each DNS name of the running config is re-resolved by its
//! own background task (`run`), never on the request path, through `hickory-resolver`
//! (`resolve`); a changed answer is applied like a reload of the config the proxy already runs
//! (`answer_change`): servers that stay keep their state, new ones are checked first, removed
//! ones drain with their in-flight requests. `status` renders its series and the admin API's
//! view. The data it writes (`crate::discovery`) is what snapshots are built from.

pub mod answer_change;
pub mod resolve;
pub mod run;
pub mod status;
