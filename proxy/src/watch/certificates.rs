//! The certificate watcher: reloads when a certificate or key file of `[[tls.certificates]]`
//! changes on disk, so a rotated pair serves the next handshake without a restart.
//!
//! Like the config watcher it watches directories, not files (a rotation writes a new file
//! and renames it over the old one), waits for `DEBOUNCE` of quiet, and then takes the one
//! reload path with `Trigger::Certificate`: the config is parsed again, which reads and checks
//! every pair, so a bad or mismatched pair is rejected whole, reported in the journal with its
//! file and reason, and the running certificates keep serving. A pair replaced file by file is
//! mismatched between its two renames, so a failing read gets one more quiet period first.
//! The set of watched files follows the running config and the links that lead to the files
//! (a Kubernetes Secret is swapped by renaming a link): it is compared after every reload and
//! every second.

use super::{settle, DEBOUNCE};
use crate::reload::{self, Trigger};
use crate::state::Shared;
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the watcher looks whether a reload changed which files it should watch.
const FOLLOW_CONFIG: Duration = Duration::from_secs(1);

/// Watches the running config's certificate and key files until `shutdown` fires.
pub async fn run(shared: Shared, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let files = watched_files(&shared);
        if files.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_CONFIG) => continue,
                _ = shutdown.changed() => return,
            }
        }
        let wanted = files.clone();
        let Some((mut watcher, mut events)) = super::event_channel("certificates", move |event| {
            super::changes_content(event) && touches(event, &wanted)
        }) else {
            return;
        };
        let directories: BTreeSet<&Path> = files.iter().filter_map(|f| f.parent()).collect();
        for directory in directories {
            if let Err(error) = watcher.watch(directory, RecursiveMode::NonRecursive) {
                tracing::warn!(%error, directory = %directory.display(), "cannot watch a certificate directory");
            }
        }
        tracing::info!(
            files = files.len(),
            "watching certificate files for changes"
        );
        loop {
            tokio::select! {
                event = events.recv() => if event.is_none() { return },
                _ = tokio::time::sleep(FOLLOW_CONFIG) => {
                    if watched_files(&shared) != files { break }
                    continue;
                }
                _ = shutdown.changed() => return,
            }
            if !settle(&mut events, &mut shutdown).await {
                return;
            }
            if crate::config::load(shared.config_path()).is_err() {
                tokio::select! {
                    _ = tokio::time::sleep(DEBOUNCE) => {}
                    _ = shutdown.changed() => return,
                }
                if !settle(&mut events, &mut shutdown).await {
                    return;
                }
            }
            let target = shared.clone();
            let applied =
                tokio::task::spawn_blocking(move || reload::reload(&target, Trigger::Certificate))
                    .await;
            if let Err(error) = applied {
                tracing::error!(%error, "certificate reload task failed");
            }
            if watched_files(&shared) != files {
                break;
            }
        }
    }
}

/// The running config's certificate and key files and every link on the way to them
/// (`links::chain`: a Kubernetes Secret is a chain of links), absolute with canonical
/// directories so they compare equal to the paths notify reports.
fn watched_files(shared: &Shared) -> BTreeSet<PathBuf> {
    let snapshot = shared.snapshot();
    // The access gates' files (IP lists, htpasswd) are reloaded the same way (issue 25).
    snapshot
        .config
        .tls()
        .iter()
        .flat_map(|tls| &tls.certificates)
        .flat_map(|certificate| [certificate.cert.as_path(), certificate.key.as_path()])
        .chain(snapshot.config.access_files())
        .flat_map(|path| super::links::chain(&super::canonical(path)))
        .collect()
}

fn touches(event: &notify::Event, files: &BTreeSet<PathBuf>) -> bool {
    event
        .paths
        .iter()
        .any(|path| files.contains(&super::canonical(path)))
}
