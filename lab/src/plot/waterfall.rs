//! A trace as a waterfall: one bar per span, a row each, indented under its parent, placed and
//! sized on one time axis from the trace's first start to its last end, labelled with service,
//! span name and duration. Two spans that ran at once (the gateway's calls to the database and
//! the microservice) are two bars whose extents overlap on that axis.
//!
//! Written as SVG text directly rather than through plotters: a waterfall is rows of rectangles
//! and labels at computed positions, with no axis mapping plotters would add anything to, and
//! writing each bar as one `<rect>` lets it carry the span's service, name and ids as `data-`
//! attributes (and a `<title>` tooltip) that a reader, and a test, can find.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use scalelab_common::trace::received::ReceivedSpan;

const WIDTH: f64 = 1100.0;
/// The label column; bars start after it.
const LABELS: f64 = 460.0;
const RIGHT_MARGIN: f64 = 20.0;
const TOP: f64 = 64.0;
const ROW: f64 = 24.0;
const BAR: f64 = 16.0;
const INDENT: f64 = 16.0;

/// The spans in waterfall order with their depth: each root (a span whose parent is not in the
/// trace) by start time, each followed by its children, depth first, by start time. A span is
/// placed once even if ids repeat or parents form a loop.
pub fn rows(spans: &[ReceivedSpan]) -> Vec<(usize, &ReceivedSpan)> {
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<&ReceivedSpan>> = HashMap::new();
    let mut roots = Vec::new();
    for span in spans {
        if ids.contains(span.parent_span_id.as_str()) && span.parent_span_id != span.span_id {
            children
                .entry(span.parent_span_id.as_str())
                .or_default()
                .push(span);
        } else {
            roots.push(span);
        }
    }
    let by_start = |list: &mut Vec<&ReceivedSpan>| {
        list.sort_by_key(|s| (s.start_ns, std::cmp::Reverse(s.end_ns)));
    };
    by_start(&mut roots);
    for list in children.values_mut() {
        by_start(list);
    }
    let mut out = Vec::with_capacity(spans.len());
    let mut placed: HashSet<*const ReceivedSpan> = HashSet::new();
    let mut stack: Vec<(usize, &ReceivedSpan)> = roots.iter().rev().map(|s| (0, *s)).collect();
    while let Some((depth, span)) = stack.pop() {
        if !placed.insert(std::ptr::from_ref(span)) {
            continue;
        }
        out.push((depth, span));
        if let Some(list) = children.get(span.span_id.as_str()) {
            stack.extend(list.iter().rev().map(|child| (depth + 1, *child)));
        }
    }
    // Spans only reachable through a loop of parents: shown at the top level, after the rest.
    for span in spans {
        if placed.insert(std::ptr::from_ref(span)) {
            out.push((0, span));
        }
    }
    out
}

/// Nanoseconds as milliseconds with about three significant digits ("0.24 ms", "14.2 ms",
/// "240 ms"). Not `lesson::verdict::ms`: `lesson` draws with `plot`, so `plot` may not use it.
fn ms(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    let digits = usize::from(ms < 100.0) + usize::from(ms < 1.0);
    format!("{ms:.digits$} ms")
}

