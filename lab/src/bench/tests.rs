//! The tests of the parent module.
#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn urls_get_the_control_parameters() {
    let cases = [
        ("http://h:8000/data", None, false, "http://h:8000/data"),
        (
            "http://h:8000/data",
            Some("weighted"),
            false,
            "http://h:8000/data?strategy=weighted",
        ),
        (
            "http://h:8000/data/complex?id=1",
            Some("least_connections"),
            true,
            "http://h:8000/data/complex?id=1&strategy=least_connections&bypass_cache=true",
        ),
    ];
    for (base, strategy, bypass, expected) in cases {
        assert_eq!(
            build_url(base, strategy, bypass).unwrap().as_str(),
            expected
        );
    }
    assert!(build_url("not a url", None, false).is_err());
}

#[test]
fn hit_ratio_counts_hits_and_stale_answers() {
    let cache = |pairs: &[(&str, u64)]| {
        pairs
            .iter()
            .map(|&(key, count)| (key.to_owned(), count))
            .collect::<BTreeMap<String, u64>>()
    };
    assert_eq!(hit_ratio(&cache(&[])), 0.0);
    assert_eq!(hit_ratio(&cache(&[("BYPASS", 10)])), 0.0);
    assert_eq!(
        hit_ratio(&cache(&[("HIT", 6), ("STALE", 1), ("MISS", 3)])),
        0.7
    );
}

#[tokio::test]
async fn counts_upstreams_and_cache_results() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A minimal HTTP/1.1 server alternating two upstream names, so no backend is needed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let served = Arc::new(AtomicU64::new(0));
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let served = Arc::clone(&served);
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 4096];
                loop {
                    let mut read = 0;
                    while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buffer[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                    }
                    let n = served.fetch_add(1, Ordering::Relaxed);
                    let upstream = if n.is_multiple_of(2) { "a:1" } else { "b:2" };
                    // One in ten is refused by a rate limit and one in ten finds no server, as the proxy's
                    // protections answer.
                    let status = match n % 10 {
                        8 => "429 Too Many Requests",
                        9 => "503 Service Unavailable",
                        _ => "200 OK",
                    };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\nX-Upstream-Server: {upstream}\r\nX-Cache: MISS\r\nContent-Length: 2\r\n\r\nok"
                    );
                    if socket.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let plan = BenchPlan {
        label: String::new(),
        url: build_url(&format!("http://{addr}/data"), None, false).unwrap(),
        requests: 40,
        concurrency: 4,
        token: Some("t".to_owned()),
        timeout: Duration::from_secs(5),
        progress: false,
        duration: None,
        keys: None,
        stop: None,
    };
    let report = run(&plan).await.unwrap();
    assert_eq!(report.requests, 40);
    assert_eq!(report.statuses.get("200"), Some(&32));
    assert_eq!((report.too_many_requests, report.unavailable), (4, 4));
    assert_eq!(report.failed(), 8);
    assert_eq!(report.share("a:1"), 0.5);
    let timeline = &report.timeline;
    assert_eq!(timeline.buckets.iter().map(|b| b.requests).sum::<u64>(), 40);
    assert_eq!(
        timeline
            .buckets
            .iter()
            .map(|b| (b.too_many_requests, b.unavailable))
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d)),
        (4, 4)
    );
    assert_eq!(report.upstreams.values().sum::<u64>(), 40);
    assert_eq!(report.upstreams.len(), 2);
    assert_eq!(report.cache.get("MISS"), Some(&40));
    assert!(report.latency_ms.p50 <= report.latency_ms.max);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["latency_ms"]["p99"],
        serde_json::json!(report.latency_ms.p99)
    );
    assert!(summary(&report).contains("upstream:  a:1=20  b:2=20"));
    assert!(summary(&report).contains("cache:     MISS=40  (hit ratio 0.0%)"));
    assert!(summary(&report).contains("refused:   429=4 (too many requests)  503=4 (unavailable)"));
    assert_eq!(json["too_many_requests"], 4);
    assert_eq!(json["timeline"]["buckets"][0]["t_s"], 0.0);
    assert_eq!(report.cache_hit_ratio, 0.0);
    let cdf = &report.latency_cdf;
    assert_eq!(cdf.len(), 104);
    assert_eq!((cdf[0].percentile, cdf[103].percentile), (0.0, 100.0));
    assert!(cdf
        .windows(2)
        .all(|w| w[0].ms <= w[1].ms && w[0].percentile < w[1].percentile));
    assert_eq!(cdf[103].ms, report.latency_ms.max);
    assert_eq!(cdf[50].ms, report.latency_ms.p50);
}
