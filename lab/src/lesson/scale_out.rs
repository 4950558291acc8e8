//! `scale-out`: the fleet changes under load and the proxy follows DNS. On a lab started with
//! `up --dns` (the gateways are the A records of one name, served by the lab's dnsmasq), a
//! fourth gateway is started on the next loopback address and its record published (the hosts
//! file rewritten, dnsmasq sent SIGHUP); once the proxy has it, one of the original records is
//! removed. The run's timeline shows the newcomer's share rising and the removed gateway's
//! falling to nothing, and every request must succeed. Afterwards the original records are
//! published again and the fourth gateway is stopped once the proxy has let it go.

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::verdict::scale_out::{self as figures, Marks};
use super::{Lab, LessonError, Section, Table};
use crate::bench::build_url;
use crate::dns::{DnsLab, GatewayCommand};
use crate::scenario::Scenario;

/// What the lesson says on a lab without its own name server.
pub const NEEDS_DNS: &str =
    "scale-out changes the gateways' DNS records, so it needs the lab's own name server: \
    start the lab with `scalelab up --dns` (`make up ARGS=--dns`)";

/// The load before the fourth gateway's record appears, with it once the proxy gives it its whole
/// weight (after slow start, if the group has one), and after the removal once the proxy has
/// dropped the removed gateway.
const BEFORE: Duration = Duration::from_secs(3);
const WITH_NEWCOMER: Duration = Duration::from_secs(5);
const AFTER: Duration = Duration::from_secs(4);
/// How long the proxy may take to follow a record change (a resolution, then a health check),
/// and a new gateway to answer its health URL; far more than either takes.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(30);
/// Bounds the load if a step hangs beyond its own timeout.
const MAX_RUN: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(100);

/// Refuses the lessons that turn the static lab's knobs on a lab started with `--dns`: its
/// proxy runs the derived config and its gateways moved to other addresses, so their config
/// rewrites and chaos calls would miss (and measure nothing) instead of failing.
///
/// # Errors
/// `scenario` sets a condition other than `scale-out` and the lab's dnsmasq runs.
pub fn refuse_on_dns(scenario: Scenario, lab: &Lab) -> Result<(), LessonError> {
    if scenario.sets_a_condition()
        && scenario != Scenario::ScaleOut
        && DnsLab::load_running(&lab.knobs.file.data_dir).is_some()
    {
        return Err(LessonError::Knob(format!(
            "{} turns the knobs of the lab's static gateways, but this lab runs with --dns (its proxy runs {}); \
             restart it without --dns, or run scale-out",
            scenario.name(),
            crate::dns::proxy_config_path(&lab.knobs.file.path).display()
        )));
    }
    Ok(())
}

/// One server's entry in `/admin/upstreams`, if the proxy lists it.
async fn listed(lab: &Lab, server: &str) -> Result<Option<Value>, LessonError> {
    let upstreams = lab.knobs.admin("/admin/upstreams").await?;
    Ok(upstreams["upstreams"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["servers"].as_array().into_iter().flatten())
        .find(|entry| entry["addr"] == server)
        .cloned())
}

/// Whether a listed server takes requests.
fn available(entry: Option<&Value>) -> bool {
    entry.is_some_and(|entry| entry["available"] == true)
}

/// Whether a listed server has its whole weight (slow start over, or none configured).
fn ramped(entry: Option<&Value>) -> bool {
    entry.is_some_and(|entry| {
        entry["effective_weight"].as_f64().unwrap_or(0.0) >= entry["weight"].as_f64().unwrap_or(1.0)
    })
}

