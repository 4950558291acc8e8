//! The lab's admin token: `up` makes one per start, passes it to every proxy in
//! `SCALELAB_ADMIN_TOKEN` (the lab's `config.toml` reads `[admin] token` from there) and keeps
//! it in the data directory, where the lab's own admin calls (`lesson`, run as separate
//! `scalelab` processes) find it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The variable the proxy's `[admin] token = { env = ... }` names in the lab's config.
pub const ENV: &str = "SCALELAB_ADMIN_TOKEN";

/// A new token: 32 random bytes as 64 hex digits.
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where `up` keeps the running lab's token.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.token")
}

/// Writes the token readable by its owner only, replacing the previous lab's.
///
/// # Errors
/// The file cannot be written.
pub fn save(data_dir: &Path, token: &str) -> std::io::Result<()> {
    let path = path(data_dir);
    // Removed first: `mode` applies only when the file is created.
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(token.as_bytes())
}

/// The token the lab's admin calls send: `SCALELAB_ADMIN_TOKEN` when set (a proxy started by
/// hand), else the one `up` saved; `None` when neither exists (the admin API is then open).
pub fn load(data_dir: &Path) -> Option<String> {
    std::env::var(ENV)
        .ok()
        .or_else(|| std::fs::read_to_string(path(data_dir)).ok())
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_saved_token_is_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let token = generate();
        assert_eq!(token.len(), 64);
        assert_ne!(token, generate());
        save(dir.path(), "old").unwrap();
        save(dir.path(), &token).unwrap();
        let mode = std::fs::metadata(path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        if std::env::var(ENV).is_err() {
            assert_eq!(load(dir.path()), Some(token));
        }
    }
}
