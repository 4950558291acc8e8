//! The public knobs a lesson turns on the running lab (the gateways' chaos API, the worker's `PUT /admin/workers`,
//! the proxy's admin API and its config file) and the `Restore` guard that puts every one of them back: when the
//! lesson ends, when it fails, and when it is dropped half-way because the user pressed Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use super::LessonError;
use crate::labfile::LabFile;

/// How long one call to a knob may take; they all answer at once unless the lab is broken.
const KNOB_TIMEOUT: Duration = Duration::from_secs(10);

/// The running lab as the lessons reach it.
#[derive(Debug, Clone)]
pub struct Knobs {
    pub http: reqwest::Client,
    pub file: LabFile,
    /// The proxy admin API's token (`admin_token::load`), sent on calls to the admin listener
    /// only: the backends' own admin APIs and the proxy listener never see it.
    pub admin_token: Option<String>,
}

/// One thing to put back, recorded before it was first changed.
#[derive(Debug, Clone)]
enum Undo {
    /// `POST` this JSON (the gateway's chaos settings as they were).
    Post { url: String, body: Value },
    /// `PUT` this JSON (the worker's pool as it was).
    Put { url: String, body: Value },
    /// Write the config file's original text back and ask the proxy to reload it (with the
    /// admin token, if the lab has one).
    File {
        path: PathBuf,
        text: String,
        reload: String,
        admin_token: Option<String>,
    },
}

impl Undo {
    fn target(&self) -> String {
        match self {
            Undo::Post { url, .. } | Undo::Put { url, .. } => url.clone(),
            Undo::File { path, .. } => path.display().to_string(),
        }
    }
}

/// Puts the lab back as it was. `finish` does it and reports problems; dropping an unfinished guard (an error, a
/// panic, Ctrl-C) does it too, on a thread of its own so that it works inside or outside an async runtime.
#[derive(Debug)]
pub struct Restore {
    http: reqwest::Client,
    undo: Vec<Undo>,
}

impl Restore {
    pub fn new(http: reqwest::Client) -> Restore {
        Restore {
            http,
            undo: Vec::new(),
        }
    }

    /// Records `undo` unless the same target already has an entry: the first one holds the original state.
    fn remember(&mut self, undo: Undo) {
        if !self
            .undo
            .iter()
            .any(|known| known.target() == undo.target())
        {
            self.undo.push(undo);
        }
    }

    /// Restores everything now.
    ///
    /// # Errors
    /// Something could not be put back; every undo is still tried.
    pub async fn finish(mut self) -> Result<(), LessonError> {
        // The list is cleared only once every undo ran: a Ctrl-C during the restore drops this future, and the
        // guard's drop then runs them all again (each one sets an original value, so twice is harmless).
        let problems = undo_all(&self.http, self.undo.clone()).await;
        self.undo.clear();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LessonError::Restore(problems.join("; ")))
        }
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        let undo = std::mem::take(&mut self.undo);
        if undo.is_empty() {
            return;
        }
        let http = self.http.clone();
        // A runtime cannot be blocked on from inside another, so the undo runs on its own thread and runtime.
        let restored = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => runtime.block_on(undo_all(&http, undo)),
                Err(error) => vec![format!(
                    "cannot start a runtime to restore the lab: {error}"
                )],
            }
        })
        .join();
        match restored {
            Ok(problems) if problems.is_empty() => {
                eprintln!("scalelab: the lab's settings were restored");
            }
            Ok(problems) => {
                eprintln!(
                    "scalelab: restoring the lab failed: {}",
                    problems.join("; ")
                );
            }
            Err(_) => eprintln!("scalelab: restoring the lab panicked"),
        }
    }
}

/// Runs every undo, newest first, and returns what failed.
async fn undo_all(http: &reqwest::Client, undo: Vec<Undo>) -> Vec<String> {
    let mut problems = Vec::new();
    for step in undo.into_iter().rev() {
        let result = match &step {
            Undo::Post { url, body } => send(http, reqwest::Method::POST, url, Some(body), None)
                .await
                .map(drop),
            Undo::Put { url, body } => send(http, reqwest::Method::PUT, url, Some(body), None)
                .await
                .map(drop),
            Undo::File {
                path,
                text,
                reload,
                admin_token,
            } => match std::fs::write(path, text) {
                Ok(()) => send(
                    http,
                    reqwest::Method::POST,
                    reload,
                    None,
                    admin_token.as_deref(),
                )
                .await
                .map(drop),
                Err(error) => Err(LessonError::Knob(format!(
                    "writing {} back: {error}",
                    path.display()
                ))),
            },
        };
        if let Err(error) = result {
            problems.push(format!("{}: {error}", step.target()));
        }
    }
    problems
}

