//! The command line. Kept in the library so the argument table tests exercise the real parser.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::scenario::Scenario;

/// One command for the whole lab.
#[derive(Debug, Parser)]
#[command(
    name = "scalelab",
    version,
    about = "Start the scalelab lab, mint tokens, check the config, benchmark"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the gateways, microservice, database, worker and proxy; Ctrl-C stops them all.
    Up(UpArgs),
    /// Print a JWT that the config's [auth] table accepts.
    Token(TokenArgs),
    /// Validate the config file: the proxy's check, then the [lab] and [auth] tables.
    Check(CheckArgs),
    /// Run a load scenario (N requests with concurrency C per run), or a lesson that sets up a condition on the
    /// running lab first; report and plot upstreams, cache results, failures and latency, with a verdict, in
    /// report.html.
    Bench(BenchArgs),
    /// Draw one trace from the lab's receiver (`up --observe`) as an SVG waterfall and print the file's path.
    Trace(TraceArgs),
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The lab's config file.
    #[arg(long, short, default_value = "config.toml")]
    pub config: PathBuf,
    /// Restart a child that exits (with backoff); by default a dead child stays dead so failover can be shown.
    #[arg(long)]
    pub restart: bool,
    /// Directory holding the scalelab-* binaries (default: the directory of this executable).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// How long every /health may take to answer before `up` gives up (default: [lab] ready_timeout).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub ready_timeout: Option<Duration>,
    /// Never colour the log prefixes (colour is also off when stdout is not a terminal or NO_COLOR is set).
    #[arg(long)]
    pub no_color: bool,
    /// Also run Prometheus (from PATH) scraping every process of the lab, wait until it sees them all, and print
    /// its URL and ready-made queries. Its data lives in <data_dir>/prometheus. Unless [lab] otlp_endpoint names a
    /// collector, also run a trace receiver the lab's proxies and services export to (`scalelab trace`).
    #[arg(long)]
    pub observe: bool,
    /// The port Prometheus listens on with --observe (default: 9090 when free, else any free port).
    #[arg(long, requires = "observe")]
    pub prometheus_port: Option<u16>,
    /// Run a fleet: two proxies (ports +1) sharing a Redis cache tier and two workers (port +10) sharing a Redis
    /// task queue, with a redis-server started on a free port (or [lab] redis_port) unless [lab] redis_url
    /// names one.
    #[arg(long)]
    pub fleet: bool,
    /// Publish the gateways as the A records of one name (gateways.lab), served by a dnsmasq the lab runs on a free
    /// port, and let the proxy find them through it (each gateway on its own loopback address, one port); the
    /// proxy then runs <config stem>.dns.toml, written beside the config. `bench -s scale-out` needs it.
    #[arg(long)]
    pub dns: bool,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The config file whose [auth] table signs the token.
    #[arg(long, short, default_value = "config.toml")]
    pub config: PathBuf,
    /// Lifetime of the token, e.g. "24h", "15m".
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// The `sub` claim.
    #[arg(long, default_value = "dev")]
    pub sub: String,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The trace id: 32 hex digits, the second field of a `traceparent` (or `trace_id=` in the access log).
    pub trace_id: String,
    /// The lab's config file, whose data dir says where the running `up --observe` receives traces.
    #[arg(long, short, default_value = "config.toml")]
    pub config: PathBuf,
    /// The receiver's base URL, instead of the one `up` wrote into the data dir.
    #[arg(long)]
    pub receiver: Option<String>,
    /// The directory the SVG (`trace-<id>.svg`) is written to.
    #[arg(long, short, default_value = ".")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The config file to validate.
    #[arg(long, short, default_value = "config.toml")]
    pub config: PathBuf,
    /// Directory holding scalelab-proxy (default: the directory of this executable).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The URL `single`, `strategies` and `cache` load (default: /data on the proxy of the config's [proxy]).
    #[arg(long)]
    pub url: Option<String>,
    /// What to run: `single` (one run), `strategies` (one run per balancing strategy, cache bypassed), `cache`
    /// (bypassing the cache, then with it), or a lesson that sets up a condition on the running lab first and puts
    /// it back afterwards: `slow-server`, `uneven-capacity`, `failing-server`, `hot-key`, `priority-flood`,
    /// `reload-under-load`, `latency-aware`, `bad-server`, `canary`.
    #[arg(
        long,
        short,
        value_enum,
        default_value = "single",
        conflicts_with = "all"
    )]
    pub scenario: Scenario,
    /// Run every scenario but `single` into one report with a table of contents.
    #[arg(long)]
    pub all: bool,
    /// slow-server: the slow gateway answers this many milliseconds late, plus up to as many again at random. The
    /// longer it is, the fewer requests least connections gives it and the clearer the lesson in the tail (p99).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub slow_ms: u64,
    /// Print the report's path (report.html in --out) as the last line, to open it.
    #[arg(long)]
    pub open: bool,
    /// Number of requests of each run.
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub requests: u64,
    /// Requests in flight at once (`-j` as in make's jobs: `-c` is the config file in every subcommand).
    #[arg(long, short = 'j', default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Balancing strategy, sent as `?strategy=` (round_robin, weighted, least_connections).
    #[arg(long)]
    pub strategy: Option<String>,
    /// Add `?bypass_cache=true`, so every request reaches a gateway.
    #[arg(long)]
    pub bypass_cache: bool,
    /// The token to send; by default one is minted from the config's [auth] table, if it has one.
    #[arg(long, conflicts_with = "no_token")]
    pub token: Option<String>,
    /// Send no Authorization header at all.
    #[arg(long)]
    pub no_token: bool,
    /// The lab's config file: where the proxy, its admin API and the backends listen, the [auth] table that mints
    /// the token, and the file the lessons rewrite (it must be the one the running proxy loaded).
    // `-C` was its short form before `-c` meant the config everywhere; kept as a hidden alias.
    #[arg(long, short = 'c', short_alias = 'C', default_value = "config.toml")]
    pub config: PathBuf,
    /// Timeout of each request.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Directory for the results: `<scenario>.json` with every run, the SVG charts `<scenario>-*.svg`, and
    /// `report.html`, one self-contained page with the condition, the figures, the charts and the verdict.
    #[arg(long, short, default_value = "bench-out")]
    pub out: PathBuf,
    /// No progress bar (for CI logs).
    #[arg(long)]
    pub quiet: bool,
}

