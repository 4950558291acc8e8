//! The admin API's access control (`[admin]`) and who sees the diagnostic response headers
//! (`[proxy] debug_headers`, `debug_trusted`). Read by `validate::admin`; used by the admin
//! listener, the proxy listener's `POST /cache/invalidate` and `service::debug`.

use super::traffic::TrustedProxies;
use std::fmt;
use subtle::ConstantTimeEq;

/// `[admin]`: the bearer token of the admin endpoints, and whether `/metrics` needs it too.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct AdminSettings {
    /// `None`: the admin endpoints are open (allowed only on a loopback `admin_listen`).
    pub token: Option<AdminToken>,
    /// `/metrics` needs the token too (Prometheus sends it as `authorization` credentials).
    pub metrics_auth: bool,
}

/// A secret bearer token. Its `Debug` and `Serialize` forms name where it came from and a
/// short fingerprint, never the token, so neither `/admin/config` nor a log line can leak
/// it; the fingerprint lets a reload see (and report) that the token file changed.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    secret: Vec<u8>,
    /// `env SCALELAB_ADMIN_TOKEN` or `file /etc/scalelab/admin.token`.
    source: String,
}

impl AdminToken {
    pub fn new(secret: Vec<u8>, source: String) -> AdminToken {
        AdminToken { secret, source }
    }

    /// Whether `presented` is the token, in time that does not depend on where the two
    /// differ (`subtle`), so the answer's timing does not reveal a prefix of the token.
    /// Only a length mismatch returns early, and the length is no secret worth protecting.
    pub fn matches(&self, presented: &[u8]) -> bool {
        bool::from(self.secret.as_slice().ct_eq(presented))
    }

    /// Whether an `Authorization` header value is `Bearer <token>` (scheme case-insensitive).
    pub fn authorizes(&self, authorization: Option<&[u8]>) -> bool {
        authorization
            .and_then(|value| value.get(..7).zip(value.get(7..)))
            .is_some_and(|(scheme, token)| {
                scheme.eq_ignore_ascii_case(b"bearer ") && self.matches(token)
            })
    }

    /// The first 8 hex digits of the token's SHA-256: enough to tell two tokens apart in a
    /// reload's diff, far too little to recover a random token from.
    fn fingerprint(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(&self.secret);
        digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminToken")
            .field("source", &self.source)
            .field("sha256_prefix", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl serde::Serialize for AdminToken {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde_json::json!({
            "source": self.source,
            "sha256_prefix": self.fingerprint(),
            "token": "(redacted)",
        })
        .serialize(serializer)
    }
}

/// `[proxy] debug_headers`: who is shown `X-Upstream-Server`, `X-Strategy`,
/// `X-Config-Generation` and the explain header. They name internal addresses, so the
/// daemon's default is `Off`; the lab's config turns them `On`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DebugHeaders {
    #[default]
    Off,
    On,
    /// Only clients in `debug_trusted`, or requests carrying the admin token in
    /// `X-Scalelab-Debug-Token`.
    Trusted,
}

/// `debug_headers` with its allow list.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct DebugSettings {
    pub mode: DebugHeaders,
    /// The clients (after `trusted_proxies`, as rate limits see them) that get the headers
    /// in `Trusted` mode.
    pub trusted: TrustedProxies,
}
