//! Who may use the admin listener: with `[admin] token` set, every endpoint except `/health`
//! (and `/metrics`, unless `metrics_auth`) needs `Authorization: Bearer <token>`. The token is
//! read from the running snapshot on every request, so a reload that changes it takes effect
//! at once. Without a token the listener is open, which validation allows only on loopback.

use crate::config::admin::AdminSettings;
use crate::error::Answer;
use crate::state::Shared;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The middleware in front of every admin route.
pub async fn require_token(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    let snapshot = shared.snapshot();
    let authorization = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .map(|value| value.as_bytes());
    if permits(snapshot.config.admin(), request.uri().path(), authorization) {
        next.run(request).await
    } else {
        Answer::admin_token_required().into_response()
    }
}

/// Whether a request for `path` with this `Authorization` value may pass.
pub fn permits(admin: &AdminSettings, path: &str, authorization: Option<&[u8]>) -> bool {
    let Some(token) = &admin.token else {
        return true;
    };
    let open = path == "/health" || (path == "/metrics" && !admin.metrics_auth);
    open || token.authorizes(authorization)
}

#[cfg(test)]
mod tests {
    use super::permits;
    use crate::config::admin::{AdminSettings, AdminToken};

    #[test]
    fn only_health_and_open_metrics_pass_without_the_token() {
        let open = AdminSettings::default();
        let guarded = AdminSettings {
            token: Some(AdminToken::new(b"0123456789abcdef".to_vec(), "test".into())),
            metrics_auth: false,
        };
        let strict = AdminSettings {
            metrics_auth: true,
            ..guarded.clone()
        };
        let good = Some(&b"Bearer 0123456789abcdef"[..]);
        let bad = Some(&b"Bearer 0123456789abcdeX"[..]);
        for path in [
            "/admin/config",
            "/cache/stats",
            "/stats",
            "/metrics",
            "/health",
        ] {
            assert!(permits(&open, path, None), "{path} without a token set");
            assert!(permits(&guarded, path, good), "{path} with the token");
            assert!(permits(&strict, path, good), "{path} with the token");
            assert!(!permits(&strict, path, bad) || path == "/health", "{path}");
        }
        assert!(permits(&guarded, "/metrics", None));
        assert!(!permits(&strict, "/metrics", None));
        assert!(!permits(&guarded, "/admin/cache", None));
        assert!(!permits(&guarded, "/admin/cache", bad));
        assert!(permits(&strict, "/health", None));
    }
}
