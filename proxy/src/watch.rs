//! The config file watcher: reloads when `config.toml` changes on disk.
//!
//! It watches the file's directory rather than the file, because most ways of saving replace
//! the file's inode (an editor's write-then-rename, `sed -i`, delete-then-recreate) and an
//! inode watch would go silent after the first save. Events for other names are ignored.
//! A file reached through links (a Kubernetes ConfigMap) is watched along its whole chain
//! (`links`): the directory holding the link, the links, and where they lead, resolved again
//! after every event; the text's hash makes a swap that several events announce apply once.
//!
//! A burst of events (truncate, write, write, close) is collapsed by waiting until the
//! directory has been quiet for `DEBOUNCE`. Text that hashes the same as the running config is
//! skipped. Text that fails to parse is given one more `DEBOUNCE` to be completed by a slow
//! writer before the failure is recorded. A deleted file leaves the running config serving
//! and is picked up again when it returns.

pub mod certificates;
pub mod links;

use crate::reload::{self, Outcome, Trigger};
use crate::state::Shared;
use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher};
use scalelab_common::sync::{read, write};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long the directory must stay quiet before the file is read.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// A `notify` watcher (nothing watched yet) whose events that pass `relevant` arrive as `()`
/// on the returned channel. `None`, logged, when the platform gives no watcher: SIGHUP and the
/// admin API still reload then. `what` names the watcher in its log lines.
fn event_channel(
    what: &'static str,
    relevant: impl Fn(&notify::Event) -> bool + Send + 'static,
) -> Option<(notify::RecommendedWatcher, mpsc::UnboundedReceiver<()>)> {
    let (sender, events) = mpsc::unbounded_channel::<()>();
    let handler = move |result: notify::Result<notify::Event>| match result {
        Ok(event) if relevant(&event) => {
            // The receiver is gone only when the watcher is replaced or during shutdown, when
            // nothing needs the event.
            let _ = sender.send(());
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, watcher = what, "file watcher error"),
    };
    match notify::recommended_watcher(handler) {
        Ok(watcher) => Some((watcher, events)),
        Err(error) => {
            tracing::warn!(%error, watcher = what, "cannot create a file watcher; reload with SIGHUP or the admin API");
            None
        }
    }
}

/// Watches the config file until `shutdown` fires. Logs and returns if the watch cannot be
/// set up: SIGHUP and the admin API still reload in that case.
pub async fn run(shared: Shared, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let path = canonical(shared.config_path());
    // The paths whose events matter (`links::chain`): shared with the event filter, which
    // runs on notify's thread, and replaced whenever the links point elsewhere.
    let watched = Arc::new(RwLock::new(links::chain(&path)));
    let filter = watched.clone();
    let Some((mut watcher, mut events)) = event_channel("config", move |event| {
        changes_content(event) && touches(event, &read(&filter))
    }) else {
        return;
    };
    let mut directories = BTreeSet::new();
    follow(&mut watcher, &mut directories, &read(&watched));
    if directories.is_empty() {
        tracing::warn!(path = %path.display(), "cannot watch the config file's directory; reload with SIGHUP or the admin API");
        return;
    }
    tracing::info!(path = %path.display(), "watching the config file for changes");

    // The hash of the last text this watcher had rejected, so that re-saving the same broken
    // file (or an unrelated event on it) does not fill the journal with copies of one error.
    let mut last_rejected = String::new();
    loop {
        tokio::select! {
            event = events.recv() => if event.is_none() { return },
            _ = shutdown.changed() => return,
        }
        if !settle(&mut events, &mut shutdown).await {
            return;
        }
        // A swapped link moves the final file: watch where it is now before reading it, so an
        // edit made right after the swap is seen too.
        let now = links::chain(&path);
        if now != *read(&watched) {
            follow(&mut watcher, &mut directories, &now);
            *write(&watched) = now;
        }
        if !reload_from_disk(
            &shared,
            &path,
            &mut last_rejected,
            &mut events,
            &mut shutdown,
        )
        .await
        {
            return;
        }
    }
}

