//! Named load scenarios for `scalelab bench`. `single`, `strategies` and `cache` only vary the control parameters
//! of one URL: which runs they expand into is here, pure and table-tested. The others set up a condition on the
//! lab first; `lesson` runs them.

use crate::bench::{build_url, BenchError};

/// The balancing strategies the proxy accepts in `?strategy=`, in the order the `strategies` scenario runs them.
pub const STRATEGIES: [&str; 3] = ["round_robin", "weighted", "least_connections"];

/// A named scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// One run with the given `--strategy` and `--bypass-cache`, as `bench` always did.
    Single,
    /// The same load once per strategy, with the cache bypassed so that every request reaches a gateway.
    Strategies,
    /// The same load with `bypass_cache=true`, then with the cache on.
    Cache,
    /// One gateway answers 200-400 ms late (`--slow-ms`); the same load once per strategy.
    SlowServer,
    /// Gateways of speeds about 3:2:1; weighted with equal weights, then 3/2/1.
    UnevenCapacity,
    /// One gateway fails half its requests, dies, comes back; with and without retries.
    FailingServer,
    /// Zipf-distributed keys on /data/complex; cache off, on, and with small tiers.
    HotKey,
    /// A burst of low-priority tasks, then a stream of high ones; aging off, then on.
    PriorityFlood,
    /// The config rewritten every second during a load.
    ReloadUnderLoad,
    /// One gateway slowed with jitter; round robin, least connections, p2c and peak EWMA compared.
    LatencyAware,
    /// One gateway answers 500 to 30% of its requests, its /health passing; without and with outlier detection.
    BadServer,
    /// A canary gateway with a 30% error rate rolled out by reloads (5, 25, 50, 100%): promote or roll back.
    Canary,
    /// Gateways with a local item cache; round robin against a hash on the item id: hit ratio and latency.
    HashLocality,
    /// A lab started with `up --dns`: a fourth gateway's record added under load, then one removed; the proxy
    /// follows DNS (not in `--all`, whose other lessons need the static lab).
    ScaleOut,
}

/// What `--all` runs, in order: the plain comparisons first, then each condition.
pub const ALL: [Scenario; 12] = [
    Scenario::Strategies,
    Scenario::Cache,
    Scenario::SlowServer,
    Scenario::UnevenCapacity,
    Scenario::FailingServer,
    Scenario::HotKey,
    Scenario::PriorityFlood,
    Scenario::ReloadUnderLoad,
    Scenario::LatencyAware,
    Scenario::BadServer,
    Scenario::Canary,
    Scenario::HashLocality,
];

impl Scenario {
    /// The name used on the command line and in the output file names.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Single => "single",
            Scenario::Strategies => "strategies",
            Scenario::Cache => "cache",
            Scenario::SlowServer => "slow-server",
            Scenario::UnevenCapacity => "uneven-capacity",
            Scenario::FailingServer => "failing-server",
            Scenario::HotKey => "hot-key",
            Scenario::PriorityFlood => "priority-flood",
            Scenario::ReloadUnderLoad => "reload-under-load",
            Scenario::LatencyAware => "latency-aware",
            Scenario::BadServer => "bad-server",
            Scenario::Canary => "canary",
            Scenario::HashLocality => "hash-locality",
            Scenario::ScaleOut => "scale-out",
        }
    }
}

impl Scenario {
    /// True for the lessons, which set up a condition on the lab and choose their own URLs and strategies.
    pub fn sets_a_condition(self) -> bool {
        !matches!(
            self,
            Scenario::Single | Scenario::Strategies | Scenario::Cache
        )
    }
}

/// Refuses `--url`, `--strategy` and `--bypass-cache` for a lesson, which picks its own, instead of silently
/// ignoring them.
///
/// # Errors
/// A lesson got one of those options.
pub fn check_options(
    scenario: Scenario,
    url: bool,
    strategy: Option<&str>,
    bypass_cache: bool,
) -> Result<(), BenchError> {
    if scenario.sets_a_condition() && (url || strategy.is_some() || bypass_cache) {
        return Err(BenchError::Scenario(
            "--url, --strategy and --bypass-cache only apply to single, strategies and cache; the other scenarios \
             choose their own URLs and tactics",
        ));
    }
    Ok(())
}

/// One run of a scenario: its name in the report and plots, and the URL it loads.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub name: String,
    pub url: reqwest::Url,
}

