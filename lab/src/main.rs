//! `scalelab`: the command line; the work is in the `scalelab_lab` library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use scalelab_lab::cli::{BenchArgs, CheckArgs, Cli, Command, TokenArgs, TraceArgs, UpArgs};
use scalelab_lab::labfile::LabFile;
use scalelab_lab::plan::{self, Stage, BINARIES};
use scalelab_lab::scenario::{self, Scenario};
use scalelab_lab::supervise::{self, Supervisor, UpError, STOP_GRACE};
use scalelab_lab::{fleet, lesson, observe, report, token, traces};

/// The lifetime of the token `up` prints: a working day and then some.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up(args),
        Command::Token(args) => print_token(&args),
        Command::Check(args) => check(&args),
        Command::Bench(args) => run_bench(&args),
        Command::Trace(args) => show_trace(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("scalelab: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The directory of the sibling binaries: `--bin-dir`, else where this executable lives (`target/release` after
/// `cargo build --release --workspace --bins`).
fn bin_dir(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_owned());
    }
    let exe = std::env::current_exe().context("locating the scalelab executable")?;
    exe.parent()
        .map(Path::to_owned)
        .context("the scalelab executable has no parent directory")
}

fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let mut file = LabFile::load(&args.config)?;
    if args.fleet {
        fleet::widen(&mut file.lab);
    }
    fleet::pick_redis_port(&mut file).context("choosing a port for the fleet's redis-server")?;
    let bin_dir = bin_dir(args.bin_dir.as_deref())?;
    let missing: Vec<&str> = BINARIES
        .iter()
        .copied()
        .filter(|name| !bin_dir.join(name).is_file())
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} not found in {}; build them with `cargo build --release --workspace --bins` or pass --bin-dir",
            missing.join(", "),
            bin_dir.display()
        );
    }
    // Checked before anything starts, so a broken [auth] is one clear error instead of three dead gateways.
    let dev_token = if file.has_auth {
        Some(token::mint(&file.path, "dev", DEV_TOKEN_TTL)?)
    } else {
        None
    };
    std::fs::create_dir_all(&file.data_dir)
        .with_context(|| format!("creating the data dir {}", file.data_dir.display()))?;
    if file.tls_listen.is_some() {
        let certs = scalelab_lab::devca::DevCertificates::under(&file.data_dir);
        if certs.ensure()? {
            println!("created a development CA: {}", certs.ca.display());
        }
    }
    let timeout = args.ready_timeout.unwrap_or(file.ready_timeout);
    // Bound before the plan, so that every child is given its address.
    let receiver = traces::receiver::prepare(args.observe, &mut file)?;
    let mut specs = plan::plan(&file, &bin_dir);
    let redis = if fleet::starts_redis(&file) {
        let binary = plan::find_in_path(std::env::var_os("PATH").as_deref(), "redis-server")
            .context("a fleet runs redis-server, which is not in PATH; install it with `bash scripts/install-deps.sh --fleet` (or `make deps`) or set [lab] redis_url")?;
        let dir = fleet::redis_dir(&file);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating Redis's data dir {}", dir.display()))?;
        Some(fleet::redis_child(&file, &binary))
    } else {
        None
    };
    fleet::extend(&mut specs, &file, redis);
    let dns = scalelab_lab::dns::for_up(args.dns, &file, &mut specs)?;
    // A new token per start, kept in the data dir for the lab's own admin calls.
    let admin_token = scalelab_lab::admin_token::generate();
    scalelab_lab::admin_token::save(&file.data_dir, &admin_token).with_context(|| {
        format!(
            "writing {}",
            scalelab_lab::admin_token::path(&file.data_dir).display()
        )
    })?;
    plan::pass_admin_token(&mut specs, &admin_token);
    if let Some(receiver) = &receiver {
        traces::point_proxies(&mut specs, receiver.url());
    }
    let receiver_banner = receiver
        .as_ref()
        .map(|r| traces::banner(r.url(), r.bounds()));
    // Prepared before anything starts, so a missing `prometheus` is one clear error rather than a half-started lab.
    let prometheus = if args.observe {
        let binary = observe::find_binary(std::env::var_os("PATH").as_deref())?;
        let port = observe::pick_port(args.prometheus_port)?;
        let home = observe::home(&file);
        let config =
            observe::write_jobs(&scalelab_lab::dns::scrape_jobs(&file, dns.as_ref()), &home)?;
        specs.push(observe::child(&binary, &config, &home, port));
        Some(observe::base_url(port))
    } else {
        None
    };
    let colour = supervise::colour_wanted(args.no_color);
    runtime()?.block_on(async move {
        // Serving before any child starts, so their first spans find it; stopped when `up` ends.
        let _receiver = receiver
            .map(traces::receiver::Prepared::serve)
            .transpose()?;
        let mut supervisor = Supervisor::new(specs, args.restart, colour, &file.data_dir)?;
        supervisor.claim()?;
        let started = async {
            supervisor.start_stage(Stage::Store, timeout).await?;
            supervisor.start_stage(Stage::Backend, timeout).await?;
            supervisor.start_stage(Stage::Proxy, timeout).await?;
            if let Some(base) = &prometheus {
                supervisor.start_stage(Stage::Observe, timeout).await?;
                let jobs = scalelab_lab::dns::scrape_jobs(&file, dns.as_ref());
                let url = format!("{base}/api/v1/targets?state=active");
                supervisor
                    .wait_until(Stage::Observe, timeout, |client| {
                        targets_up(client, url.clone(), &jobs)
                    })
                    .await?;
                supervisor.say("Prometheus sees every target up");
            }
            Ok::<(), UpError>(())
        }
        .await;
        if let Err(error) = started {
            supervisor.shutdown(STOP_GRACE).await;
            return match error {
                UpError::Interrupted(_) => Ok(ExitCode::SUCCESS),
                error => Err(error.into()),
            };
        }
        // Unprefixed, so the export line, the curl commands and the links can be copied as they are.
        let mut lines = banner(
            &file,
            dns.as_ref(),
            dev_token.as_deref(),
            &admin_token,
            &supervisor.pids(),
        );
        lines.extend(fleet::banner(&file));
        if let Some(dns) = &dns {
            lines.extend(scalelab_lab::dns::banner(dns));
        }
        if let Some(base) = &prometheus {
            lines.extend(observe::banner(base));
        }
        lines.extend(receiver_banner.into_iter().flatten());
        lines.push("Ctrl-C stops everything.".to_owned());
        println!("\n{}\n", lines.join("\n"));
        let outcome = supervisor.run().await;
        if let Ok(signal) = &outcome {
            supervisor.say(&format!("{signal} received"));
        }
        supervisor.shutdown(STOP_GRACE).await;
        if dns.is_some() {
            scalelab_lab::dns::DnsLab::forget(&file.data_dir);
        }
        match outcome {
            Ok(_) => Ok(ExitCode::SUCCESS),
            Err(error) => Err(error.into()),
        }
    })
}

