//! Log lines for journald, when systemd connects standard error to the journal.
//!
//! systemd sets `JOURNAL_STREAM` to the `device:inode` of the stream it gave the service; when
//! that is our standard error (not a stream a child of the service inherited and redirected),
//! journald stamps every line itself, so our timestamps are dropped, and reads a leading `<N>`
//! as the line's syslog priority (sd-daemon(3)), so `journalctl -p warning` filters by our
//! levels. The journal's native protocol would carry fields too, but needs its socket, which
//! a service under `ProtectSystem=strict` and a container may not have; the prefix needs nothing.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Whether standard error is the journal stream systemd named in `JOURNAL_STREAM`.
pub fn connected() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stderr) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    stream.to_str().and_then(parse_stream) == Some((stderr.dev(), stderr.ino()))
}

/// `JOURNAL_STREAM`'s `device:inode`, both decimal.
pub fn parse_stream(text: &str) -> Option<(u64, u64)> {
    let (device, inode) = text.split_once(':')?;
    Some((device.parse().ok()?, inode.parse().ok()?))
}

/// The syslog priority of a level: error 3, warning 4, info 6, debug and trace 7.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// An event format that writes the `<N>` priority prefix, then the line `F` writes.
#[derive(Debug, Clone)]
pub struct Prefixed<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for Prefixed<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_and_priorities() {
        assert_eq!(parse_stream("8:12345"), Some((8, 12345)));
        for bad in ["", "8", "8:", ":1", "a:1", "8:1:2"] {
            assert_eq!(parse_stream(bad), None, "{bad:?}");
        }
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
        assert_eq!(priority(&Level::TRACE), 7);
    }
}
