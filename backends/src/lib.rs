//! The lab backends (filled by issue 3).