/// Makes `watcher` watch exactly the directories of `paths` (`directories` is what it watches
/// now). A directory that is gone (the old target of a swapped link) cannot be unwatched and
/// need not be; one that cannot be watched is logged and left out.
fn follow(
    watcher: &mut notify::RecommendedWatcher,
    directories: &mut BTreeSet<PathBuf>,
    paths: &[PathBuf],
) {
    let wanted = links::directories(paths);
    for gone in directories.difference(&wanted) {
        let _ = watcher.unwatch(gone);
    }
    let mut watching = BTreeSet::new();
    for directory in wanted {
        if directories.contains(&directory) {
            watching.insert(directory);
            continue;
        }
        match watcher.watch(&directory, RecursiveMode::NonRecursive) {
            Ok(()) => {
                watching.insert(directory);
            }
            Err(error) => {
                tracing::warn!(%error, directory = %directory.display(), "cannot watch a directory of the config file's links");
            }
        }
    }
    *directories = watching;
}

/// Whether `event` names one of `paths`.
fn touches(event: &notify::Event, paths: &[PathBuf]) -> bool {
    event
        .paths
        .iter()
        .any(|path| paths.contains(&canonical(path)))
}

/// Reads the settled file and hands it to the single reload entry point, retrying a parse
/// failure once. Returns false when shutdown started.
async fn reload_from_disk(
    shared: &Shared,
    path: &Path,
    last_rejected: &mut String,
    events: &mut mpsc::UnboundedReceiver<()>,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    let mut retried = false;
    loop {
        let text = match tokio::fs::read_to_string(path).await {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(
                    path = %path.display(),
                    "config file is gone; keeping the running config until it returns"
                );
                return true;
            }
            Err(source) => {
                let read = Err(crate::config::ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
                apply(shared, read).await;
                return true;
            }
        };
        let sha = reload::sha256_hex(&text);
        if sha == shared.loaded().sha256 || sha == *last_rejected {
            return true;
        }
        if !retried && crate::config::parse(path, &text).is_err() {
            // Possibly a writer that paused mid-file for longer than the debounce: give it
            // one more quiet period before recording the failure.
            retried = true;
            tokio::select! {
                _ = tokio::time::sleep(DEBOUNCE) => {}
                _ = shutdown.changed() => return false,
            }
            if !settle(events, shutdown).await {
                return false;
            }
            continue;
        }
        if apply(shared, Ok(text)).await == Some(Outcome::Rejected) {
            *last_rejected = sha;
        }
        return true;
    }
}

async fn apply(
    shared: &Shared,
    read: Result<String, crate::config::ConfigError>,
) -> Option<Outcome> {
    let shared = shared.clone();
    // Building a snapshot takes locks and may take a moment for big files; keep it off the
    // async workers.
    match tokio::task::spawn_blocking(move || reload::apply(&shared, Trigger::File, read)).await {
        Ok(record) => Some(record.result),
        Err(error) => {
            tracing::error!(%error, "config reload task failed");
            None
        }
    }
}

/// Waits until no event has arrived for `DEBOUNCE`. Returns false when shutdown started.
async fn settle(
    events: &mut mpsc::UnboundedReceiver<()>,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    loop {
        tokio::select! {
            event = tokio::time::timeout(DEBOUNCE, events.recv()) => match event {
                Err(_) => return true,
                Ok(Some(())) => {}
                Ok(None) => return false,
            },
            _ = shutdown.changed() => return false,
        }
    }
}

/// Whether an event may have changed a file's content (reads, our own included, do not).
fn changes_content(event: &notify::Event) -> bool {
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// The config path made absolute, so that a relative `--config config.toml` still has a
/// directory to watch.
fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match std::env::current_dir() {
        Ok(directory) => directory.join(path),
        Err(_) => path.to_path_buf(),
    }
}

/// `path` absolute with its directory resolved (the file itself may be a link, mid-rename or
/// gone), as notify reports the paths in a watched canonical directory.
fn canonical(path: &Path) -> PathBuf {
    let path = absolute(path);
    match (path.parent(), path.file_name()) {
        (Some(directory), Some(name)) => std::fs::canonicalize(directory)
            .map(|directory| directory.join(name))
            .unwrap_or(path),
        _ => path,
    }
}