/// Sends one request (with `bearer` as `Authorization: Bearer`, for the proxy's admin API) and returns its JSON
/// answer; a status of 400 or more is an error with the answer's text.
async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
    bearer: Option<&str>,
) -> Result<Value, LessonError> {
    let mut request = http.request(method.clone(), url).timeout(KNOB_TIMEOUT);
    if let Some(body) = body {
        request = request.json(body);
    }
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let fail = |what: String| LessonError::Knob(format!("{method} {url}: {what}"));
    let response = request
        .send()
        .await
        .map_err(|error| fail(error.to_string()))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|error| fail(error.to_string()))?;
    if status.as_u16() >= 400 {
        return Err(fail(format!("{status}: {text}")));
    }
    serde_json::from_str(&text).map_err(|error| fail(format!("not JSON ({error}): {text}")))
}

impl Knobs {
    /// The address of a gateway as the proxy names it in `X-Upstream-Server`.
    pub fn gateway_addr(&self, port: u16) -> String {
        SocketAddr::new(self.file.lab.host, port).to_string()
    }

    /// The proxy URL of `path_and_query`.
    pub fn proxy(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.file.proxy_url)
    }

    /// `GET` on the proxy's admin listener.
    ///
    /// # Errors
    /// The admin API does not answer with JSON.
    pub async fn admin(&self, path: &str) -> Result<Value, LessonError> {
        let url = format!("{}{path}", self.file.admin_url);
        send(
            &self.http,
            reqwest::Method::GET,
            &url,
            None,
            self.admin_token.as_deref(),
        )
        .await
    }

    /// The text of a `GET` on the proxy's admin listener (`/metrics`).
    ///
    /// # Errors
    /// The admin API does not answer.
    pub async fn admin_text(&self, path: &str) -> Result<String, LessonError> {
        let url = format!("{}{path}", self.file.admin_url);
        let fail = |error: reqwest::Error| LessonError::Knob(format!("GET {url}: {error}"));
        let mut request = self.http.get(&url).timeout(KNOB_TIMEOUT);
        // `/metrics` needs the token only with `metrics_auth`, but it never hurts.
        if let Some(token) = &self.admin_token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(fail)?
            .text()
            .await
            .map_err(fail)
    }

    /// `DELETE` on the proxy's admin listener (cache invalidation).
    ///
    /// # Errors
    /// The admin API refuses.
    pub async fn admin_delete(&self, path: &str) -> Result<Value, LessonError> {
        let url = format!("{}{path}", self.file.admin_url);
        send(
            &self.http,
            reqwest::Method::DELETE,
            &url,
            None,
            self.admin_token.as_deref(),
        )
        .await
    }

    /// `POST` a JSON body to any lab URL (tasks to the worker).
    ///
    /// # Errors
    /// The service refuses or does not answer.
    pub async fn post(&self, url: &str, body: &Value) -> Result<Value, LessonError> {
        send(&self.http, reqwest::Method::POST, url, Some(body), None).await
    }

    /// `GET` any lab URL.
    ///
    /// # Errors
    /// The service refuses or does not answer.
    pub async fn get(&self, url: &str) -> Result<Value, LessonError> {
        send(&self.http, reqwest::Method::GET, url, None, None).await
    }

    /// Patches a gateway's chaos settings, remembering the original ones first.
    ///
    /// # Errors
    /// The gateway refuses or does not answer.
    pub async fn chaos(
        &self,
        restore: &mut Restore,
        port: u16,
        patch: Value,
    ) -> Result<Value, LessonError> {
        self.backend_knob(restore, port, "/admin/chaos", |before| before, patch)
            .await
    }

    /// `POST`s `patch` to a backend's live knob at `path`, remembering first what `GET` on it showed, as
    /// `original` turns it into a body the `POST` accepts.
    ///
    /// # Errors
    /// The backend refuses or does not answer.
    pub async fn backend_knob(
        &self,
        restore: &mut Restore,
        port: u16,
        path: &str,
        original: impl FnOnce(Value) -> Value,
        patch: Value,
    ) -> Result<Value, LessonError> {
        let url = format!("{}{path}", self.file.backend_url(port));
        let before = self.get(&url).await?;
        restore.remember(Undo::Post {
            url: url.clone(),
            body: original(before),
        });
        self.post(&url, &patch).await
    }

    /// The worker's pool: `{workers, busy, aging_ms}`.
    ///
    /// # Errors
    /// The worker does not answer.
    pub async fn workers(&self) -> Result<Value, LessonError> {
        self.get(&self.workers_url()).await
    }

    fn workers_url(&self) -> String {
        format!(
            "{}/admin/workers",
            self.file.backend_url(self.file.lab.worker)
        )
    }

    /// Resizes the worker's pool and sets its aging bound, remembering the original ones first.
    ///
    /// # Errors
    /// The worker refuses or does not answer.
    pub async fn set_workers(
        &self,
        restore: &mut Restore,
        workers: usize,
        aging_ms: u64,
    ) -> Result<Value, LessonError> {
        let url = self.workers_url();
        let before = self.workers().await?;
        let original = json!({"workers": before["workers"], "aging_ms": before["aging_ms"]});
        if original["aging_ms"].is_null() {
            return Err(LessonError::Knob(format!(
                "{url} does not report aging_ms; this worker predates the live aging knob, restart the lab"
            )));
        }
        restore.remember(Undo::Put {
            url: url.clone(),
            body: original,
        });
        send(
            &self.http,
            reqwest::Method::PUT,
            &url,
            Some(&json!({"workers": workers, "aging_ms": aging_ms})),
            None,
        )
        .await
    }

    /// Rewrites the proxy's config file with `edit`, remembering the original text first, and applies it with
    /// `POST /admin/reload`; returns the new generation. The file must be the one the running proxy loaded.
    ///
    /// # Errors
    /// The file is not the proxy's, cannot be read or written, or the proxy rejects the edited config.
    pub async fn rewrite_config(
        &self,
        restore: &mut Restore,
        edit: impl FnOnce(&mut toml::Table) -> Result<(), String>,
    ) -> Result<u64, LessonError> {
        let path = &self.file.path;
        let loaded = self.admin("/admin/config").await?;
        let proxy_path = loaded["path"].as_str().unwrap_or_default();
        let same = std::fs::canonicalize(proxy_path).ok() == std::fs::canonicalize(path).ok();
        if !same {
            return Err(LessonError::Knob(format!(
                "the proxy runs {proxy_path}, not {}; pass the lab's config with -C",
                path.display()
            )));
        }
        let original = std::fs::read_to_string(path)
            .map_err(|error| LessonError::Knob(format!("reading {}: {error}", path.display())))?;
        let reload = format!("{}/admin/reload", self.file.admin_url);
        restore.remember(Undo::File {
            path: path.clone(),
            text: original.clone(),
            reload: reload.clone(),
            admin_token: self.admin_token.clone(),
        });
        let current = std::fs::read_to_string(path)
            .map_err(|error| LessonError::Knob(format!("reading {}: {error}", path.display())))?;
        let mut table: toml::Table = current.parse().map_err(|error| {
            LessonError::Knob(format!("{} is not TOML: {error}", path.display()))
        })?;
        edit(&mut table).map_err(LessonError::Knob)?;
        let text = toml::to_string(&table)
            .map_err(|error| LessonError::Knob(format!("cannot write the config: {error}")))?;
        std::fs::write(path, text)
            .map_err(|error| LessonError::Knob(format!("writing {}: {error}", path.display())))?;
        let answer = send(
            &self.http,
            reqwest::Method::POST,
            &reload,
            None,
            self.admin_token.as_deref(),
        )
        .await?;
        Ok(answer["generation"].as_u64().unwrap_or(0))
    }
}

