//! Apache htpasswd files for basic auth: `user:hash` per line, with bcrypt (`$2y$`, `$2b$`,
//! `$2a$`) or argon2 (`$argon2id$`, `$argon2i$`, `$argon2d$`) hashes only. The weak forms
//! htpasswd can also write (`$apr1$` MD5, `{SHA}`, `crypt`, plain text) are refused when the
//! file is loaded, so a weak password store never reaches a running proxy. Parsing is pure;
//! `verify` spends the hash's CPU and is called off the request threads (`access_control::basic_auth`).

use std::collections::BTreeMap;

/// The users of one htpasswd file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Htpasswd {
    users: BTreeMap<String, Hash>,
}

/// A stored password hash of a kind we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hash {
    Bcrypt(String),
    Argon2(String),
}

impl Htpasswd {
    /// Parses the file's text; every bad line is reported with its number and why.
    pub fn parse(text: &str) -> Result<Htpasswd, Vec<String>> {
        let mut users = BTreeMap::new();
        let mut errors = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let number = number + 1;
            let Some((user, hash)) = line.split_once(':') else {
                errors.push(format!("line {number}: expected user:hash"));
                continue;
            };
            if user.is_empty() {
                errors.push(format!("line {number}: empty user name"));
                continue;
            }
            match classify(hash) {
                Ok(hash) => {
                    if users.insert(user.to_string(), hash).is_some() {
                        errors.push(format!("line {number}: user {user:?} is listed twice"));
                    }
                }
                Err(why) => errors.push(format!("line {number} (user {user:?}): {why}")),
            }
        }
        if errors.is_empty() {
            Ok(Htpasswd { users })
        } else {
            Err(errors)
        }
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The stored hash of `user`.
    pub fn hash_of(&self, user: &str) -> Option<&Hash> {
        self.users.get(user)
    }
}

/// Which hash `text` is, or why it is refused.
fn classify(text: &str) -> Result<Hash, String> {
    const WEAK: &str = "use bcrypt (htpasswd -B) or argon2";
    if ["$2y$", "$2b$", "$2a$"].iter().any(|p| text.starts_with(p)) {
        // Checked here so a truncated hash is a load error, not a failed login forever.
        text.parse::<bcrypt::HashParts>()
            .map_err(|_| "invalid bcrypt hash: expected $2y$COST$ and 53 characters".to_string())?;
        return Ok(Hash::Bcrypt(text.to_string()));
    }
    if text.starts_with("$argon2") {
        // The parser's message names the part that is wrong, never the hash itself.
        argon2::PasswordHash::new(text).map_err(|e| format!("invalid argon2 hash: {e}"))?;
        return Ok(Hash::Argon2(text.to_string()));
    }
    if text.starts_with("$apr1$") || text.starts_with("$1$") {
        return Err(format!("MD5 hashes are too weak; {WEAK}"));
    }
    if text.starts_with("{SHA}") {
        return Err(format!("unsalted SHA-1 hashes are too weak; {WEAK}"));
    }
    if text.starts_with("$5$") || text.starts_with("$6$") {
        return Err(format!("SHA-crypt hashes are not supported; {WEAK}"));
    }
    if text.len() == 13 && !text.starts_with('$') {
        return Err(format!("DES crypt hashes are too weak; {WEAK}"));
    }
    Err(format!("plain-text or unknown password form; {WEAK}"))
}

/// Whether `password` matches `hash`. Costs what the hash was made to cost (milliseconds):
/// never called on a request thread.
pub fn verify(hash: &Hash, password: &[u8]) -> bool {
    match hash {
        Hash::Bcrypt(text) => bcrypt::verify(password, text).unwrap_or(false),
        Hash::Argon2(text) => {
            use argon2::PasswordVerifier;
            argon2::PasswordHash::new(text).is_ok_and(|parsed| {
                argon2::Argon2::default()
                    .verify_password(password, &parsed)
                    .is_ok()
            })
        }
    }
}

#[cfg(test)]
mod tests;