/// What `up` prints once everything answers: where things are, a token, and the seed's commands, working.
fn banner(
    file: &LabFile,
    dns: Option<&scalelab_lab::dns::DnsLab>,
    token: Option<&str>,
    admin_token: &str,
    pids: &[(String, u32)],
) -> Vec<String> {
    let proxy = &file.proxy_url;
    let lab = &file.lab;
    let mut lines = vec![
        "scalelab is up".to_owned(),
        format!("  proxy        {proxy}"),
        format!(
            "  proxy admin  {}  (/stats, /admin/upstreams)",
            file.admin_url
        ),
    ];
    for url in scalelab_lab::dns::gateway_urls(file, dns) {
        lines.push(format!("  gateway      {url}"));
    }
    lines.push(format!(
        "  microservice {}",
        file.backend_url(lab.microservice)
    ));
    lines.push(format!("  database     {}", file.backend_url(lab.database)));
    lines.push(format!("  worker       {}", file.backend_url(lab.worker)));
    let pids: Vec<String> = pids
        .iter()
        .map(|(name, pid)| format!("{name}={pid}"))
        .collect();
    lines.push(format!("  pids         {}", pids.join(" ")));
    if let Some(tls) = file.tls_listen {
        let ca = scalelab_lab::devca::DevCertificates::under(&file.data_dir).ca;
        lines.push(format!(
            "  https        curl --cacert {} https://localhost:{}/health",
            ca.display(),
            tls.port()
        ));
    }
    let auth = match token {
        Some(token) => {
            lines.push(String::new());
            lines.push("a dev token (24h; `scalelab token --help` for others):".to_owned());
            lines.push(format!("  export TOKEN={token}"));
            r#" -H "Authorization: Bearer $TOKEN""#
        }
        None => {
            lines.push(String::new());
            lines.push(format!(
                "no dev token: {} has no [auth] table, so the gateways answer 503 on protected routes",
                file.path.display()
            ));
            ""
        }
    };
    lines.push(String::new());
    lines.push(format!(
        "the admin API's token (new each start; also in {}):",
        scalelab_lab::admin_token::path(&file.data_dir).display()
    ));
    lines.push(format!("  export ADMIN_TOKEN={admin_token}"));
    lines.push(String::new());
    lines.push("try:".to_owned());
    lines.push(format!("  curl -i{auth} {proxy}/data"));
    lines.push(format!(
        "  curl -i{auth} '{proxy}/data?strategy=weighted&bypass_cache=true'"
    ));
    lines.push(format!("  curl -i{auth} '{proxy}/data/complex?id=1'"));
    lines.push(format!(
        "  curl -i{auth} -H 'Content-Type: application/json' -d '{{\"task_type\":\"cpu_intensive\",\"duration\":3}}' '{proxy}/longtask?priority=high'"
    ));
    lines.push(format!("  curl -s {}/stats", file.backend_url(lab.worker)));
    lines.push(format!(
        r#"  curl -s -H "Authorization: Bearer $ADMIN_TOKEN" {}/stats"#,
        file.admin_url
    ));
    lines
}