/// The group of `/admin/upstreams` that holds `server`.
pub fn group_of<'a>(upstreams: &'a Value, server: &str) -> Option<&'a Value> {
    upstreams["upstreams"].as_array()?.iter().find(|group| {
        group["servers"]
            .as_array()
            .is_some_and(|servers| servers.iter().any(|s| s["addr"] == server))
    })
}

/// The table at `path` (dotted keys) inside `table`, for config edits.
///
/// # Errors
/// A key is missing or not a table.
pub fn table_at<'a>(table: &'a mut toml::Table, path: &str) -> Result<&'a mut toml::Table, String> {
    let mut current = table;
    for key in path.split('.') {
        current = current
            .get_mut(key)
            .and_then(toml::Value::as_table_mut)
            .ok_or_else(|| format!("the config has no [{path}] table"))?;
    }
    Ok(current)
}

/// The array of tables at `key` inside `table` (`servers`, `tiers`).
///
/// # Errors
/// The key is missing or not an array.
pub fn array_at<'a>(
    table: &'a mut toml::Table,
    key: &str,
) -> Result<&'a mut Vec<toml::Value>, String> {
    table
        .get_mut(key)
        .and_then(toml::Value::as_array_mut)
        .ok_or_else(|| format!("the config has no {key} list"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_first_undo_of_a_target_wins() {
        let mut restore = Restore::new(reqwest::Client::new());
        for workers in [3, 1] {
            restore.remember(Undo::Put {
                url: "http://w/admin/workers".to_owned(),
                body: json!({"workers": workers}),
            });
        }
        restore.remember(Undo::Post {
            url: "http://g/admin/chaos".to_owned(),
            body: json!({}),
        });
        assert_eq!(restore.undo.len(), 2);
        let Undo::Put { body, .. } = &restore.undo[0] else {
            panic!("{:?}", restore.undo);
        };
        assert_eq!(body["workers"], 3);
        // Nothing reachable to restore in a unit test.
        restore.undo.clear();
    }

    #[test]
    fn config_edits_find_their_tables() {
        let mut table: toml::Table =
            "[upstreams.gateways]\nservers = [{addr = \"a\"}]\nretries = 2"
                .parse()
                .unwrap();
        let gateways = table_at(&mut table, "upstreams.gateways").unwrap();
        gateways.insert("retries".to_owned(), toml::Value::Integer(0));
        assert_eq!(array_at(gateways, "servers").unwrap().len(), 1);
        assert!(array_at(gateways, "tiers").is_err());
        assert!(table_at(&mut table, "upstreams.worker").is_err());
        assert_eq!(
            table["upstreams"]["gateways"]["retries"].as_integer(),
            Some(0)
        );
    }
}
