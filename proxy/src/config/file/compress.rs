//! The serde mirror of `compress = { encodings, min_bytes, types, level }`, in `[proxy]` and in
//! a route.

use super::ByteSize;
use serde::Deserialize;

/// `compress = { encodings = ["zstd", "br", "gzip"], min_bytes = 1024, types = [...], level = 6 }`.
/// Every key is optional: a route's missing keys come from `[proxy]`'s table, then from the
/// defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCompress {
    pub encodings: Option<Vec<String>>,
    pub min_bytes: Option<ByteSize>,
    pub types: Option<Vec<String>>,
    pub level: Option<FileLevel>,
}

/// `level = 6` (every listed encoding) or `level = { gzip = 6, br = 4, zstd = 3 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileLevel {
    All(i64),
    Each(FileLevels),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLevels {
    pub gzip: Option<i64>,
    pub br: Option<i64>,
    pub zstd: Option<i64>,
}
