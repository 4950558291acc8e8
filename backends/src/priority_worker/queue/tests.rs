//! Table tests of the ordering policy.

use super::*;

const BOUND: f64 = 30.0;

fn head(seq: u64, enqueued_at: f64) -> Option<Head> {
    Some(Head { seq, enqueued_at })
}

/// (description, [high, normal, low] heads, now, expected lane)
type Case = (&'static str, [Option<Head>; 3], f64, Option<Priority>);

#[test]
fn next_lane_table() {
    use Priority::{High, Low, Normal};
    let cases: Vec<Case> = vec![
        ("empty", [None, None, None], 100.0, None),
        (
            "high beats normal and low",
            [head(3, 99.0), head(2, 98.0), head(1, 97.0)],
            100.0,
            Some(High),
        ),
        (
            "normal beats low",
            [None, head(2, 98.0), head(1, 97.0)],
            100.0,
            Some(Normal),
        ),
        (
            "low alone runs",
            [None, None, head(1, 97.0)],
            100.0,
            Some(Low),
        ),
        (
            "aged low beats fresh high",
            [head(9, 99.0), None, head(1, 60.0)],
            100.0,
            Some(Low),
        ),
        (
            "exactly at the bound counts as aged",
            [head(9, 99.0), None, head(1, 70.0)],
            100.0,
            Some(Low),
        ),
        (
            "just under the bound is not aged",
            [head(9, 99.0), None, head(1, 70.5)],
            100.0,
            Some(High),
        ),
        (
            "two aged heads: oldest seq first",
            [head(5, 10.0), head(2, 20.0), head(4, 5.0)],
            100.0,
            Some(Normal),
        ),
        (
            "aged high still runs before fresh lows",
            [head(1, 50.0), None, head(2, 99.0)],
            100.0,
            Some(High),
        ),
    ];
    for (description, heads, now, expected) in cases {
        assert_eq!(next_lane(heads, now, BOUND), expected, "{description}");
    }
}

#[test]
fn zero_bound_degrades_to_global_fifo() {
    let heads = [head(7, 99.0), head(3, 99.0), head(5, 99.0)];
    assert_eq!(next_lane(heads, 99.0, 0.0), Some(Priority::Normal));
}

#[test]
fn priority_parses_case_insensitively_and_rejects_others() {
    let cases = [
        ("high", Ok(Priority::High)),
        ("NORMAL", Ok(Priority::Normal)),
        ("Low", Ok(Priority::Low)),
        ("urgent", Err(())),
        ("", Err(())),
    ];
    for (text, expected) in cases {
        assert_eq!(
            text.parse::<Priority>().map_err(|_| ()),
            expected,
            "{text:?}"
        );
    }
}

fn entry(seq: u64, priority: Priority, enqueued_at: f64) -> Entry<u64> {
    Entry {
        seq,
        priority,
        enqueued_at,
        item: seq,
    }
}

fn drain(queue: &mut Queue<u64>, now: f64) -> Vec<u64> {
    std::iter::from_fn(|| queue.pop(now).map(|entry| entry.item)).collect()
}

#[test]
fn fresh_tasks_run_by_level_then_fifo() {
    let mut queue = Queue::new(Duration::from_secs(30));
    let levels = [Priority::Low, Priority::Normal, Priority::High];
    for seq in 0..15 {
        let position = queue.push(entry(seq, levels[usize::try_from(seq / 5).unwrap()], 100.0));
        assert_eq!(position, usize::try_from(seq % 5 + 1).unwrap());
    }
    assert_eq!(
        drain(&mut queue, 101.0),
        vec![10, 11, 12, 13, 14, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4]
    );
    assert!(queue.is_empty());
}

#[test]
fn aged_low_task_overtakes_a_stream_of_highs() {
    let mut queue = Queue::new(Duration::from_secs(30));
    queue.push(entry(0, Priority::Low, 0.0));
    for seq in 1..=3 {
        queue.push(entry(seq, Priority::High, 29.0));
    }
    // At t=20 nothing has aged: highs first.
    assert_eq!(queue.pop(20.0).map(|entry| entry.item), Some(1));
    // At t=30 the low task has waited the full bound and goes next, ahead of the remaining fresh highs.
    assert_eq!(drain(&mut queue, 30.0), vec![0, 2, 3]);
}

#[test]
fn recovered_entries_keep_seq_order_within_a_lane() {
    let mut queue = Queue::new(Duration::from_secs(30));
    queue.push(entry(8, Priority::Normal, 1.0));
    queue.push(entry(2, Priority::Normal, 1.0));
    queue.push(entry(5, Priority::Normal, 1.0));
    assert_eq!(queue.len(Priority::Normal), 3);
    assert_eq!(drain(&mut queue, 2.0), vec![2, 5, 8]);
}
