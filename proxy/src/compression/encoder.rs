//! One response body's encoder. Each chunk is compressed and flushed at once (a sync flush:
//! the dictionary is kept, so the cost in size is a few bytes per chunk), so a streamed
//! response (server-sent events, a long download) reaches the client as the upstream sends
//! it, and the encoder holds only its own window, never the body: memory stays flat whatever
//! the response's length.

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

/// A streaming encoder with its byte counts.
pub struct Encoder {
    inner: Option<Inner>,
    encoding: Encoding,
    bytes_in: u64,
    bytes_out: u64,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("encoding", &self.encoding)
            .field("bytes_in", &self.bytes_in)
            .field("bytes_out", &self.bytes_out)
            .finish()
    }
}

impl Encoder {
    /// An encoder at `level` (validated against `Encoding::levels` with the config).
    pub fn new(encoding: Encoding, level: i32) -> std::io::Result<Encoder> {
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
        let out = match inner {
            Inner::Gzip(writer) => {
                writer.write_all(chunk)?;
                writer.flush()?;
                std::mem::take(writer.get_mut())
            }
            Inner::Brotli(writer) => {
                writer.write_all(chunk)?;
                writer.flush()?;
                std::mem::take(writer.get_mut())
            }
            Inner::Zstd(writer) => {
                writer.write_all(chunk)?;
                writer.flush()?;
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
