//! The tests of the parent module.
#![allow(clippy::unwrap_used)]

use super::*;

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs
        .iter()
        .map(|&(key, count)| (key.to_owned(), count))
        .collect()
}

/// The contents of every `<text>` element, trimmed (the SVG backend puts each on a line of its own).
fn texts(svg: &str) -> Vec<&str> {
    svg.split("<text")
        .skip(1)
        .filter_map(|element| element.split_once('>'))
        .filter_map(|(_, rest)| rest.split_once("</text>"))
        .map(|(text, _)| text.trim())
        .collect()
}

fn assert_texts(svg: &str, expected: &[&str]) {
    let texts = texts(svg);
    for text in expected {
        assert!(texts.contains(text), "no text {text:?} in {texts:?}");
    }
}

/// `<rect` elements filled with `colour`, as the SVG backend writes them.
fn rects_filled_with(svg: &str, colour: RGBColor) -> usize {
    let fill = format!(
        r##"fill="#{:02X}{:02X}{:02X}""##,
        colour.0, colour.1, colour.2
    );
    svg.split("<rect")
        .skip(1)
        .filter(|element| {
            element
                .split('>')
                .next()
                .is_some_and(|attributes| attributes.contains(&fill))
        })
        .count()
}

#[test]
fn bars_line_up_runs_on_every_category() {
    let a = counts(&[("s1", 5), ("s2", 3)]);
    let b = counts(&[("s2", 4), ("s3", 1)]);
    let bars = Bars::from_counts([("a", &a), ("b", &b)]);
    assert_eq!(bars.categories, ["s1", "s2", "s3"]);
    assert_eq!(
        bars.runs,
        [
            ("a".to_owned(), vec![5, 3, 0]),
            ("b".to_owned(), vec![0, 4, 1])
        ]
    );
}

#[test]
fn bar_chart_has_one_bar_per_server_and_run() {
    let round_robin = counts(&[
        ("127.0.0.1:5000", 34),
        ("127.0.0.1:5003", 33),
        ("127.0.0.1:5006", 33),
    ]);
    let weighted = counts(&[
        ("127.0.0.1:5000", 50),
        ("127.0.0.1:5003", 33),
        ("127.0.0.1:5006", 17),
    ]);
    let bars = Bars::from_counts([("round_robin", &round_robin), ("weighted", &weighted)]);
    let svg = grouped_bars(
        "strategies: requests per upstream server",
        "X-Upstream-Server",
        &bars,
    )
    .unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    assert_texts(
        &svg,
        &[
            "strategies: requests per upstream server",
            "X-Upstream-Server",
            "requests",
            "127.0.0.1:5000",
            "127.0.0.1:5003",
            "127.0.0.1:5006",
            "round_robin",
            "weighted",
            "50%",
            "17%",
        ],
    );
    // One bar per server for each run, plus that run's swatch in the legend.
    for index in 0..2 {
        assert_eq!(
            rects_filled_with(&svg, run_colour(index)),
            3 + 1,
            "run {index}"
        );
    }
    assert_eq!(rects_filled_with(&svg, run_colour(2)), 0);
}

#[test]
fn latency_chart_has_a_labelled_line_per_run() {
    let lines = [
        Line {
            name: "bypass".to_owned(),
            points: vec![(0.0, 2.0), (50.0, 4.0), (99.0, 9.0), (100.0, 20.0)],
        },
        Line {
            name: "cached".to_owned(),
            points: vec![(0.0, 0.1), (50.0, 0.2), (99.0, 0.5), (100.0, 1.0)],
        },
    ];
    let svg = latency_cdf("cache: latency CDF", &lines).unwrap();
    assert_texts(
        &svg,
        &[
            "cache: latency CDF",
            "latency (ms, log scale)",
            "requests at or below (%)",
            "bypass",
            "cached",
        ],
    );
    // Each run is one polyline in its own colour (the legend's sample is a second one).
    for index in 0..2 {
        let colour = run_colour(index);
        let stroke = format!(
            r##"stroke="#{:02X}{:02X}{:02X}""##,
            colour.0, colour.1, colour.2
        );
        let polylines = svg
            .split("<polyline")
            .skip(1)
            .filter(|element| element.contains(&stroke))
            .count();
        assert_eq!(polylines, 2, "run {index}");
    }
}

#[test]
fn empty_data_still_renders() {
    assert_texts(&latency_cdf("empty", &[]).unwrap(), &["empty"]);
    let bars = Bars::from_counts(std::iter::empty());
    assert_texts(
        &grouped_bars("nothing", "X-Cache", &bars).unwrap(),
        &["nothing", "X-Cache"],
    );
}

#[test]
fn no_latency_axis_label_is_drawn_twice() {
    // Latencies from cache hits to a slow tail, as the slow-server lesson has them.
    let mut cases = Vec::new();
    for low in [0.05, 0.2, 0.4, 1.0, 3.0, 30.0, 200.0] {
        for high in [
            450.0, 800.0, 980.0, 1_200.0, 1_500.0, 2_200.0, 3_000.0, 12_000.0,
        ] {
            cases.push((low, high));
        }
    }
    for (low, high) in cases {
        let line = Line {
            name: "run".to_owned(),
            points: vec![
                (0.0, low),
                (50.0, low * 2.0),
                (99.0, high * 0.8),
                (100.0, high),
            ],
        };
        let svg = latency_cdf("cdf", &[line]).unwrap();
        // The x axis's labels hang below their ticks (dy 0.76em); the y axis's are centred on theirs.
        let numbers: Vec<&str> = svg
            .split("<text")
            .skip(1)
            .filter_map(|element| element.split_once('>'))
            .filter(|(attributes, _)| attributes.contains(r#"dy="0.76em""#))
            .filter_map(|(_, rest)| rest.split_once("</text>"))
            .map(|(text, _)| text.trim())
            .filter(|text| text.parse::<f64>().is_ok())
            .collect();
        assert!(numbers.len() >= 2, "{low}..{high}: {numbers:?}");
        let mut unique = numbers.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), numbers.len(), "{low}..{high}: {numbers:?}");
    }
}
