//! One response body's encoder. The encoder holds only its own window, never the body, and
//! gives out its blocks as they fill: memory stays flat whatever the response's length. A
//! streamed response (server-sent events, or one whose upstream says `X-Accel-Buffering: no`)
//! is also flushed after each chunk (a sync flush: the dictionary is kept), so each event
//! reaches the client as the upstream sends it. Other responses are not: a flush ends the
//! current deflate block, and flushing every upstream read cost about 10% more CPU per MB
//! (4 KiB reads, gzip level 6) and a 3% larger body, which kept gzip behind nginx's.

use crate::config::compress::Encoding;
use bytes::Bytes;
use std::io::Write;

/// brotli's window, 2^19 = 512 KiB (ngx_brotli's default): its default of 4 MiB would be held
/// by every response being compressed, for a few percent of size.
const BROTLI_WINDOW_BITS: u32 = 19;
/// brotli's internal input buffer.
const BROTLI_BUFFER: usize = 16 * 1024;

enum Inner {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    // Boxed: the brotli writer's state is a few kilobytes inline.
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

/// When the encoder hands out what it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// After every chunk, for a response whose parts must not wait (events).
    EachChunk,
    /// As the encoder's blocks fill, and at the end.
    WhenFull,
}

impl Flush {
    /// The policy for a response: events and responses whose upstream asks not to be
    /// buffered (`X-Accel-Buffering: no`, nginx's convention) are flushed chunk by chunk.
    pub fn for_response(content_type: Option<&str>, accel_buffering: Option<&str>) -> Flush {
        let events = content_type.is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/event-stream"))
        });
        let unbuffered = accel_buffering.is_some_and(|v| v.trim().eq_ignore_ascii_case("no"));
        if events || unbuffered {
            Flush::EachChunk
        } else {
            Flush::WhenFull
        }
    }
}

/// A streaming encoder with its byte counts.
pub struct Encoder {
    inner: Option<Inner>,
    flush: Flush,
    encoding: Encoding,
    bytes_in: u64,
    bytes_out: u64,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("encoding", &self.encoding)
            .field("flush", &self.flush)
            .field("bytes_in", &self.bytes_in)
            .field("bytes_out", &self.bytes_out)
            .finish()
    }
}

impl Encoder {
    /// An encoder at `level` (validated against `Encoding::levels` with the config).
    pub fn new(encoding: Encoding, level: i32, flush: Flush) -> std::io::Result<Encoder> {
        let inner = match encoding {
            Encoding::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level.clamp(0, 9) as u32),
            )),
            Encoding::Br => Inner::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                level.clamp(0, 11) as u32,
                BROTLI_WINDOW_BITS,
            ))),
            Encoding::Zstd => Inner::Zstd(zstd::stream::write::Encoder::new(Vec::new(), level)?),
        };
        Ok(Encoder {
            inner: Some(inner),
            flush,
            encoding,
            bytes_in: 0,
            bytes_out: 0,
        })
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Compresses one chunk and returns what the encoder produced for it (possibly empty).
    pub fn encode(&mut self, chunk: &[u8]) -> std::io::Result<Bytes> {
        let Some(inner) = self.inner.as_mut() else {
            return Err(finished());
        };
        let flush = self.flush == Flush::EachChunk;
        let out = match inner {
            Inner::Gzip(writer) => {
                writer.write_all(chunk)?;
                if flush {
                    writer.flush()?;
                }
                std::mem::take(writer.get_mut())
            }
            Inner::Brotli(writer) => {
                writer.write_all(chunk)?;
                if flush {
                    writer.flush()?;
                }
                std::mem::take(writer.get_mut())
            }
            Inner::Zstd(writer) => {
                writer.write_all(chunk)?;
                if flush {
                    writer.flush()?;
                }
                std::mem::take(writer.get_mut())
            }
        };
        self.bytes_in += chunk.len() as u64;
        self.bytes_out += out.len() as u64;
        Ok(Bytes::from(out))
    }

    /// Ends the stream: the encoder's last bytes (its trailer).
    pub fn finish(&mut self) -> std::io::Result<Bytes> {
        let out = match self.inner.take() {
            None => return Err(finished()),
            Some(Inner::Gzip(writer)) => writer.finish()?,
            Some(Inner::Brotli(writer)) => writer.into_inner(),
            Some(Inner::Zstd(writer)) => writer.finish()?,
        };
        self.bytes_out += out.len() as u64;
        Ok(Bytes::from(out))
    }

    pub fn is_finished(&self) -> bool {
        self.inner.is_none()
    }

    /// Bytes taken in and given out so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.bytes_in, self.bytes_out)
    }
}

fn finished() -> std::io::Error {
    std::io::Error::other("the compressed stream already ended")
}
