//! The background side: `run` follows the running config and keeps one task per DNS source
//! (`follow`), each resolving on its own schedule and applying changed answers; `first_round`
//! resolves every source once before the proxy listens. Nothing here is on the request path:
//! a slow or dead name server delays only its own task.

use super::answer_change;
use super::resolve::{self, Outcome};
use crate::config::dns::DnsSettings;
use crate::config::Config;
use crate::discovery::{expand, Found, Source, Table};
use crate::state::Shared;
use hickory_resolver::TokioResolver;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// How often `run` looks at the running config for added or removed sources.
const FOLLOW_CONFIG: Duration = Duration::from_millis(500);

/// The shortest wait between two resolutions of a source, whatever the settings say.
const FLOOR: Duration = Duration::from_millis(100);

/// The sources of `config`, each with its group and own refresh (SRV's `refresh`).
pub fn sources(config: &Config) -> BTreeMap<(String, Source), Option<Duration>> {
    config
        .upstreams()
        .values()
        .flat_map(|upstream| {
            let own = upstream.dns.srv.as_ref().and_then(|srv| srv.refresh);
            expand::sources(upstream).into_iter().map(move |source| {
                let refresh = matches!(source, Source::Srv { .. })
                    .then_some(own)
                    .flatten();
                ((upstream.name.clone(), source), refresh)
            })
        })
        .collect()
}

/// The tasks of the sources being followed; dropping it stops them all (so a restarted `run`
/// never leaves a second task per source behind).
#[derive(Default)]
struct Followers {
    tasks: BTreeMap<(String, Source), (AbortHandle, Option<Duration>)>,
}

impl Drop for Followers {
    fn drop(&mut self) {
        for (handle, _) in self.tasks.values() {
            handle.abort();
        }
    }
}

