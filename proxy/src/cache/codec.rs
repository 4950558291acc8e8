//! The byte format of an object in a shared (Redis) tier: everything a proxy needs to serve it
//! or revalidate it (status, headers with validators, body, TTL and stale windows, Vary
//! values, tags), written by one proxy and read by any other, perhaps of a later version.
//!
//! Layout (integers big-endian; a string or byte run is a u32 length then its bytes):
//! `version: u8 = 1`, `stored_at_ms: u64` (Unix), `ttl_ms`, `swr_ms`, `sie_ms: u64`,
//! `ttl_source: u8`, `status: u16`, `flags: u8` (bit 0 head only, bit 1 soft-purged),
//! `key`, `route`, `headers: u32` x (name, value), `tags: u32` x tag,
//! `vary: u32` x (name, present: u8, value), `body`.
//! The version byte comes first so that a future format can coexist: a reader skips (as a miss)
//! a version it does not know.

use super::entry::{Entry, NewEntry};
use super::policy::TtlSource;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use std::time::Duration;

/// The format this build writes.
pub const VERSION: u8 = 1;

const HEAD_ONLY: u8 = 1;
const SOFT_PURGED: u8 = 2;

/// Why stored bytes could not be read back as an object.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("unknown format version {0}")]
    Version(u8),
    #[error("truncated object")]
    Truncated,
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// An object read back: what to build the local entry from, its storage key, how old it is.
#[derive(Debug)]
pub struct Decoded {
    pub key: String,
    pub new: NewEntry,
    pub age: Duration,
    pub soft_purged: bool,
}

fn ttl_source_code(source: TtlSource) -> u8 {
    match source {
        TtlSource::CacheTtlParam => 0,
        TtlSource::SMaxage => 1,
        TtlSource::MaxAge => 2,
        TtlSource::RouteDefault => 3,
    }
}

fn ttl_source_from(code: u8) -> Result<TtlSource, CodecError> {
    Ok(match code {
        0 => TtlSource::CacheTtlParam,
        1 => TtlSource::SMaxage,
        2 => TtlSource::MaxAge,
        3 => TtlSource::RouteDefault,
        _ => return Err(CodecError::Invalid("ttl source")),
    })
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, value: u8) {
        self.0.push(value);
    }
    fn u16(&mut self, value: u16) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }
    fn u32(&mut self, value: usize) {
        // Objects are bounded by max_object_bytes (far below 4 GiB), so every length fits.
        let value = u32::try_from(value).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&value.to_be_bytes());
    }
    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }
    fn bytes(&mut self, value: &[u8]) {
        self.u32(value.len());
        self.0.extend_from_slice(value);
    }
}

/// Writes `entry` as stored bytes; `stored_at_ms` is its store time in Unix milliseconds.
pub fn encode(entry: &Entry, stored_at_ms: u64, soft_purged: bool) -> Vec<u8> {
    let mut out = Writer(Vec::with_capacity(entry.size + 64));
    out.u8(VERSION);
    out.u64(stored_at_ms);
    out.u64(millis(entry.ttl));
    out.u64(millis(entry.stale_while_revalidate));
    out.u64(millis(entry.stale_if_error));
    out.u8(ttl_source_code(entry.ttl_source));
    out.u16(entry.status);
    let mut flags = 0;
    if entry.head_only {
        flags |= HEAD_ONLY;
    }
    if soft_purged {
        flags |= SOFT_PURGED;
    }
    out.u8(flags);
    out.bytes(entry.key.as_bytes());
    out.bytes(entry.route.as_bytes());
    out.u32(entry.headers.len());
    for (name, value) in &entry.headers {
        out.bytes(name.as_str().as_bytes());
        out.bytes(value.as_bytes());
    }
    out.u32(entry.tags.len());
    for tag in &entry.tags {
        out.bytes(tag.as_bytes());
    }
    out.u32(entry.vary.len());
    for (name, value) in &entry.vary {
        out.bytes(name.as_bytes());
        out.u8(u8::from(value.is_some()));
        out.bytes(value.as_deref().unwrap_or("").as_bytes());
    }
    out.bytes(&entry.body);
    out.0
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], CodecError> {
        if self.0.len() < count {
            return Err(CodecError::Truncated);
        }
        let (head, rest) = self.0.split_at(count);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, CodecError> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }
    fn u32(&mut self) -> Result<usize, CodecError> {
        let bytes = self.take(4)?;
        let value = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        usize::try_from(value).map_err(|_| CodecError::Invalid("length"))
    }
    fn u64(&mut self) -> Result<u64, CodecError> {
        let bytes = self.take(8)?;
        let mut array = [0; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_be_bytes(array))
    }
    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let length = self.u32()?;
        self.take(length)
    }
    fn text(&mut self, what: &'static str) -> Result<String, CodecError> {
        std::str::from_utf8(self.bytes()?)
            .map(str::to_owned)
            .map_err(|_| CodecError::Invalid(what))
    }
    /// A count of items that each take at least `min_item` bytes: a count the remaining bytes
    /// cannot hold is refused before anything is allocated for it.
    fn count(&mut self, min_item: usize) -> Result<usize, CodecError> {
        let count = self.u32()?;
        if count.saturating_mul(min_item) > self.0.len() {
            return Err(CodecError::Truncated);
        }
        Ok(count)
    }
}

