//! Which paths to watch for a file that may be reached through symbolic links, as Kubernetes
//! delivers a ConfigMap or a Secret: `config.toml -> ..data/config.toml`, `..data ->
//! ..2026_12_07_...`, updated by writing a new timestamped directory and renaming a new
//! `..data` link over the old one. Neither that swap nor an edit of the final file changes the
//! directory entry named `config.toml`, so a watcher of that name alone sees nothing.
//!
//! `chain` lists every link on the way (the file's own links and links among its directories)
//! and the final file; a watcher watches their directories and takes an event on any of those
//! paths as a possible change, then calls `chain` again, because the swap it just saw moved
//! the final file to another directory.

use std::path::{Component, Path, PathBuf};

/// More links than this on one path is a loop (Linux's own limit is 40).
const MAX_LINKS: usize = 40;

/// `path` (absolute, with canonical directories) followed to its final file: each link on the
/// way, then the final file, all with canonical directories, so that they compare equal to the
/// paths a watcher of those directories reports. The final file need not exist.
pub fn chain(path: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let (Some(directory), Some(name)) = (current.parent(), current.file_name()) else {
            break;
        };
        let directory = resolve_directory(directory, &mut paths);
        current = directory.join(name);
        paths.push(current.clone());
        match std::fs::read_link(&current) {
            // A relative target starts at the link's own directory.
            Ok(target) => current = directory.join(target),
            Err(_) => break,
        }
    }
    paths
}

/// The directories holding `paths`: what a watcher watches (non-recursively) to see them.
pub fn directories(paths: &[PathBuf]) -> std::collections::BTreeSet<PathBuf> {
    paths
        .iter()
        .filter_map(|path| path.parent())
        .map(Path::to_path_buf)
        .collect()
}

/// `directory` with each component that is a link followed, recording the links (`..data`) in
/// `links`. Components are taken lexically, `..` included, as the kernel would after following.
fn resolve_directory(directory: &Path, links: &mut Vec<PathBuf>) -> PathBuf {
    let mut resolved = PathBuf::new();
    let mut hops = 0;
    for component in directory.components() {
        match component {
            Component::ParentDir => {
                resolved.pop();
                continue;
            }
            Component::CurDir => continue,
            _ => resolved.push(component),
        }
        while hops < MAX_LINKS {
            let Ok(target) = std::fs::read_link(&resolved) else {
                break;
            };
            hops += 1;
            links.push(resolved.clone());
            let base = resolved.parent().map(Path::to_path_buf).unwrap_or_default();
            resolved = std::fs::canonicalize(base.join(&target)).unwrap_or(base.join(target));
        }
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_plain_file_is_its_own_chain() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let file = base.join("config.toml");
        assert_eq!(chain(&file), vec![file.clone()]);
        std::fs::write(&file, "x").unwrap();
        assert_eq!(chain(&file), vec![file.clone()]);
        assert_eq!(
            directories(&chain(&file)).into_iter().collect::<Vec<_>>(),
            vec![base]
        );
    }

    #[test]
    fn the_kubernetes_layout_names_both_links_and_the_final_file() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(base.join("..2026_12_07_1")).unwrap();
        std::fs::write(base.join("..2026_12_07_1/config.toml"), "x").unwrap();
        symlink("..2026_12_07_1", base.join("..data")).unwrap();
        symlink("..data/config.toml", base.join("config.toml")).unwrap();
        let file = base.join("config.toml");
        assert_eq!(
            chain(&file),
            vec![
                file.clone(),
                base.join("..data"),
                base.join("..2026_12_07_1/config.toml"),
            ]
        );
        assert_eq!(
            directories(&chain(&file)).into_iter().collect::<Vec<_>>(),
            vec![base.clone(), base.join("..2026_12_07_1")]
        );

        // The swap: a new directory, a new link renamed over `..data`.
        std::fs::create_dir(base.join("..2026_12_07_2")).unwrap();
        std::fs::write(base.join("..2026_12_07_2/config.toml"), "y").unwrap();
        symlink("..2026_12_07_2", base.join("..data_tmp")).unwrap();
        std::fs::rename(base.join("..data_tmp"), base.join("..data")).unwrap();
        assert_eq!(
            chain(&file).last(),
            Some(&base.join("..2026_12_07_2/config.toml"))
        );
    }

    #[test]
    fn an_absolute_link_to_another_directory_and_a_loop_end() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(base.join("real")).unwrap();
        symlink(base.join("real/cert.pem"), base.join("cert.pem")).unwrap();
        assert_eq!(
            chain(&base.join("cert.pem")),
            vec![base.join("cert.pem"), base.join("real/cert.pem")]
        );
        symlink("loop", base.join("loop")).unwrap();
        assert_eq!(chain(&base.join("loop")).len(), MAX_LINKS);
    }
}
