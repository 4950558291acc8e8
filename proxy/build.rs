//! Records the git commit the binary is built from, for `scalelab-proxy --version`.
//!
//! Outside a git checkout (a crate tarball, a Debian source package) or without `git`, the
//! commit is `SCALELAB_GIT_COMMIT` from the environment, or "unknown" rather than a build
//! failure. Cargo runs this again when `HEAD` moves:
//! the files it names are the worktree's `HEAD` (a checkout), the branch's ref (a commit) and
//! `packed-refs` (a `git gc` moves refs there).

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn main() {
    // A packager building outside git can name the commit itself.
    let commit = std::env::var("SCALELAB_GIT_COMMIT")
        .ok()
        .filter(|commit| !commit.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=SCALELAB_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-env-changed=SCALELAB_GIT_COMMIT");
    if let (Some(git_dir), Some(common_dir)) = (
        git(&["rev-parse", "--absolute-git-dir"]),
        git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]),
    ) {
        let git_dir = PathBuf::from(git_dir);
        let common_dir = PathBuf::from(common_dir);
        println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
        println!(
            "cargo:rerun-if-changed={}",
            common_dir.join("packed-refs").display()
        );
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!(
                "cargo:rerun-if-changed={}",
                common_dir.join(branch).display()
            );
        }
    }
}