/// Polls until `want` holds for `server`'s entry, or fails with `what` after [`FOLLOW_TIMEOUT`].
async fn until(
    lab: &Lab,
    server: &str,
    what: &str,
    want: impl Fn(Option<&Value>) -> bool,
) -> Result<(), LessonError> {
    let deadline = Instant::now() + FOLLOW_TIMEOUT;
    loop {
        if want(listed(lab, server).await?.as_ref()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LessonError::Knob(format!(
                "the proxy did not {what} {server} within {} s",
                FOLLOW_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Puts the original records back if the lesson is dropped half-way (an error, Ctrl-C); `finish`
/// does it in order instead (records, then the proxy letting go, then the gateway).
struct Records {
    dns: DnsLab,
    armed: bool,
}

impl Drop for Records {
    fn drop(&mut self) {
        if self.armed {
            match self.dns.publish(&self.dns.gateways) {
                Ok(()) => eprintln!("scalelab: the gateways' DNS records were restored"),
                Err(error) => eprintln!("scalelab: restoring the DNS records failed: {error}"),
            }
        }
    }
}

/// Starts one more gateway on `host` (its output in the lab's dns directory) and waits until it
/// answers its health URL. Killed when the handle is dropped.
async fn start_gateway(
    lab: &Lab,
    dns: &DnsLab,
    command: &GatewayCommand,
    host: IpAddr,
) -> Result<tokio::process::Child, LessonError> {
    let log_path = crate::dns::dir(&lab.knobs.file.data_dir).join(format!("gateway-{host}.log"));
    let log = std::fs::File::create(&log_path)
        .map_err(|error| LessonError::Knob(format!("creating {}: {error}", log_path.display())))?;
    let err = log
        .try_clone()
        .map_err(|error| LessonError::Knob(format!("{}: {error}", log_path.display())))?;
    let child = tokio::process::Command::new(&command.binary)
        .args(command.args_on(host))
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| {
            LessonError::Knob(format!("starting {}: {error}", command.binary.display()))
        })?;
    let health = format!("http://{}/health", SocketAddr::new(host, dns.port));
    let deadline = Instant::now() + FOLLOW_TIMEOUT;
    while lab.knobs.get(&health).await.is_err() {
        if Instant::now() >= deadline {
            return Err(LessonError::Knob(format!(
                "the fourth gateway does not answer {health} (its log: {})",
                log_path.display()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(child)
}

/// The steps under load: publish the newcomer, wait for the proxy to take it, hold, remove a
/// record, wait for the proxy to drop it, hold.
async fn steps(
    lab: &Lab,
    dns: &DnsLab,
    added: (IpAddr, &str),
    removed: (IpAddr, &str),
    t0: Instant,
) -> Result<Marks, LessonError> {
    let at = || t0.elapsed().as_secs_f64();
    let fail = |error: crate::dns::DnsError| LessonError::Knob(error.to_string());
    tokio::time::sleep(BEFORE).await;
    let mut records = dns.gateways.clone();
    records.push(added.0);
    let added_at = at();
    dns.publish(&records).map_err(fail)?;
    until(lab, added.1, "list as available", available).await?;
    let joined = at();
    until(lab, added.1, "give its whole weight to", ramped).await?;
    let ramped_at = at();
    tokio::time::sleep(WITH_NEWCOMER).await;
    records.retain(|&ip| ip != removed.0);
    let removed_at = at();
    dns.publish(&records).map_err(fail)?;
    until(lab, removed.1, "let go of", |entry| entry.is_none()).await?;
    let gone = at();
    tokio::time::sleep(AFTER).await;
    Ok(Marks {
        added: added_at,
        joined,
        ramped: ramped_at,
        removed: removed_at,
        gone,
        end: at(),
    })
}

/// `scale-out`.
pub async fn scale_out(lab: &Lab) -> Result<Section, LessonError> {
    let dns = DnsLab::load_running(&lab.knobs.file.data_dir)
        .ok_or_else(|| LessonError::Knob(NEEDS_DNS.to_owned()))?;
    let missing = |what: &str| LessonError::Knob(format!("{}: {what}", NEEDS_DNS));
    let command = dns
        .gateway
        .clone()
        .ok_or_else(|| missing("the lab recorded no gateway command"))?;
    let new_ip = dns
        .next_address()
        .ok_or_else(|| missing("no address is left for a fourth gateway"))?;
    let removed_ip = *dns
        .gateways
        .last()
        .ok_or_else(|| missing("the lab has no gateway"))?;
    let added = SocketAddr::new(new_ip, dns.port).to_string();
    let removed = SocketAddr::new(removed_ip, dns.port).to_string();
    let mut records = Records {
        dns: dns.clone(),
        armed: true,
    };
    let mut gateway = start_gateway(lab, &dns, &command, new_ip).await?;
    let url = build_url(&lab.knobs.proxy("/data"), Some("round_robin"), true)?.to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let name = "round_robin while the records change";
    let t0 = Instant::now();
    let (run, marks) = tokio::join!(
        lab.load(name, &url, |plan| {
            plan.requests = u64::MAX;
            plan.duration = Some(MAX_RUN);
            plan.stop = Some(stop.clone());
        }),
        async {
            let marks = steps(lab, &dns, (new_ip, &added), (removed_ip, &removed), t0).await;
            stop.store(true, Ordering::Relaxed);
            marks
        }
    );
    // Put back in order: the original records, the proxy letting the newcomer go (its requests
    // finish), then the newcomer stopped, so that the restore itself fails no request.
    let restored = async {
        dns.publish(&dns.gateways)
            .map_err(|error| LessonError::Restore(error.to_string()))?;
        records.armed = false;
        until(lab, &added, "let go of", |entry| entry.is_none()).await?;
        gateway
            .kill()
            .await
            .map_err(|error| LessonError::Restore(format!("stopping the fourth gateway: {error}")))
    }
    .await;
    let (run, marks) = (run?, marks?);
    restored?;
    let report = &run.report;
    let measured = figures::measure(
        &report.timeline,
        figures::Change {
            added: &added,
            removed: &removed,
            servers_after_join: dns.gateways.len() + 1,
        },
        marks,
        figures::Load {
            requests: report.requests,
            failed: report.failed(),
            drain_s: report.latency_ms.max / 1000.0,
        },
    );
    let verdict = figures::scale_out(&measured);
    let condition = format!(
        "Round robin loads /data (cache bypassed) on a lab whose gateways are the A records of {name} ({servers}), \
         served by the lab's dnsmasq ({resolver}, answers live 1 s). After {before} s a fourth gateway is started on \
         {added} and its record added (hosts file rewritten, dnsmasq sent SIGHUP); {hold} s after the proxy gives it \
         its whole weight (once it is available and any slow start is over), the record of {removed} is removed, and the load goes on {after} s after the proxy let it \
         go. Afterwards the original records are published again and the fourth gateway is stopped.",
        name = dns.name,
        servers = dns.gateway_urls().join(", "),
        resolver = dns.resolver,
        before = BEFORE.as_secs(),
        hold = WITH_NEWCOMER.as_secs(),
        after = AFTER.as_secs(),
    );
    let steps_table = steps_table(&measured);
    let phases = phase_table(&run.report.timeline, &measured);
    let mut section = Section::new(Scenario::ScaleOut, condition, vec![run], verdict)?;
    section.tables.push(steps_table);
    section.tables.push(phases);
    section.share_figures()?;
    Ok(section)
}

fn steps_table(figures: &figures::ScaleOut) -> Table {
    let marks = figures.marks;
    let row = |step: &str, at: f64| vec![step.to_owned(), format!("{at:.1}")];
    Table {
        title: "Steps (seconds into the run)".to_owned(),
        header: vec!["step".to_owned(), "at".to_owned()],
        rows: vec![
            row(&format!("record of {} added", figures.added), marks.added),
            row(
                &format!("proxy lists {} as available", figures.added),
                marks.joined,
            ),
            row(
                &format!("{} at its whole weight", figures.added),
                marks.ramped,
            ),
            row(
                &format!("record of {} removed", figures.removed),
                marks.removed,
            ),
            row(
                &format!("proxy no longer lists {}", figures.removed),
                marks.gone,
            ),
            row("load stopped", marks.end),
        ],
    }
}

/// Requests per gateway in each phase: before the add, with the newcomer, and after the removal
/// once the slowest request could have finished.
fn phase_table(timeline: &crate::bench::timeline::Timeline, figures: &figures::ScaleOut) -> Table {
    let marks = figures.marks;
    let mut servers: Vec<String> = timeline
        .buckets
        .iter()
        .flat_map(|bucket| bucket.upstreams.keys().cloned())
        .filter(|name| name != "none")
        .collect();
    servers.sort();
    servers.dedup();
    let phases = [
        ("before the add", 0.0, marks.added),
        ("newcomer ramping up", marks.joined, marks.ramped),
        ("with the newcomer", marks.ramped, marks.removed),
        (
            "after the removal",
            marks.gone + figures.drain_s,
            f64::INFINITY,
        ),
    ];
    let rows = phases
        .iter()
        .map(|&(phase, from, to)| {
            let mut row = vec![phase.to_owned()];
            for server in &servers {
                let (mine, all) = figures::counts_between(timeline, server, from, to);
                let share = if all == 0 {
                    0.0
                } else {
                    mine as f64 / all as f64
                };
                row.push(format!("{mine} ({})", super::verdict::pct(share)));
            }
            row
        })
        .collect();
    let mut header = vec!["phase".to_owned()];
    header.extend(servers);
    Table {
        title: "Requests per gateway in each phase (whole timeline buckets only)".to_owned(),
        header,
        rows,
    }
}