/// The hint for `bench -c 32` written the old way, when `-c` was the concurrency: a config path that is a number
/// and names no file was almost certainly meant as the concurrency.
pub fn concurrency_given_as_config(config: &std::path::Path) -> Option<String> {
    let text = config.to_str()?;
    (text.parse::<u32>().is_ok() && !config.exists()).then(|| {
        format!(
            "-c {text}: -c is the config file (in every subcommand); the concurrency is -j {text} or --concurrency {text}"
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(line.split_whitespace())
    }

    /// Command line, then the expected config, restart, bin dir and ready timeout.
    type UpCase = (
        &'static str,
        &'static str,
        bool,
        Option<&'static str>,
        Option<Duration>,
    );

    #[test]
    fn up_arguments() {
        let cases: [UpCase; 4] = [
            ("scalelab up", "config.toml", false, None, None),
            (
                "scalelab up --config lab.toml --restart",
                "lab.toml",
                true,
                None,
                None,
            ),
            (
                "scalelab up -c x.toml --bin-dir /opt/bin",
                "x.toml",
                false,
                Some("/opt/bin"),
                None,
            ),
            (
                "scalelab up --ready-timeout 90s",
                "config.toml",
                false,
                None,
                Some(Duration::from_secs(90)),
            ),
        ];
        for (line, config, restart, bin_dir, timeout) in cases {
            let Command::Up(args) = parse(line).unwrap().command else {
                panic!("{line}: not up");
            };
            assert_eq!(args.config, PathBuf::from(config), "{line}");
            assert_eq!(args.restart, restart, "{line}");
            assert_eq!(args.bin_dir, bin_dir.map(PathBuf::from), "{line}");
            assert_eq!(args.ready_timeout, timeout, "{line}");
        }
    }

    #[test]
    fn observe_arguments() {
        let up = |line: &str| {
            let Command::Up(args) = parse(line).unwrap().command else {
                panic!("{line}: not up");
            };
            args
        };
        let args = up("scalelab up");
        assert!(!args.observe);
        assert_eq!(args.prometheus_port, None);
        let args = up("scalelab up --observe");
        assert!(args.observe);
        assert_eq!(args.prometheus_port, None);
        let args = up("scalelab up --observe --prometheus-port 19090");
        assert_eq!(args.prometheus_port, Some(19090));
        // A port without Prometheus would be silently ignored.
        assert!(parse("scalelab up --prometheus-port 19090").is_err());
    }

    #[test]
    fn fleet_argument() {
        for (line, fleet) in [
            ("scalelab up", false),
            ("scalelab up --fleet --observe", true),
        ] {
            let Command::Up(args) = parse(line).unwrap().command else {
                panic!("{line}: not up");
            };
            assert_eq!(args.fleet, fleet, "{line}");
        }
        for (line, dns) in [("scalelab up", false), ("scalelab up --dns", true)] {
            let Command::Up(args) = parse(line).unwrap().command else {
                panic!("{line}: not up");
            };
            assert_eq!(args.dns, dns, "{line}");
        }
        let Command::Up(args) = parse("scalelab up --dns --observe").unwrap().command else {
            panic!("not up");
        };
        assert!(args.dns && args.observe);
    }

    #[test]
    fn token_arguments() {
        let cases = [
            ("scalelab token", "config.toml", 86_400, "dev"),
            (
                "scalelab token --ttl 15m --sub alice",
                "config.toml",
                900,
                "alice",
            ),
            (
                "scalelab token --config other.toml --ttl 1h30m",
                "other.toml",
                5400,
                "dev",
            ),
        ];
        for (line, config, ttl, sub) in cases {
            let Command::Token(args) = parse(line).unwrap().command else {
                panic!("{line}: not token");
            };
            assert_eq!(args.config, PathBuf::from(config), "{line}");
            assert_eq!(args.ttl, Duration::from_secs(ttl), "{line}");
            assert_eq!(args.sub, sub, "{line}");
        }
    }

    fn bench(line: &str) -> BenchArgs {
        let Command::Bench(args) = parse(line).unwrap().command else {
            panic!("{line}: not bench");
        };
        args
    }

    #[test]
    fn bench_arguments() {
        let args =
            bench("scalelab bench -n 50 -j 4 --strategy weighted --bypass-cache --out results");
        assert_eq!((args.requests, args.concurrency), (50, 4));
        assert_eq!(args.config, PathBuf::from("config.toml"));
        assert_eq!(args.strategy.as_deref(), Some("weighted"));
        assert!(args.bypass_cache);
        assert_eq!(args.out, PathBuf::from("results"));
        assert_eq!(args.url, None);
        assert_eq!(args.scenario, Scenario::Single);
        assert!(!args.all && !args.open);
        assert_eq!(args.slow_ms, 200);

        let args = bench("scalelab bench --all --open");
        assert!(args.all && args.open);
        let args = bench("scalelab bench");
        assert_eq!(args.out, PathBuf::from("bench-out"));
        assert_eq!(args.scenario, Scenario::Single);
        for (line, scenario) in [
            ("scalelab bench --scenario strategies", Scenario::Strategies),
            ("scalelab bench -s cache -n 300", Scenario::Cache),
            ("scalelab bench --scenario single", Scenario::Single),
            ("scalelab bench -s slow-server", Scenario::SlowServer),
            (
                "scalelab bench -s uneven-capacity",
                Scenario::UnevenCapacity,
            ),
            ("scalelab bench -s failing-server", Scenario::FailingServer),
            ("scalelab bench -s hot-key", Scenario::HotKey),
            ("scalelab bench -s priority-flood", Scenario::PriorityFlood),
            (
                "scalelab bench -s reload-under-load",
                Scenario::ReloadUnderLoad,
            ),
            ("scalelab bench -s canary", Scenario::Canary),
            ("scalelab bench -s latency-aware", Scenario::LatencyAware),
            ("scalelab bench -s bad-server", Scenario::BadServer),
            ("scalelab bench -s hash-locality", Scenario::HashLocality),
            ("scalelab bench -s scale-out", Scenario::ScaleOut),
        ] {
            assert_eq!(bench(line).scenario, scenario, "{line}");
        }
    }

    #[test]
    fn every_subcommand_takes_the_config_as_c_and_config() {
        let config = |line: &str| -> PathBuf {
            match parse(line).unwrap().command {
                Command::Up(args) => args.config,
                Command::Token(args) => args.config,
                Command::Check(args) => args.config,
                Command::Bench(args) => args.config,
                Command::Trace(args) => args.config,
            }
        };
        for command in [
            "up",
            "token",
            "check",
            "bench",
            "trace 4bf92f3577b34da6a3ce929d0e0e4736",
        ] {
            for flag in ["-c", "--config"] {
                let line = format!("scalelab {command} {flag} lab.toml");
                assert_eq!(config(&line), PathBuf::from("lab.toml"), "{line}");
            }
        }
        // bench's old spelling still works, hidden from --help.
        assert_eq!(
            config("scalelab bench -C old.toml"),
            PathBuf::from("old.toml")
        );
        let Command::Bench(args) = parse("scalelab bench --concurrency 8 -c lab.toml")
            .unwrap()
            .command
        else {
            panic!("not bench");
        };
        assert_eq!(
            (args.concurrency, args.config),
            (8, PathBuf::from("lab.toml"))
        );
        let help = <Cli as clap::CommandFactory>::command()
            .find_subcommand_mut("bench")
            .unwrap()
            .render_help()
            .to_string();
        assert!(help.contains("-c, --config <CONFIG>"), "{help}");
        assert!(help.contains("-j, --concurrency <CONCURRENCY>"), "{help}");
        assert!(!help.contains("-C"), "{help}");
    }

    #[test]
    fn a_number_given_as_the_config_is_taken_for_the_old_concurrency() {
        use std::path::Path;
        assert_eq!(
            concurrency_given_as_config(Path::new("32")).as_deref(),
            Some("-c 32: -c is the config file (in every subcommand); the concurrency is -j 32 or --concurrency 32")
        );
        assert_eq!(concurrency_given_as_config(Path::new("config.toml")), None);
        assert_eq!(concurrency_given_as_config(Path::new("labs/32")), None);
        // A file of that name is a config path after all (this test's own executable stands in for one).
        let exe = std::env::current_exe().unwrap();
        assert_eq!(concurrency_given_as_config(&exe), None);
    }

    #[test]
    fn bad_arguments_are_refused() {
        let cases = [
            "scalelab",
            "scalelab up --restart=maybe",
            "scalelab up --ready-timeout soon",
            "scalelab token --ttl forever",
            "scalelab bench -j 0",
            "scalelab bench --concurrency 0",
            "scalelab bench --token abc --no-token",
            "scalelab bench --scenario priority",
            "scalelab bench --all --scenario cache",
            "scalelab launch",
        ];
        for line in cases {
            assert!(parse(line).is_err(), "{line} should be refused");
        }
    }
}
