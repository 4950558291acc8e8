//! Units of config values: sizes, written as a number of bytes or with a unit ("16MiB"), and
//! durations, written as humantime strings ("500ms", "2s") and bounded by what they are for.
//! Only the config reads them, so their parsing lives here.

use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest timeout or interval: no network wait or check period in the lab is sensibly
/// longer than a day, and a larger value is a unit mistake (`"30d"` for `"30s"`).
pub const MAX_TIMEOUT: Duration = DAY;
/// The longest TTL or stale window. Stored objects are kept in memory, and a year already
/// outlives any process; much larger values would also overflow `Instant` arithmetic.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// What a duration setting is for, which decides its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationKind {
    /// A timeout or an interval: greater than zero, at most `MAX_TIMEOUT`.
    Timeout,
    /// A TTL: greater than zero, at most `MAX_TTL`.
    Ttl,
    /// A stale window (`stale_while_revalidate`, `stale_if_error`): zero turns it off, at most
    /// `MAX_TTL`.
    Window,
}

impl DurationKind {
    /// The maximum, and how it is written in messages and in the README.
    pub fn max(self) -> (Duration, &'static str) {
        match self {
            DurationKind::Timeout => (MAX_TIMEOUT, "1d"),
            DurationKind::Ttl | DurationKind::Window => (MAX_TTL, "365d"),
        }
    }
}

/// Parses a duration such as "500ms" or "2s" and checks it against the range of `kind`.
///
/// # Errors
/// A message for text that is not a duration, for zero where zero is not allowed, and for a
/// value above the maximum (naming the maximum).
pub fn parse_duration(text: &str, kind: DurationKind) -> Result<Duration, String> {
    let example = match kind {
        DurationKind::Window => "\"10s\"",
        DurationKind::Timeout | DurationKind::Ttl => "\"500ms\" or \"2s\"",
    };
    let duration = humantime::parse_duration(text)
        .map_err(|error| format!("invalid duration {text:?} ({error}); write it like {example}"))?;
    let (max, max_text) = kind.max();
    if duration.is_zero() && kind != DurationKind::Window {
        Err("must be greater than zero".to_string())
    } else if duration > max {
        Err(format!("{text:?} is more than the maximum of {max_text}"))
    } else {
        Ok(duration)
    }
}

/// Parses "16MiB", "512KiB", "1MB", "1000" into bytes.
///
/// # Errors
/// A message for an unknown unit or a bad number.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid size {text:?}; write it like \"16MiB\""))?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?}; use B, KiB, MiB or GiB"
            ))
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_checked_against_their_kind() {
        use DurationKind::{Timeout, Ttl, Window};
        let secs = Duration::from_secs;
        let cases: [(&str, DurationKind, Result<Duration, &str>); 10] = [
            ("500ms", Timeout, Ok(Duration::from_millis(500))),
            ("1d", Timeout, Ok(MAX_TIMEOUT)),
            (
                "24h 1s",
                Timeout,
                Err("\"24h 1s\" is more than the maximum of 1d"),
            ),
            ("0s", Timeout, Err("must be greater than zero")),
            ("365d", Ttl, Ok(MAX_TTL)),
            (
                "366d",
                Ttl,
                Err("\"366d\" is more than the maximum of 365d"),
            ),
            ("0s", Ttl, Err("must be greater than zero")),
            ("0s", Window, Ok(Duration::ZERO)),
            ("10s", Window, Ok(secs(10))),
            (
                "2years",
                Window,
                Err("\"2years\" is more than the maximum of 365d"),
            ),
        ];
        for (text, kind, expected) in cases {
            assert_eq!(
                parse_duration(text, kind),
                expected.map_err(str::to_string),
                "{text} as {kind:?}"
            );
        }
        let invalid = parse_duration("soon", Timeout).expect_err("not a duration");
        assert!(
            invalid.starts_with("invalid duration \"soon\" ("),
            "{invalid}"
        );
        assert!(
            invalid.ends_with("write it like \"500ms\" or \"2s\""),
            "{invalid}"
        );
        let invalid = parse_duration("soon", Window).expect_err("not a duration");
        assert!(invalid.ends_with("write it like \"10s\""), "{invalid}");
    }

    #[test]
    fn byte_sizes_parse() {
        assert_eq!(parse_bytes("16MiB"), Ok(16 << 20));
        assert_eq!(parse_bytes("1KB"), Ok(1000));
        assert_eq!(parse_bytes("42"), Ok(42));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("MiB").is_err());
    }
}
