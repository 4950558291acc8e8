//! Response compression settings after validation (`[proxy] compress` and a route's
//! `compress`): the encodings in the server's order of preference, the smallest body worth
//! compressing, the media types compressed and each encoder's level. A route holds the settings
//! that apply to it, already merged with `[proxy]`'s, so a request reads one value.

/// A content coding the proxy can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Zstd,
    Br,
    Gzip,
}

impl Encoding {
    /// Every coding, in the default order of preference: zstd compresses about as well as
    /// brotli at a fraction of its CPU, and gzip is what every client understands.
    pub const ALL: [Encoding; 3] = [Encoding::Zstd, Encoding::Br, Encoding::Gzip];

    /// The token of `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::Br => "br",
            Encoding::Gzip => "gzip",
        }
    }

    /// The coding a token names (case-insensitive, RFC 9110 section 8.4.1); `x-gzip` is gzip.
    pub fn parse(token: &str) -> Option<Encoding> {
        Encoding::ALL
            .into_iter()
            .find(|e| token.eq_ignore_ascii_case(e.token()))
            .or_else(|| {
                token
                    .eq_ignore_ascii_case("x-gzip")
                    .then_some(Encoding::Gzip)
            })
    }

    /// The levels the encoder accepts. zstd stops at 19: its "ultra" levels 20 to 22 need
    /// windows of up to 128 MiB per response.
    pub fn levels(self) -> (i64, i64) {
        match self {
            Encoding::Zstd => (1, 19),
            Encoding::Br => (0, 11),
            Encoding::Gzip => (1, 9),
        }
    }

    /// nginx's and ngx_brotli's usual choices: gzip 6 (zlib's default), brotli 4 (streaming
    /// at a CPU cost near gzip 6's), zstd 3 (zstd's default).
    pub fn default_level(self) -> i32 {
        match self {
            Encoding::Zstd => 3,
            Encoding::Br => 4,
            Encoding::Gzip => 6,
        }
    }

    /// The place of this coding in `Encoding::ALL` (and in per-coding arrays).
    pub fn index(self) -> usize {
        match self {
            Encoding::Zstd => 0,
            Encoding::Br => 1,
            Encoding::Gzip => 2,
        }
    }
}

/// One entry of `types`: `type/subtype` or `type/*`, lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRange {
    pub kind: String,
    /// `None` for `*`.
    pub subtype: Option<String>,
}

impl MediaRange {
    /// Parses `type/subtype` or `type/*` (RFC 9110 tokens); `None` if it is neither.
    pub fn parse(text: &str) -> Option<MediaRange> {
        let lower = text.trim().to_ascii_lowercase();
        let (kind, subtype) = lower.split_once('/')?;
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        };
        if !token(kind) {
            return None;
        }
        let subtype = match subtype {
            "*" => None,
            s if token(s) => Some(s.to_string()),
            _ => return None,
        };
        Some(MediaRange {
            kind: kind.to_string(),
            subtype,
        })
    }

    /// Whether a `Content-Type` value (parameters such as `charset` ignored) is in this range.
    pub fn matches(&self, content_type: &str) -> bool {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let Some((kind, subtype)) = essence.split_once('/') else {
            return false;
        };
        kind.eq_ignore_ascii_case(&self.kind)
            && self
                .subtype
                .as_deref()
                .is_none_or(|own| subtype.eq_ignore_ascii_case(own))
    }
}

impl serde::Serialize for MediaRange {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let subtype = self.subtype.as_deref().unwrap_or("*");
        serializer.serialize_str(&format!("{}/{subtype}", self.kind))
    }
}

/// The media types compressed when `types` is not given: text, and the structured and script
/// formats that are text in all but name. Images, video and archives are compressed already.
pub const DEFAULT_TYPES: [&str; 7] = [
    "text/*",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/wasm",
    "application/problem+json",
    "image/svg+xml",
];

/// The smallest body compressed when `min_bytes` is not given: below about 1 KiB the encoded
/// body saves less than a packet while the encoder's state costs as much as for a large one.
pub const DEFAULT_MIN_BYTES: u64 = 1024;

/// Validated `compress` settings; a route with compression off has none.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CompressSettings {
    /// The server's order of preference, never empty.
    pub encodings: Vec<Encoding>,
    /// Bodies shorter than this (by `Content-Length`) are sent as they are.
    pub min_bytes: u64,
    pub types: Vec<MediaRange>,
    /// Each encoding's level, by `Encoding::index`.
    levels: [i32; 3],
}

impl CompressSettings {
    /// `levels` in `Encoding::ALL`'s order.
    pub fn new(
        encodings: Vec<Encoding>,
        min_bytes: u64,
        types: Vec<MediaRange>,
        levels: [i32; 3],
    ) -> CompressSettings {
        CompressSettings {
            encodings,
            min_bytes,
            types,
            levels,
        }
    }

    pub fn level(&self, encoding: Encoding) -> i32 {
        self.levels[encoding.index()]
    }

    /// Whether a response of this `Content-Type` is compressed; one without is not (its
    /// bytes could be anything, nginx's rule too).
    pub fn compresses_type(&self, content_type: Option<&str>) -> bool {
        content_type.is_some_and(|ct| self.types.iter().any(|range| range.matches(ct)))
    }
}
