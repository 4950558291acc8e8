use super::pick;
use std::collections::HashMap;

fn map(pairs: &[(&str, usize)]) -> HashMap<String, usize> {
    pairs.iter().map(|(k, v)| ((*k).to_string(), *v)).collect()
}

#[test]
fn sni_picks_exact_then_one_label_wildcard_then_the_default() {
    let exact = map(&[("localhost", 0), ("api.lab.test", 2), ("lab.test", 3)]);
    let wildcard = map(&[("lab.test", 1), ("other.test", 4)]);
    let cases: &[(Option<&str>, usize, &str)] = &[
        (None, 0, "no SNI: the default"),
        (Some("localhost"), 0, "exact"),
        (Some("LOCALHOST."), 0, "case and trailing dot do not matter"),
        (Some("www.lab.test"), 1, "wildcard, one label"),
        (Some("api.lab.test"), 2, "exact beats wildcard"),
        (
            Some("lab.test"),
            3,
            "the bare domain is not covered by its wildcard",
        ),
        (Some("a.b.lab.test"), 0, "a wildcard covers one label only"),
        (Some("x.other.test"), 4, "another wildcard"),
        (Some("nobody.example"), 0, "unknown: the default"),
        (Some(".lab.test"), 0, "an empty first label is not a name"),
        (Some(""), 0, "empty SNI: the default"),
    ];
    for (name, want, why) in cases {
        assert_eq!(pick(&exact, &wildcard, *name), *want, "{name:?}: {why}");
    }
}
