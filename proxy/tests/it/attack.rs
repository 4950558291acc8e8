//! The raw-socket side of the HTTP/1.1 fault suite, shared by `smuggling.rs` (which asserts
//! the proxy's verdicts) and `examples/attack.rs` (which prints the same table against HAProxy
//! and nginx): the vector table of `tests/vectors/http1.toml`, a recording upstream that keeps
//! every byte it receives, and a client that sends a vector in one write and reads the
//! statuses it gets back.

use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One vector of `tests/vectors/http1.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vector {
    pub name: String,
    pub class: String,
    pub send: String,
    pub statuses: Vec<u16>,
    pub upstream: String,
}

#[derive(Deserialize)]
struct Table {
    vector: Vec<Vector>,
}

/// The vector table.
pub fn vectors() -> Vec<Vector> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/http1.toml");
    let text = std::fs::read_to_string(path).expect("read the vector table");
    let table: Table = toml::from_str(&text).expect("parse the vector table");
    table.vector
}

/// A vector's bytes: `{N x TEXT}` stands for TEXT repeated N times (nesting allowed), so large
/// heads stay readable in the table.
pub fn expand(text: &str) -> Vec<u8> {
    fn expand_from(bytes: &[u8], mut at: usize, out: &mut Vec<u8>) -> usize {
        while at < bytes.len() {
            match bytes[at] {
                b'{' => {
                    let times_end = at + bytes[at..].iter().position(|b| *b == b' ').expect("N");
                    let times: usize = std::str::from_utf8(&bytes[at + 1..times_end])
                        .expect("digits")
                        .parse()
                        .expect("a count");
                    let mut inner = Vec::new();
                    // Skip "N x ".
                    let end = expand_from(bytes, times_end + 3, &mut inner);
                    for _ in 0..times {
                        out.extend_from_slice(&inner);
                    }
                    at = end + 1;
                }
                b'}' => return at,
                byte => {
                    out.push(byte);
                    at += 1;
                }
            }
        }
        at
    }
    let mut out = Vec::new();
    expand_from(text.as_bytes(), 0, &mut out);
    out
}

/// A TCP upstream that records every byte it receives and answers each complete request
/// (Content-Length or chunked framing) with `200 ok`.
#[derive(Clone)]
pub struct Recorder {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<u8>>>,
    requests: Arc<Mutex<usize>>,
}

impl Recorder {
    /// Listens on a free port of 127.0.0.1; runs on the current tokio runtime.
    pub async fn start() -> Recorder {
        Recorder::start_on(([127, 0, 0, 1], 0).into())
            .await
            .expect("bind the recorder")
    }

    /// Listens on `addr` (a fixed port, for proxies configured ahead of time).
    pub async fn start_on(addr: SocketAddr) -> Result<Recorder, String> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|error| format!("bind {addr}: {error}"))?;
        let recorder = Recorder {
            addr: listener.local_addr().map_err(|error| error.to_string())?,
            received: Arc::default(),
            requests: Arc::default(),
        };
        let serving = recorder.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serving.clone().serve(stream));
            }
        });
        Ok(recorder)
    }

    /// Forgets what was received so far.
    pub fn clear(&self) {
        self.received.lock().expect("lock").clear();
        *self.requests.lock().expect("lock") = 0;
    }

    /// Everything received since the last `clear`.
    pub fn received(&self) -> Vec<u8> {
        self.received.lock().expect("lock").clone()
    }

    /// Complete requests received since the last `clear`.
    pub fn requests(&self) -> usize {
        *self.requests.lock().expect("lock")
    }

    async fn serve(self, mut stream: TcpStream) {
        let mut pending = Vec::new();
        let mut chunk = [0u8; 16384];
        loop {
            let Ok(n) = stream.read(&mut chunk).await else {
                return;
            };
            if n == 0 {
                return;
            }
            self.received
                .lock()
                .expect("lock")
                .extend_from_slice(&chunk[..n]);
            pending.extend_from_slice(&chunk[..n]);
            while let Some(length) = request_length(&pending) {
                pending.drain(..length);
                *self.requests.lock().expect("lock") += 1;
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if stream.write_all(answer).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// How many complete requests `bytes` holds, read as the recorder reads them.
pub fn count_requests(mut bytes: &[u8]) -> usize {
    let mut count = 0;
    while let Some(length) = request_length(bytes) {
        bytes = &bytes[length..];
        count += 1;
    }
    count
}

/// The length of the first complete request in `buf`, if it is complete.
fn request_length(buf: &[u8]) -> Option<usize> {
    let head_end = find(buf, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let field = |name: &str| {
        head.split("\r\n")
            .find_map(|line| line.strip_prefix(name).map(str::trim))
            .map(str::to_string)
    };
    if field("transfer-encoding:").is_some_and(|te| te.ends_with("chunked")) {
        let mut at = head_end;
        loop {
            let line_end = at + find(&buf[at..], b"\r\n")?;
            let size_text = String::from_utf8_lossy(&buf[at..line_end]);
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                // Trailer fields, then the blank line.
                loop {
                    let end = at + find(&buf[at..], b"\r\n")?;
                    let empty = end == at;
                    at = end + 2;
                    if empty {
                        return Some(at);
                    }
                }
            }
            at += size + 2;
            if at > buf.len() {
                return None;
            }
        }
    }
    let length = field("content-length:").and_then(|cl| cl.parse::<usize>().ok());
    let total = head_end + length.unwrap_or(0);
    (buf.len() >= total).then_some(total)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What a client saw after sending one vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub statuses: Vec<u16>,
}

/// Sends `bytes` in one write on a fresh connection and reads responses until the connection
/// closes, or `expected` responses arrived and nothing more comes within `quiet`, or `patience`
/// passes.
pub async fn exchange(
    addr: SocketAddr,
    bytes: &[u8],
    expected: usize,
    quiet: Duration,
    patience: Duration,
) -> Seen {
    let mut statuses = Vec::new();
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return Seen { statuses };
    };
    // The server may refuse and close before reading everything; that is a verdict, not an
    // error of the exchange.
    let _ = stream.write_all(bytes).await;
    let deadline = tokio::time::Instant::now() + patience;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        while let Some((status, length)) = response_length(&buf) {
            statuses.push(status);
            buf.drain(..length);
        }
        let wait = if statuses.len() >= expected {
            quiet
        } else {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        };
        match tokio::time::timeout(wait, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    Seen { statuses }
}

/// The status and length of the first complete response in `buf` (1xx responses count too).
fn response_length(buf: &[u8]) -> Option<(u16, usize)> {
    let head_end = find(buf, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head.get(9..12)?.parse().ok()?;
    let length = head
        .split("\r\n")
        .find_map(|line| line.strip_prefix("content-length:").map(str::trim))
        .and_then(|cl| cl.parse::<usize>().ok())
        .unwrap_or(0);
    let total = head_end + length;
    (buf.len() >= total).then_some((status, total))
}

/// What the upstream received, as text, with every `x-request-id` value written as `*`.
pub fn masked(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .split_inclusive("\r\n")
        .map(|line| {
            if line.to_ascii_lowercase().starts_with("x-request-id:") {
                "x-request-id: *\r\n".to_string()
            } else {
                line.to_string()
            }
        })
        .collect()
}

/// The canary request sent after each vector on a fresh connection.
pub const CANARY: &[u8] = b"GET /canary HTTP/1.1\r\nHost: t\r\n\r\n";

/// A vector's verdict: what the client saw and what the upstream received before the canary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub statuses: Vec<u16>,
    pub upstream: Vec<u8>,
    /// Requests the upstream parsed, canary excluded.
    pub upstream_requests: usize,
    /// The canary's status on a fresh connection (200 unless the vector broke something).
    pub canary: Vec<u16>,
}

/// Runs one vector against `target` with `recorder` as its upstream.
pub async fn run(vector: &Vector, target: SocketAddr, recorder: &Recorder) -> Verdict {
    recorder.clear();
    let seen = exchange(
        target,
        &expand(&vector.send),
        vector.statuses.len(),
        Duration::from_millis(200),
        Duration::from_secs(5),
    )
    .await;
    let before_canary = recorder.received();
    let upstream_requests = recorder.requests();
    let canary = exchange(
        target,
        CANARY,
        1,
        Duration::from_millis(50),
        Duration::from_secs(5),
    )
    .await;
    // Anything the upstream got beyond the vector and the canary was smuggled in with them.
    let all = recorder.received();
    let mut upstream = before_canary.clone();
    let extra = all.get(before_canary.len()..).unwrap_or_default();
    let canary_at = find(extra, b"GET /canary ").unwrap_or(extra.len());
    upstream.extend_from_slice(&extra[..canary_at]);
    Verdict {
        statuses: seen.statuses,
        upstream,
        upstream_requests,
        canary: canary.statuses,
    }
}