/// Expands `scenario` into its runs against `base`.
///
/// `strategy` and `bypass_cache` are the user's `--strategy` and `--bypass-cache`. A scenario that varies one of
/// them refuses it instead of silently ignoring it.
///
/// # Errors
/// `base` is not a URL, an option contradicts the scenario, or the scenario is not one of these three.
pub fn expand(
    scenario: Scenario,
    base: &str,
    strategy: Option<&str>,
    bypass_cache: bool,
) -> Result<Vec<Run>, BenchError> {
    let run = |name: &str, strategy: Option<&str>, bypass: bool| {
        Ok(Run {
            name: name.to_owned(),
            url: build_url(base, strategy, bypass)?,
        })
    };
    match scenario {
        Scenario::Single => Ok(vec![run("single", strategy, bypass_cache)?]),
        Scenario::Strategies => {
            if strategy.is_some() {
                return Err(BenchError::Scenario(
                    "--strategy cannot be combined with --scenario strategies, which runs every strategy",
                ));
            }
            // A cache hit never reaches a gateway, so with the cache on the shares would measure the cache.
            STRATEGIES
                .iter()
                .map(|name| run(name, Some(name), true))
                .collect()
        }
        Scenario::Cache => {
            if bypass_cache {
                return Err(BenchError::Scenario(
                    "--bypass-cache cannot be combined with --scenario cache, which runs with and without it",
                ));
            }
            // The bypassed run goes first: the proxy still stores what it fetches, so the cached run starts warm
            // and shows the steady state rather than the first misses.
            Ok(vec![
                run("bypass", strategy, true)?,
                run("cached", strategy, false)?,
            ])
        }
        _ => Err(BenchError::Scenario(
            "this scenario sets up a condition on the lab; it does not expand into plain runs",
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Scenario, `--strategy`, `--bypass-cache`, then the expected run names and URLs.
    type Case = (
        Scenario,
        Option<&'static str>,
        bool,
        &'static [(&'static str, &'static str)],
    );

    #[test]
    fn scenarios_expand_into_their_runs() {
        let base = "http://h:8000/data";
        let cases: [Case; 5] = [
            (
                Scenario::Single,
                None,
                false,
                &[("single", "http://h:8000/data")],
            ),
            (
                Scenario::Single,
                Some("weighted"),
                true,
                &[(
                    "single",
                    "http://h:8000/data?strategy=weighted&bypass_cache=true",
                )],
            ),
            (
                Scenario::Strategies,
                None,
                false,
                &[
                    (
                        "round_robin",
                        "http://h:8000/data?strategy=round_robin&bypass_cache=true",
                    ),
                    (
                        "weighted",
                        "http://h:8000/data?strategy=weighted&bypass_cache=true",
                    ),
                    (
                        "least_connections",
                        "http://h:8000/data?strategy=least_connections&bypass_cache=true",
                    ),
                ],
            ),
            (
                Scenario::Cache,
                None,
                false,
                &[
                    ("bypass", "http://h:8000/data?bypass_cache=true"),
                    ("cached", "http://h:8000/data"),
                ],
            ),
            (
                Scenario::Cache,
                Some("weighted"),
                false,
                &[
                    (
                        "bypass",
                        "http://h:8000/data?strategy=weighted&bypass_cache=true",
                    ),
                    ("cached", "http://h:8000/data?strategy=weighted"),
                ],
            ),
        ];
        for (scenario, strategy, bypass, expected) in cases {
            let runs = expand(scenario, base, strategy, bypass).unwrap();
            let got: Vec<(&str, &str)> = runs
                .iter()
                .map(|run| (run.name.as_str(), run.url.as_str()))
                .collect();
            assert_eq!(got, expected, "{scenario:?} {strategy:?} {bypass}");
        }
    }

    #[test]
    fn contradicting_options_are_refused() {
        let base = "http://h:8000/data";
        assert!(expand(Scenario::Strategies, base, Some("weighted"), false).is_err());
        assert!(expand(Scenario::Cache, base, None, true).is_err());
        assert!(expand(Scenario::Strategies, "not a url", None, false).is_err());
        assert!(expand(Scenario::SlowServer, base, None, false).is_err());
        // The strategies scenario always bypasses the cache, so asking for it too is no contradiction.
        assert_eq!(
            expand(Scenario::Strategies, base, None, true)
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn lessons_refuse_the_plain_options() {
        let cases = [
            (Scenario::SlowServer, false, None, false, true),
            (Scenario::SlowServer, true, None, false, false),
            (Scenario::HotKey, false, Some("weighted"), false, false),
            (Scenario::PriorityFlood, false, None, true, false),
            (Scenario::Cache, true, Some("weighted"), false, true),
            (Scenario::Single, true, None, true, true),
        ];
        for (scenario, url, strategy, bypass, ok) in cases {
            assert_eq!(
                check_options(scenario, url, strategy, bypass).is_ok(),
                ok,
                "{scenario:?} {url} {strategy:?} {bypass}"
            );
        }
        assert!(ALL.iter().all(|scenario| *scenario != Scenario::Single));
    }

    #[test]
    fn names_match_the_command_line() {
        use clap::ValueEnum;
        for scenario in Scenario::value_variants() {
            let value = scenario.to_possible_value().unwrap();
            assert_eq!(value.get_name(), scenario.name());
        }
    }
}
