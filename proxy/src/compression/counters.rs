//! `scalelab_compression_bytes_total{direction="in|out",encoding}`: the bytes the encoders took
//! in (identity) and gave out (encoded). The six series are made once, at start-up, so they
//! exist at 0 before the first compressed response and a body chunk adds to two counters
//! without looking up labels.

use crate::config::compress::Encoding;
use prometheus::{IntCounter, IntCounterVec, Opts};
use std::sync::OnceLock;

struct Series {
    /// (in, out) by `Encoding::index`.
    counters: [(IntCounter, IntCounter); 3],
}

fn series() -> Option<&'static Series> {
    static SERIES: OnceLock<Option<Series>> = OnceLock::new();
    SERIES.get_or_init(build).as_ref()
}

fn build() -> Option<Series> {
    let built = IntCounterVec::new(
        Opts::new(
            "scalelab_compression_bytes_total",
            "Response bytes through the compressors, by direction (in: identity, out: encoded) and encoding.",
        ),
        &["direction", "encoding"],
    )
    .and_then(|vec| {
        prometheus::register(Box::new(vec.clone()))?;
        let pair = |encoding: Encoding| -> prometheus::Result<(IntCounter, IntCounter)> {
            Ok((
                vec.get_metric_with_label_values(&["in", encoding.token()])?,
                vec.get_metric_with_label_values(&["out", encoding.token()])?,
            ))
        };
        let [zstd, br, gzip] = Encoding::ALL;
        Ok(Series {
            counters: [pair(zstd)?, pair(br)?, pair(gzip)?],
        })
    });
    built
        .map_err(|error| tracing::error!(%error, "cannot register the compression series"))
        .ok()
}

/// Makes the series (at 0); called once at start-up.
pub fn register() {
    let _ = series();
}

/// Adds one chunk's bytes.
pub fn count(encoding: Encoding, bytes_in: u64, bytes_out: u64) {
    if let Some(series) = series() {
        let (input, output) = &series.counters[encoding.index()];
        input.inc_by(bytes_in);
        output.inc_by(bytes_out);
    }
}