/// Follows the running config until shutdown: a task per source, restarted when `[dns]` or
/// the source's refresh changes, stopped when a reload removes the source.
pub async fn run(shared: Shared, mut shutdown: watch::Receiver<bool>) {
    let mut followers = Followers::default();
    let mut settings: Option<DnsSettings> = None;
    let mut resolver: Option<Arc<TokioResolver>> = None;
    loop {
        let snapshot = shared.snapshot();
        let config = &snapshot.config;
        let wanted = sources(config);
        shared
            .registry()
            .discovered
            .retain(|group, source| wanted.contains_key(&(group.to_string(), source.clone())));
        if settings.as_ref() != Some(config.dns()) {
            std::mem::take(&mut followers);
            settings = Some(config.dns().clone());
            resolver = None;
        }
        // Built with the first source (a config may gain its first name by a reload), and
        // again after `[dns]` changed.
        if resolver.is_none() && !wanted.is_empty() {
            resolver = match resolve::resolver(config.dns()) {
                Ok(built) => Some(Arc::new(built)),
                Err(error) => {
                    tracing::error!(%error, "cannot build the DNS resolver; names are not re-resolved");
                    None
                }
            };
        }
        followers.tasks.retain(|key, (handle, refresh)| {
            let keep = wanted.get(key) == Some(refresh);
            if !keep {
                handle.abort();
            }
            keep
        });
        if let (Some(resolver), Some(dns)) = (&resolver, &settings) {
            for (key, refresh) in &wanted {
                if followers.tasks.contains_key(key) {
                    continue;
                }
                let task = tokio::spawn(follow(
                    shared.clone(),
                    resolver.clone(),
                    dns.clone(),
                    key.clone(),
                    *refresh,
                ));
                followers
                    .tasks
                    .insert(key.clone(), (task.abort_handle(), *refresh));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_CONFIG) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Resolves one source forever, each time after the wait the previous answer set.
async fn follow(
    shared: Shared,
    resolver: Arc<TokioResolver>,
    dns: DnsSettings,
    (group, source): (String, Source),
    refresh: Option<Duration>,
) {
    loop {
        let outcome = resolve::resolve(&resolver, &source, dns.timeout).await;
        let (wait, change) = record(
            &shared.registry().discovered,
            &dns,
            &group,
            &source,
            refresh,
            &outcome,
        );
        if let Some(servers) = change {
            let (shared, group, source) = (shared.clone(), group.clone(), source.clone());
            // The reload lock and the first checks block: off the async threads.
            let _ = tokio::task::spawn_blocking(move || {
                answer_change::apply(&shared, &group, &source, servers)
            })
            .await;
        }
        tokio::time::sleep(wait.max(FLOOR)).await;
    }
}

/// Records `outcome` in the table and decides: how long until the next resolution, and the new
/// set to apply, if any. A failure keeps the last good set; NXDOMAIN or an empty answer keeps
/// it for `max_stale`, then empties it.
fn record(
    table: &Table,
    dns: &DnsSettings,
    group: &str,
    source: &Source,
    refresh: Option<Duration>,
    outcome: &Outcome,
) -> (Duration, Option<Vec<Found>>) {
    table.count(source.name(), outcome.label());
    let now = Instant::now();
    table.update(group, source, |entry| {
        let first_trouble = entry.last_result != outcome.label() && outcome.label() != "ok";
        entry.resolutions += 1;
        entry.last_result = outcome.label();
        match outcome {
            Outcome::Found(servers, ttl) => {
                entry.empty_since = None;
                entry.last_detail.clear();
                let change = (*servers != entry.servers).then(|| servers.clone());
                (dns.next_refresh(refresh, *ttl), change)
            }
            Outcome::Empty(detail) => {
                let since = *entry.empty_since.get_or_insert(now);
                let stale = now.duration_since(since);
                let next = dns.next_refresh(refresh, None);
                entry.last_detail = format!("{detail} for {}", humantime::format_duration(round(stale)));
                if first_trouble {
                    tracing::warn!(upstream = group, name = source.name(), %detail, keep_for = %humantime::format_duration(dns.max_stale), "DNS answer empty; keeping the last good servers");
                }
                if stale >= dns.max_stale {
                    let change = (!entry.servers.is_empty()).then(Vec::new);
                    (next, change)
                } else {
                    (next.min(dns.max_stale - stale), None)
                }
            }
            Outcome::Failed(_, detail) => {
                entry.last_detail.clone_from(detail);
                if first_trouble {
                    tracing::warn!(upstream = group, name = source.name(), %detail, "DNS resolution failed; keeping the last good servers");
                }
                (dns.next_refresh(refresh, None), None)
            }
        }
    })
}

fn round(duration: Duration) -> Duration {
    Duration::from_secs(duration.as_secs())
}

/// Resolves every source of `config` once, at the same time, into `table`, with its own
/// resolver on the caller's runtime; each source takes at most `[dns] timeout`. Returns what
/// did not resolve, as `upstreams.GROUP: RECORD NAME: why` lines (for start-up's log and
/// `--check`).
pub async fn first_round(config: &Config, table: &Table) -> Vec<String> {
    let wanted = sources(config);
    if wanted.is_empty() {
        return Vec::new();
    }
    let dns = config.dns();
    let resolver = match resolve::resolver(dns) {
        Ok(resolver) => resolver,
        Err(error) => return vec![format!("[dns]: cannot build the resolver: {error}")],
    };
    let lookups = wanted.keys().map(|(group, source)| {
        let resolver = &resolver;
        async move {
            let outcome = resolve::resolve(resolver, source, dns.timeout).await;
            (group, source, outcome)
        }
    });
    let mut problems = Vec::new();
    for (group, source, outcome) in futures::future::join_all(lookups).await {
        let refresh = wanted
            .get(&(group.clone(), source.clone()))
            .copied()
            .flatten();
        let (_, change) = record(table, dns, group, source, refresh, &outcome);
        if let Some(servers) = change {
            table.update(group, source, |entry| entry.servers = servers);
        }
        match &outcome {
            Outcome::Found(..) => {}
            Outcome::Empty(detail) | Outcome::Failed(_, detail) => problems.push(format!(
                "upstreams.{group}: {} {} does not resolve ({detail}); the group has no server from it until it does",
                source.record(),
                source.name()
            )),
        }
    }
    problems
}

/// `--check`'s look at the names: each source resolved once; what does not resolve, as
/// warnings (the config is valid all the same: the proxy starts and keeps trying).
pub fn check_blocking(config: &Config) -> Vec<String> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(first_round(config, &Table::default())),
        Err(error) => vec![format!("cannot start a runtime to resolve names: {error}")],
    }
}
