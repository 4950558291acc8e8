//! What recording a finished request in its route's series costs in allocations (issue 29 §4):
//! nothing, whether its trace is sampled (an exemplar written into its bucket's slot) or not,
//! once the route's series exist. Its own test binary, because it counts every allocation of
//! the process with an instrumented global allocator; one test, so that no other test allocates
//! while it counts.

use scalelab_common::trace::TraceId;
use scalelab_proxy::telemetry::{self, CacheUse, Protocol, RouteMetrics};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::time::Duration;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn recording_a_request_allocates_nothing_sampled_or_not() {
    telemetry::init().expect("the metric vectors");
    let metrics = RouteMetrics::new("allocations");
    let record = |sampled: Option<TraceId>, millis: u64| {
        metrics.record(
            &http::Method::GET,
            Protocol::Http11,
            200,
            CacheUse::Miss,
            Duration::from_millis(millis),
            100,
            sampled,
        );
    };
    // The first request of a series makes it and its exemplar slots: once per route and cache
    // use, not per request.
    record(None, 3);
    record(Some(TraceId([1; 16])), 3);

    // Durations from 0 to 49 ms: several buckets, each slot written again and again.
    let region = Region::new(GLOBAL);
    for i in 0..1000 {
        record(None, i % 50);
    }
    let unsampled = region.change();
    let region = Region::new(GLOBAL);
    for i in 0..1000 {
        record(Some(TraceId([2; 16])), i % 50);
    }
    let sampled = region.change();
    assert_eq!(
        (unsampled.allocations, unsampled.reallocations),
        (0, 0),
        "unsampled: {unsampled:?}"
    );
    assert_eq!(
        (sampled.allocations, sampled.reallocations),
        (0, 0),
        "sampled: {sampled:?}"
    );
}