/// The waterfall of trace `trace_id`'s `spans` as an SVG document.
pub fn svg(trace_id: &str, spans: &[ReceivedSpan]) -> String {
    let rows = rows(spans);
    let start = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let end = spans
        .iter()
        .map(|s| s.end_ns.max(s.start_ns))
        .max()
        .unwrap_or(start);
    let total = end.saturating_sub(start).max(1);
    let plot_width = WIDTH - LABELS - RIGHT_MARGIN;
    let x = |ns: u64| LABELS + ns.saturating_sub(start) as f64 / total as f64 * plot_width;
    let height = TOP + ROW * rows.len() as f64 + 20.0;
    let mut services: Vec<&str> = Vec::new();
    for (_, span) in &rows {
        if !services.contains(&span.service.as_str()) {
            services.push(&span.service);
        }
    }
    let colour = |service: &str| {
        let index = services.iter().position(|s| *s == service).unwrap_or(0);
        let c = super::run_colour(index);
        format!("rgb({},{},{})", c.0, c.1, c.2)
    };
    // The first row is the trace's root: of the spans whose parent is not in it, the earliest.
    let title = match rows.first() {
        Some((_, root)) => format!(
            "trace {trace_id}: {} {} ({} spans, {})",
            root.service,
            root.name,
            spans.len(),
            ms(total)
        ),
        None => format!("trace {trace_id}: no spans"),
    };
    let mut out = String::new();
    // `write!` into a `String` cannot fail.
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">{}</text>"#,
        super::escape(&title)
    );
    // Five ticks along the time axis, with a faint line down through the rows.
    for tick in 0..=4u64 {
        let at = start + total * tick / 4;
        let tx = x(at);
        let anchor = match tick {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = writeln!(
            out,
            r##"<line x1="{tx:.1}" y1="{}" x2="{tx:.1}" y2="{}" stroke="#ddd"/><text x="{tx:.1}" y="{}" text-anchor="{anchor}" fill="#555">{}</text>"##,
            TOP - 12.0,
            height - 16.0,
            TOP - 18.0,
            ms(at - start)
        );
    }
    for (row, (depth, span)) in rows.iter().enumerate() {
        let y = TOP + ROW * row as f64;
        let bar_x = x(span.start_ns);
        let bar_width = (x(span.end_ns.max(span.start_ns)) - bar_x).max(1.0);
        let label = format!(
            "{}: {} ({})",
            span.service,
            span.name,
            ms(span.duration_ns())
        );
        let error = if span.status == 2 { " error" } else { "" };
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            10.0 + INDENT * *depth as f64,
            y + BAR - 4.0,
            super::escape(&label)
        );
        let _ = writeln!(
            out,
            r#"<rect class="span{error}" data-service="{}" data-name="{}" data-span-id="{}" data-parent-id="{}" x="{bar_x:.2}" y="{y:.1}" width="{bar_width:.2}" height="{BAR}" fill="{}"{}><title>{}</title></rect>"#,
            super::escape(&span.service),
            super::escape(&span.name),
            super::escape(&span.span_id),
            super::escape(&span.parent_span_id),
            colour(&span.service),
            if span.status == 2 {
                r#" stroke="red" stroke-width="2""#
            } else {
                ""
            },
            super::escape(&label)
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;

    fn span(
        service: &str,
        name: &str,
        id: &str,
        parent: &str,
        start_ms: u64,
        end_ms: u64,
    ) -> ReceivedSpan {
        ReceivedSpan {
            service: service.to_owned(),
            trace_id: "5bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
            span_id: id.to_owned(),
            parent_span_id: parent.to_owned(),
            name: name.to_owned(),
            kind: ReceivedSpan::SERVER,
            start_ns: start_ms * 1_000_000,
            end_ns: end_ms * 1_000_000,
            attributes: BTreeMap::new(),
            status: 0,
        }
    }

    /// The lab's fan-out, out of order as the exporters deliver it.
    fn fan_out() -> Vec<ReceivedSpan> {
        vec![
            span("gw", "microservice", "d", "c", 12, 30),
            span("db", "GET /data", "e", "f", 13, 39),
            span("proxy", "GET <complex>", "a", "caller", 0, 50),
            span("gw", "database", "f", "c", 11, 40),
            span("gw", "GET /data/complex", "c", "b", 10, 45),
            span("proxy", "attempt", "b", "a", 2, 48),
        ]
    }

    #[test]
    fn rows_put_children_under_their_parents_by_start() {
        let spans = fan_out();
        let order: Vec<(usize, &str)> = rows(&spans)
            .iter()
            .map(|(depth, span)| (*depth, span.span_id.as_str()))
            .collect();
        assert_eq!(
            order,
            vec![(0, "a"), (1, "b"), (2, "c"), (3, "f"), (4, "e"), (3, "d")]
        );
    }

    #[test]
    fn a_loop_of_parents_still_places_every_span_once() {
        let spans = vec![
            span("s", "one", "a", "b", 0, 10),
            span("s", "two", "b", "a", 1, 5),
            span("s", "self", "c", "c", 2, 3),
        ];
        let placed = rows(&spans);
        assert_eq!(placed.len(), 3);
        let mut ids: Vec<&str> = placed.iter().map(|(_, s)| s.span_id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec!["a", "b", "c"]);
    }

    #[test]
    fn bars_sit_on_one_time_axis_with_escaped_labels() {
        let svg = svg("5bf92f3577b34da6a3ce929d0e0e4736", &fan_out());
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(
            svg.contains(">proxy: GET &lt;complex&gt; (50.0 ms)</text>"),
            "{svg}"
        );
        assert!(svg.contains("6 spans, 50.0 ms"), "{svg}");
        // The axis starts at the trace's first start.
        assert!(svg.contains(">0.00 ms</text>"), "{svg}");
        assert!(svg.contains(">gw: database (29.0 ms)</text>"), "{svg}");
        let x_of = |id: &str| -> (f64, f64) {
            let at = svg.find(&format!("data-span-id=\"{id}\"")).unwrap();
            let rest = &svg[at..];
            let number = |name: &str| -> f64 {
                let start = rest.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
                let len = rest[start..].find('"').unwrap();
                rest[start..start + len].parse().unwrap()
            };
            (number("x"), number("width"))
        };
        // The root spans the whole axis; 0 ms is at the label column's edge.
        assert_eq!(x_of("a"), (LABELS, WIDTH - LABELS - RIGHT_MARGIN));
        // The two calls overlap: 11-40 ms and 12-30 ms.
        let (db_x, db_w) = x_of("f");
        let (ms_x, ms_w) = x_of("d");
        assert!(db_x < ms_x + ms_w && ms_x < db_x + db_w);
        let scale = (WIDTH - LABELS - RIGHT_MARGIN) / 50.0;
        assert!((db_x - (LABELS + 11.0 * scale)).abs() < 0.01);
        assert!((ms_w - 18.0 * scale).abs() < 0.01);
    }

    #[test]
    fn an_empty_trace_is_still_a_picture() {
        let svg = svg("x", &[]);
        assert!(svg.contains("trace x: no spans") && svg.ends_with("</svg>\n"));
    }
}
