use super::*;
use crate::balance::hashing::key_hash;

fn split(weights: &[u32]) -> Vec<SplitTarget> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &weight)| SplitTarget {
            group: format!("g{i}"),
            weight,
            pin: None,
        })
        .collect()
}

fn none(_: &str) -> Option<&'static str> {
    None
}

/// Shares of `n` choices per target.
fn shares(
    split: &[SplitTarget],
    n: u64,
    mut draw: impl FnMut(u64) -> (Option<u64>, u64),
) -> Vec<f64> {
    let mut counts = vec![0u64; split.len()];
    for i in 0..n {
        let (key, random) = draw(i);
        let choice = choose(split, none, none, key, random).unwrap();
        counts[choice.target] += 1;
    }
    counts.iter().map(|&c| c as f64 / n as f64).collect()
}

#[test]
fn per_request_ratios_follow_the_weights_within_one_percent() {
    let table: [&[u32]; 5] = [&[95, 5], &[75, 25], &[0, 100], &[1, 1, 2], &[999, 1]];
    for weights in table {
        let split = split(weights);
        let mut rng = fastrand::Rng::with_seed(7);
        let got = shares(&split, 200_000, |_| (None, rng.u64(..)));
        let total: u32 = weights.iter().sum();
        for (i, &w) in weights.iter().enumerate() {
            let want = f64::from(w) / f64::from(total);
            assert!(
                (got[i] - want).abs() < 0.01,
                "weights {weights:?}: target {i} got {:.4}, want {want:.4}",
                got[i]
            );
        }
    }
}

#[test]
fn keyed_ratios_follow_the_weights_and_a_key_always_lands_on_the_same_side() {
    for weights in [[95u32, 5], [75, 25], [50, 50]] {
        let split = split(&weights);
        let got = shares(&split, 20_000, |i| {
            (Some(key_hash(format!("user-{i}").as_bytes())), 0)
        });
        let want = f64::from(weights[1]) / 100.0;
        assert!(
            (got[1] - want).abs() < 0.015,
            "weights {weights:?}: canary got {:.4}, want {want:.4}",
            got[1]
        );
        for i in 0..200u64 {
            let key = Some(key_hash(format!("user-{i}").as_bytes()));
            let first = choose(&split, none, none, key, i);
            // A different random number changes nothing once the key decides.
            assert_eq!(first, choose(&split, none, none, key, !i));
            assert_eq!(first.map(|c| c.reason), Some(Reason::Key));
        }
    }
}

#[test]
fn a_rollout_only_moves_users_onto_the_canary() {
    let steps = [[95u32, 5], [75, 25], [0, 100]];
    let side = |weights: &[u32; 2], user: u64| {
        let key = Some(key_hash(format!("user-{user}").as_bytes()));
        choose(&split(weights), none, none, key, 0).unwrap().target
    };
    for pair in steps.windows(2) {
        for user in 0..5_000u64 {
            if side(&pair[0], user) == 1 {
                assert_eq!(
                    side(&pair[1], user),
                    1,
                    "user {user} left the canary going {:?} -> {:?}",
                    pair[0],
                    pair[1]
                );
            }
        }
    }
}

#[test]
fn pins_come_first_and_need_every_value() {
    let mut split = split(&[100, 0]);
    split[1].pin = Some(Pin {
        headers: vec![("x-canary".into(), "1".into())],
        cookies: vec![("beta".into(), "yes".into())],
    });
    let header = |value: Option<&'static str>| {
        move |name: &str| (name == "x-canary").then_some(value).flatten()
    };
    let cookie =
        |value: Option<&'static str>| move |name: &str| (name == "beta").then_some(value).flatten();
    let table = [
        (Some("1"), Some("yes"), 1, Reason::Pinned),
        (Some("1"), None, 0, Reason::Weight),
        (None, Some("yes"), 0, Reason::Weight),
        (Some("0"), Some("yes"), 0, Reason::Weight),
        (Some("1"), Some("YES"), 0, Reason::Weight),
    ];
    for (h, c, target, reason) in table {
        // The weight-0 target is reached only through its pin, whatever the draw.
        for random in [0, u64::MAX / 2, u64::MAX] {
            assert_eq!(
                choose(&split, header(h), cookie(c), None, random),
                Some(Choice { target, reason }),
                "header {h:?} cookie {c:?}"
            );
        }
    }
}

#[test]
fn by_weight_edges() {
    let w = |list: &'static [u32]| list.iter().copied();
    assert_eq!(by_weight(w(&[0, 0]), 5), None);
    assert_eq!(by_weight(w(&[]), 5), None);
    assert_eq!(by_weight(w(&[0, 3, 0]), 0), Some(1));
    assert_eq!(by_weight(w(&[0, 3, 0]), u64::MAX), Some(1));
    assert_eq!(by_weight(w(&[1, 1]), 0), Some(0));
    assert_eq!(by_weight(w(&[1, 1]), u64::MAX), Some(1));
    assert_eq!(by_weight(w(&[1, 1]), u64::MAX / 2), Some(0));
    assert_eq!(by_weight(w(&[1, 1]), u64::MAX / 2 + 1), Some(1));
}

#[test]
fn mirrored_share_follows_the_percent() {
    let mut rng = fastrand::Rng::with_seed(3);
    for percent in [0.0, 0.5, 10.0, 50.0, 100.0] {
        let n = 100_000;
        let hits = (0..n).filter(|_| mirrored(percent, rng.u64(..))).count();
        let got = hits as f64 / n as f64 * 100.0;
        assert!((got - percent).abs() < 0.5, "{percent}%: got {got:.3}%");
    }
    assert!(!mirrored(0.0, 0));
    assert!(mirrored(100.0, u64::MAX));
}