/// Reads stored bytes back; `now_ms` is the current Unix time in milliseconds.
///
/// # Errors
/// An unknown version, truncated bytes or a field that is not valid (a header name, a
/// non-UTF-8 key).
pub fn decode(data: &[u8], now_ms: u64) -> Result<Decoded, CodecError> {
    let mut input = Reader(data);
    let version = input.u8()?;
    if version != VERSION {
        return Err(CodecError::Version(version));
    }
    let stored_at_ms = input.u64()?;
    let ttl = Duration::from_millis(input.u64()?);
    let stale_while_revalidate = Duration::from_millis(input.u64()?);
    let stale_if_error = Duration::from_millis(input.u64()?);
    let ttl_source = ttl_source_from(input.u8()?)?;
    let status = input.u16()?;
    let flags = input.u8()?;
    let key = input.text("key")?;
    let route = input.text("route")?;
    let header_count = input.count(8)?;
    let mut headers = Vec::with_capacity(header_count);
    for _ in 0..header_count {
        let name = HeaderName::from_bytes(input.bytes()?)
            .map_err(|_| CodecError::Invalid("header name"))?;
        let value = HeaderValue::from_bytes(input.bytes()?)
            .map_err(|_| CodecError::Invalid("header value"))?;
        headers.push((name, value));
    }
    let tag_count = input.count(4)?;
    let mut tags = Vec::with_capacity(tag_count);
    for _ in 0..tag_count {
        tags.push(input.text("tag")?);
    }
    let vary_count = input.count(9)?;
    let mut vary = Vec::with_capacity(vary_count);
    for _ in 0..vary_count {
        let name = input.text("vary name")?;
        let present = input.u8()? != 0;
        let value = input.text("vary value")?;
        vary.push((name, present.then_some(value)));
    }
    let body = Bytes::copy_from_slice(input.bytes()?);
    if !input.0.is_empty() {
        return Err(CodecError::Invalid("trailing bytes"));
    }
    let primary = key
        .split(super::VARIANT_SEPARATOR)
        .next()
        .unwrap_or(&key)
        .to_owned();
    Ok(Decoded {
        new: NewEntry {
            key: primary,
            route,
            status,
            headers,
            body,
            head_only: flags & HEAD_ONLY != 0,
            ttl,
            ttl_source,
            stale_while_revalidate,
            stale_if_error,
            tags,
            vary,
        },
        key,
        age: Duration::from_millis(now_ms.saturating_sub(stored_at_ms)),
        soft_purged: flags & SOFT_PURGED != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> std::sync::Arc<Entry> {
        let new = NewEntry {
            key: "GET:/data/1".to_owned(),
            route: "data".to_owned(),
            status: 200,
            headers: vec![
                (
                    HeaderName::from_static("etag"),
                    HeaderValue::from_static("\"v1\""),
                ),
                (
                    HeaderName::from_static("content-type"),
                    HeaderValue::from_static("application/json"),
                ),
            ],
            body: Bytes::from_static(b"{\"id\":1}"),
            head_only: false,
            ttl: Duration::from_secs(60),
            ttl_source: TtlSource::MaxAge,
            stale_while_revalidate: Duration::from_secs(5),
            stale_if_error: Duration::from_secs(30),
            tags: vec!["users".to_owned(), "user:1".to_owned()],
            vary: vec![
                ("accept-language".to_owned(), Some("fr".to_owned())),
                ("x-absent".to_owned(), None),
            ],
        };
        let key = super::super::variant_key(&new.key, &new.vary);
        Entry::new(7, key, 100, new)
    }

    #[test]
    fn an_object_reads_back_as_it_was_written() {
        let entry = sample();
        let bytes = encode(&entry, 1_000_000, false);
        assert_eq!(bytes[0], VERSION);
        let decoded = decode(&bytes, 1_002_500).unwrap();
        assert_eq!(decoded.key, &*entry.key);
        assert_eq!(decoded.new.key, "GET:/data/1");
        assert_eq!(decoded.new.route, "data");
        assert_eq!(decoded.new.status, 200);
        assert_eq!(decoded.new.headers, entry.headers);
        assert_eq!(decoded.new.body, entry.body);
        assert_eq!(decoded.new.ttl, entry.ttl);
        assert_eq!(decoded.new.ttl_source, TtlSource::MaxAge);
        assert_eq!(
            decoded.new.stale_while_revalidate,
            entry.stale_while_revalidate
        );
        assert_eq!(decoded.new.stale_if_error, entry.stale_if_error);
        assert_eq!(decoded.new.tags, entry.tags);
        assert_eq!(decoded.new.vary, entry.vary);
        assert!(!decoded.new.head_only);
        assert!(!decoded.soft_purged);
        assert_eq!(decoded.age, Duration::from_millis(2500));
    }

    #[test]
    fn flags_and_a_clock_behind_the_writer_read_back_safely() {
        let bytes = encode(&sample(), 5_000, true);
        let decoded = decode(&bytes, 1_000).unwrap();
        assert!(decoded.soft_purged);
        assert_eq!(
            decoded.age,
            Duration::ZERO,
            "a reader's clock behind the writer's"
        );
    }

    #[test]
    fn bad_bytes_are_refused_not_trusted() {
        let bytes = encode(&sample(), 1_000, false);
        let cases: Vec<(Vec<u8>, CodecError)> = vec![
            (vec![], CodecError::Truncated),
            (vec![2, 0, 0], CodecError::Version(2)),
            (bytes[..bytes.len() - 1].to_vec(), CodecError::Truncated),
            (
                [&bytes[..], b"x"].concat(),
                CodecError::Invalid("trailing bytes"),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(decode(&input, 2_000).unwrap_err(), expected, "{input:?}");
        }
        // A header count far larger than the bytes that follow it is refused before anything
        // is allocated for it.
        let entry = sample();
        let fixed = 1 + 4 * 8 + 1 + 2 + 1;
        let headers_at = fixed + 4 + entry.key.len() + 4 + entry.route.len();
        let mut huge = bytes[..headers_at].to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode(&huge, 2_000).unwrap_err(), CodecError::Truncated);
    }
}
