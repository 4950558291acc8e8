//! Where batches go: standard error or a file opened for appending, which SIGUSR1 reopens at
//! its path after a rotation (nginx's `USR1`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub(super) enum Sink {
    Stderr,
    File { path: PathBuf, file: File },
}

impl Sink {
    /// Standard error for `None`, else `path` (created if missing, appended to).
    pub(super) fn open(path: Option<&Path>) -> std::io::Result<Sink> {
        match path {
            None => Ok(Sink::Stderr),
            Some(path) => Ok(Sink::File {
                path: path.to_path_buf(),
                file: append(path)?,
            }),
        }
    }

    /// One `write` per batch (more only if the kernel takes part of it).
    pub(super) fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stderr => std::io::stderr().lock().write_all(bytes),
            Sink::File { file, .. } => file.write_all(bytes),
        }
    }

    /// Opens the path again; on failure the old file stays in use.
    pub(super) fn reopen(&mut self) -> std::io::Result<()> {
        if let Sink::File { path, file } = self {
            *file = append(path)?;
        }
        Ok(())
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}
