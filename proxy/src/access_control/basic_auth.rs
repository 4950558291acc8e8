//! Basic auth on the request path: the `Authorization: Basic` credentials checked against the
//! route's htpasswd users.
//!
//! A bcrypt or argon2 check costs milliseconds of CPU, so it never runs on a Pingora request
//! thread, where it would stall every other request that thread serves. Both measures apply:
//! - a verified-credentials cache: the verdict (yes or no) for a SHA-256 of the users file's
//!   hash, the user and the password, kept `CACHE_TTL`; a client that sends the same
//!   credentials on every request pays for one check per `CACHE_TTL`, and the same wrong
//!   password sent again costs nothing;
//! - a small verification pool: a miss runs the hash on tokio's blocking threads, at most
//!   `workers()` at a time (one core is always left to the request threads); the rest wait
//!   their turn asynchronously, holding no thread. A flood of wrong passwords therefore costs
//!   at most those cores and slows only the basic-auth requests themselves.

use super::Refusal;
use crate::config::access::htpasswd::{self, Htpasswd};
use crate::config::access::BasicSettings;
use base64::Engine;
use scalelab_common::sync::lock;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How long a verdict is kept. Short, so a password removed from the file by hand stops
/// working soon even without a reload; a reload (the file's hash is in the key) ends it at once.
pub const CACHE_TTL: Duration = Duration::from_secs(30);

/// At most this many verdicts are kept; past it, expired ones are dropped, then all.
const CACHE_MAX: usize = 10_000;

/// The process's one verification pool and cache.
static POOL: LazyLock<Verification> = LazyLock::new(|| Verification {
    permits: Semaphore::new(workers()),
    cache: Mutex::new(HashMap::new()),
});

struct Verification {
    permits: Semaphore,
    cache: Mutex<HashMap<[u8; 32], (Instant, bool)>>,
}

/// How many hash checks run at once: every core but one, at least one.
pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
}

/// The user and password of an `Authorization: Basic` value. Pure.
pub fn credentials(header: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(header).ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Checks the request's `Authorization` header; the user name when it is right.
///
/// # Errors
/// `Refusal::Basic` (401 with the realm's challenge) for missing, malformed or wrong
/// credentials and unknown users.
pub async fn check(settings: &BasicSettings, header: Option<&[u8]>) -> Result<String, Refusal> {
    let refuse = || Refusal::Basic {
        realm: settings.realm.clone(),
    };
    let (user, password) = header.and_then(credentials).ok_or_else(refuse)?;
    let key = cache_key(&settings.sha256, &user, &password);
    if let Some(verdict) = cached(&key) {
        return if verdict { Ok(user) } else { Err(refuse()) };
    }
    let verdict = verify_off_thread(settings.users.clone(), user.clone(), password).await;
    remember(key, verdict);
    if verdict {
        Ok(user)
    } else {
        Err(refuse())
    }
}

/// Runs the hash check on the blocking pool under one of the pool's permits. An unknown user
/// is checked against nothing and answered at once: the timing difference says only that the
/// user is unknown, which the 401 for a known user with a wrong password would also say after
/// a cached second try.
async fn verify_off_thread(users: Arc<Htpasswd>, user: String, password: String) -> bool {
    if users.hash_of(&user).is_none() {
        return false;
    }
    let Ok(_permit) = POOL.permits.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        users
            .hash_of(&user)
            .is_some_and(|hash| htpasswd::verify(hash, password.as_bytes()))
    })
    .await
    .unwrap_or(false)
}

fn cache_key(file_sha: &str, user: &str, password: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(file_sha.as_bytes());
    hasher.update([0]);
    hasher.update(user.as_bytes());
    hasher.update([0]);
    hasher.update(password.as_bytes());
    hasher.finalize().into()
}

fn cached(key: &[u8; 32]) -> Option<bool> {
    let cache = lock(&POOL.cache);
    cache
        .get(key)
        .filter(|(at, _)| at.elapsed() < CACHE_TTL)
        .map(|&(_, verdict)| verdict)
}

fn remember(key: [u8; 32], verdict: bool) {
    let mut cache = lock(&POOL.cache);
    if cache.len() >= CACHE_MAX {
        cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
    }
    cache.insert(key, (Instant::now(), verdict));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_table() {
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        for (header, expected) in [
            (
                format!("Basic {}", enc("alice:s3cret")),
                Some(("alice", "s3cret")),
            ),
            (format!("basic {}", enc("a:b:c")), Some(("a", "b:c"))),
            (format!("Basic {}", enc("a:")), Some(("a", ""))),
            (format!("Basic {}", enc("nocolon")), None),
            ("Basic !!!".to_string(), None),
            (format!("Bearer {}", enc("a:b")), None),
            ("Basic".to_string(), None),
        ] {
            let got = credentials(header.as_bytes());
            let got = got.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
            assert_eq!(got, expected, "{header}");
        }
    }

    #[test]
    fn the_key_changes_with_the_file_user_and_password() {
        let a = cache_key("f1", "u", "p");
        assert_ne!(a, cache_key("f2", "u", "p"));
        assert_ne!(a, cache_key("f1", "u2", "p"));
        assert_ne!(a, cache_key("f1", "u", "p2"));
        // The separator keeps "ab"+"c" apart from "a"+"bc".
        assert_ne!(cache_key("f", "ab", "c"), cache_key("f", "a", "bc"));
    }
}
