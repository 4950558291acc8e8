//! The parts of a request's context, one type per concern, so a reader learns one concern from
//! one type: who the client is (`Client`), the tries on servers (`Attempts`), what the explain
//! header will say (`Explain`), and the request body's limit (`BodyLimit`). `RequestCtx` in
//! `service` holds them with the snapshot, the route and the cache's part.

use crate::error::Reject;
use crate::upstream::Lease;
use http::header::HeaderValue;
use std::time::Instant;

/// Who sent the request, as far as the proxy knows it.
#[derive(Default)]
pub(super) struct Client {
    /// The client's IP as a header value, carried across keep-alive requests of one
    /// connection so it is looked up and formatted once per connection, not per request.
    pub ip: Option<HeaderValue>,
    /// The proxy verified this request's token (so its response may be cached).
    pub token_verified: bool,
    /// `sub` of the verified token, sent upstream as `X-Auth-Subject`.
    pub subject: Option<String>,
    /// The verified token's claims, kept only on a route whose header rules may name them.
    pub claims: Option<serde_json::Value>,
}

/// The request's tries on the servers of its group.
#[derive(Default)]
pub(super) struct Attempts {
    /// The in-flight slot on the server currently tried; replaced on retry, dropped at the end.
    pub lease: Option<Lease>,
    /// Bit per server index already tried by this request.
    pub tried: u64,
    /// Tries so far (the first included).
    pub count: u32,
    /// Set once upstream response headers arrived: nothing may be retried after that.
    pub responded: bool,
    /// When the current try's server was chosen, for its response time.
    pub started: Option<Instant>,
    /// Why the last try failed, reported when no server is left to retry on.
    pub last_failure: Option<Reject>,
}

/// The explain header's one composer. Each phase that has something to say adds its note when
/// the client asked for it (and may see it); the header is the notes in the order the phases
/// ran them, joined by "; ", on whatever answers the request: proxied, cached or refused.
#[derive(Default)]
pub(super) struct Explain {
    /// This request's answers carry the diagnostic headers (`[proxy] debug_headers`).
    pub debug: bool,
    /// The client asked for the explain header, and may see it (`debug`).
    pub wanted: bool,
    notes: Vec<String>,
}

impl Explain {
    /// Adds a phase's note; the text is built only when the header was asked for.
    pub fn note(&mut self, text: impl FnOnce() -> String) {
        if self.wanted {
            self.notes.push(text());
        }
    }

    /// The header's value, once: the notes are taken, so a second answer adds nothing twice.
    pub fn take(&mut self) -> Option<String> {
        (!self.notes.is_empty()).then(|| std::mem::take(&mut self.notes).join("; "))
    }
}

/// The request body limit of the request's route, and the body bytes read so far.
pub(super) struct BodyLimit {
    pub limit: u64,
    pub seen: u64,
}

impl Default for BodyLimit {
    fn default() -> BodyLimit {
        BodyLimit {
            limit: u64::MAX,
            seen: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Explain;

    #[test]
    fn explain_joins_notes_in_order_and_only_when_asked() {
        let mut quiet = Explain::default();
        quiet.note(|| unreachable!("not asked: the note is never built"));
        assert_eq!(quiet.take(), None);

        let mut asked = Explain {
            wanted: true,
            ..Explain::default()
        };
        asked.note(|| "limits".into());
        asked.note(|| "rewrite".into());
        asked.note(|| "pick".into());
        assert_eq!(asked.take().as_deref(), Some("limits; rewrite; pick"));
        assert_eq!(asked.take(), None);
    }
}