/// Asks Prometheus for its targets: `Ok` once every target of `jobs` is up, else what is missing.
async fn targets_up(
    client: reqwest::Client,
    url: String,
    jobs: &[observe::Job],
) -> Result<(), String> {
    let answer = client
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|error| format!("Prometheus does not answer {url}: {error}"))?
        .json::<serde_json::Value>()
        .await
        .map_err(|error| format!("Prometheus's answer to {url} is not JSON: {error}"))?;
    observe::targets_pending(&answer, jobs)
}

/// `scalelab trace <id>`: the waterfall's file, from the receiver `up --observe` runs for this config.
fn show_trace(args: &TraceArgs) -> anyhow::Result<ExitCode> {
    let id = traces::client::check_id(&args.trace_id)?;
    let base = match &args.receiver {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => traces::client::receiver_url(&LabFile::load(&args.config)?.data_dir)?,
    };
    let path = runtime()?.block_on(traces::client::write_waterfall(&base, &id, &args.out))?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

fn print_token(args: &TokenArgs) -> anyhow::Result<ExitCode> {
    let token = token::mint(&args.config, &args.sub, args.ttl)?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    // A file that is not TOML fails every table's check with the same parse error; it is said once, here, rather
    // than by the proxy, [lab] and [auth] in turn.
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    if let Err(error) = text.parse::<toml::Table>() {
        eprintln!(
            "{} is not valid TOML, so none of its tables was checked:\n{error}",
            args.config.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let proxy = bin_dir(args.bin_dir.as_deref())?.join("scalelab-proxy");
    // The proxy's own check is the authority on its tables; running its binary keeps one implementation of it.
    let status = std::process::Command::new(&proxy)
        .arg("--check")
        .arg("--config")
        .arg(&args.config)
        .status()
        .with_context(|| format!("running {}", proxy.display()))?;
    let mut ok = status.success();
    match LabFile::load(&args.config) {
        Ok(file) => println!(
            "[lab]: OK ({} gateways, data in {})",
            file.lab.gateways.len(),
            file.data_dir.display()
        ),
        Err(error) => {
            ok = false;
            eprintln!("[lab]: {error}");
        }
    }
    match token::settings(&args.config) {
        Ok(Some(settings)) => println!(
            "[auth]: OK ({:?}; {})",
            settings.algorithms(),
            if settings.can_mint() {
                "`scalelab token` can sign"
            } else {
                "no HMAC secret, so `scalelab token` cannot sign"
            }
        ),
        Ok(None) => {
            println!("[auth]: none (no route is protected; the gateways answer 503 on theirs)")
        }
        Err(error) => {
            ok = false;
            eprintln!("[auth]: {error}");
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_bench(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(hint) = scalelab_lab::cli::concurrency_given_as_config(&args.config) {
        bail!(hint);
    }
    let file = LabFile::load(&args.config)?;
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| format!("{}/data", file.proxy_url));
    let scenarios: Vec<Scenario> = if args.all {
        scenario::ALL.to_vec()
    } else {
        vec![args.scenario]
    };
    // Checked before anything is sent, so a contradicting option fails at once.
    for &scenario in &scenarios {
        scenario::check_options(
            scenario,
            args.url.is_some(),
            args.strategy.as_deref(),
            args.bypass_cache,
        )?;
        if !scenario.sets_a_condition() {
            scenario::expand(scenario, &url, args.strategy.as_deref(), args.bypass_cache)?;
        }
    }
    let token = match (&args.token, args.no_token) {
        (Some(token), _) => Some(token.clone()),
        (None, true) => None,
        (None, false) => match token::settings(&args.config)? {
            Some(settings) => Some(scalelab_auth::mint(
                &settings,
                "bench",
                Duration::from_secs(3600),
            )?),
            None => None,
        },
    };
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .context("building the HTTP client")?;
    let lab = lesson::Lab {
        knobs: lesson::Knobs {
            http,
            admin_token: scalelab_lab::admin_token::load(&file.data_dir),
            file,
        },
        token,
        requests: args.requests,
        concurrency: args.concurrency,
        timeout: args.timeout,
        progress: !args.quiet,
        url,
        strategy: args.strategy.clone(),
        bypass_cache: args.bypass_cache,
        slow_ms: args.slow_ms,
    };
    let runtime = runtime()?;
    // Ctrl-C drops the running scenario; its `Restore` guard puts the lab back as it is dropped.
    let outcome = runtime.block_on(async {
        tokio::select! {
            sections = run_scenarios(&scenarios, &lab) => Some(sections),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    let Some(sections) = outcome else {
        eprintln!("scalelab: interrupted");
        return Ok(ExitCode::from(130));
    };
    let sections = sections?;
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut files = Vec::new();
    for section in &sections {
        let json = serde_json::to_string_pretty(section).context("encoding the result")?;
        files.push((format!("{}.json", section.report.scenario), json + "\n"));
        for figure in &section.figures {
            files.push((figure.file.clone(), figure.svg.clone()));
        }
    }
    let title = match &sections[..] {
        [one] => format!("scalelab bench: {}", one.report.scenario),
        _ => "scalelab bench: every scenario".to_owned(),
    };
    files.push(("report.html".to_owned(), report::render(&title, &sections)));
    for (file, contents) in files {
        let path = out.join(file);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        println!("written: {}", path.display());
    }
    if args.open {
        let report =
            std::path::absolute(out.join("report.html")).context("resolving the report's path")?;
        println!("{}", report.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the scenarios one after the other; each restores the lab before the next starts. A section gets the
/// slowest trace of its scenario when `up --observe` runs the lab's trace receiver.
async fn run_scenarios(
    scenarios: &[Scenario],
    lab: &lesson::Lab,
) -> Result<Vec<lesson::Section>, lesson::LessonError> {
    let mut sections = Vec::new();
    let data_dir = &lab.knobs.file.data_dir;
    for &scenario in scenarios {
        let since = traces::client::now_ns();
        let mut section = lesson::run(scenario, lab).await?;
        let until = traces::client::now_ns();
        traces::client::add_slowest(&mut section, data_dir, since, until).await;
        sections.push(section);
    }
    Ok(sections)
}
