use super::plan::{merged_vary, no_transform, weak_etag};
use super::*;
use crate::config::compress::MediaRange;
use crate::config::{parse, ConfigError};
use std::io::Read;
use Encoding::{Br, Gzip, Zstd};

const ALL: [Encoding; 3] = [Zstd, Br, Gzip];

#[test]
fn negotiation_table() {
    let cases: &[(&[&str], &[Encoding], Option<Encoding>)] = &[
        // No field: identity (a client that says nothing expects plain bytes).
        (&[], &ALL, None),
        (&[""], &ALL, None),
        (&["gzip"], &ALL, Some(Gzip)),
        (&["GZip"], &ALL, Some(Gzip)),
        (&["x-gzip"], &ALL, Some(Gzip)),
        // Equal weights: the server's order decides.
        (&["gzip, br, zstd"], &ALL, Some(Zstd)),
        (&["gzip, br"], &ALL, Some(Br)),
        (&["gzip, br"], &[Gzip, Br], Some(Gzip)),
        // Weights beat the server's order.
        (&["zstd;q=0.5, gzip;q=0.8"], &ALL, Some(Gzip)),
        (&["zstd;q=0.5, gzip;q=0.8, br;q=0.9"], &ALL, Some(Br)),
        (&["br;q=0.1"], &ALL, Some(Br)),
        // q=0 refuses.
        (&["gzip;q=0"], &ALL, None),
        (&["gzip;q=0, br"], &ALL, Some(Br)),
        (&["gzip;q=0.000"], &ALL, None),
        (&["gzip; Q=0"], &ALL, None),
        // Only offered codings count.
        (&["deflate, compress"], &ALL, None),
        (&["br"], &[Gzip], None),
        // `*` gives its weight to every coding not listed.
        (&["*"], &ALL, Some(Zstd)),
        (&["*;q=0.5, zstd;q=0"], &ALL, Some(Br)),
        (&["*;q=0"], &ALL, None),
        (&["gzip;q=0.4, *;q=0.6"], &[Gzip, Br], Some(Br)),
        // identity preferred over every coding: identity; equal: the server compresses.
        (&["gzip;q=0.5, identity"], &ALL, None),
        (&["gzip;q=0.5, identity;q=0.5"], &ALL, Some(Gzip)),
        // identity;q=0 refuses identity, not the codings.
        (&["identity;q=0, gzip"], &ALL, Some(Gzip)),
        // Nothing acceptable at all: identity anyway (no 406).
        (&["identity;q=0"], &ALL, None),
        (&["*;q=0, identity;q=0"], &ALL, None),
        // Several field lines are one list.
        (&["deflate", "br;q=0.7", "gzip;q=0.9"], &ALL, Some(Gzip)),
        // Malformed weights make their entry say nothing.
        (&["gzip;q=2, br"], &ALL, Some(Br)),
        (&["gzip;q=0.1234"], &ALL, None),
        (&["gzip;q=abc"], &ALL, None),
        (&["gzip;q"], &ALL, None),
        (&["gzip;q=1.0"], &ALL, Some(Gzip)),
        (&["gzip;q=1.5"], &ALL, None),
        (&["  gzip ;  q=0.3 , , br ; q=0.2"], &ALL, Some(Gzip)),
    ];
    for (lines, offered, expected) in cases {
        assert_eq!(
            choose(lines.iter().copied(), offered),
            *expected,
            "{lines:?} offered {offered:?}"
        );
    }
}

fn settings() -> CompressSettings {
    CompressSettings::new(
        ALL.to_vec(),
        1024,
        vec![
            MediaRange::parse("text/*").unwrap(),
            MediaRange::parse("application/json").unwrap(),
        ],
        [3, 4, 6],
    )
}

fn json(length: Option<u64>) -> ResponseFacts<'static> {
    ResponseFacts {
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        content_length: length,
        ..ResponseFacts::default()
    }
}

#[test]
fn plan_table() {
    let gzip: &[&str] = &["gzip"];
    let get = RequestFacts {
        head: false,
        http10: false,
        accept_encoding: gzip,
    };
    let same = |skip| Plan {
        vary: false,
        outcome: Err(skip),
    };
    let varies = |outcome| Plan {
        vary: true,
        outcome,
    };
    let with = |f: fn(&mut ResponseFacts<'static>)| {
        let mut facts = json(Some(4096));
        f(&mut facts);
        facts
    };
    let cases: Vec<(RequestFacts, ResponseFacts, Plan)> = vec![
        (get, json(Some(4096)), varies(Ok(Gzip))),
        // Unknown length: compressed.
        (get, json(None), varies(Ok(Gzip))),
        (get, json(Some(1024)), varies(Ok(Gzip))),
        (get, json(Some(1023)), same(Skip::Small)),
        (get, json(Some(0)), same(Skip::Small)),
        (get, with(|f| f.status = 204), same(Skip::Status)),
        (get, with(|f| f.status = 304), same(Skip::Status)),
        (get, with(|f| f.status = 206), same(Skip::Range)),
        (get, with(|f| f.status = 404), varies(Ok(Gzip))),
        (
            get,
            with(|f| f.content_encoding = Some("br")),
            same(Skip::Encoded),
        ),
        (
            get,
            with(|f| f.content_encoding = Some("identity")),
            varies(Ok(Gzip)),
        ),
        (
            get,
            with(|f| f.no_transform = true),
            same(Skip::NoTransform),
        ),
        (get, with(|f| f.content_range = true), same(Skip::Range)),
        (
            get,
            with(|f| f.content_type = Some("image/png")),
            same(Skip::Type),
        ),
        (get, with(|f| f.content_type = None), same(Skip::Type)),
        (
            get,
            with(|f| f.content_type = Some("TEXT/HTML")),
            varies(Ok(Gzip)),
        ),
        (
            RequestFacts { head: true, ..get },
            json(Some(4096)),
            varies(Err(Skip::Head)),
        ),
        (
            RequestFacts {
                http10: true,
                ..get
            },
            json(Some(4096)),
            varies(Err(Skip::Http10)),
        ),
        (
            RequestFacts {
                accept_encoding: &[],
                ..get
            },
            json(Some(4096)),
            varies(Err(Skip::Client)),
        ),
    ];
    for (request, response, expected) in cases {
        assert_eq!(
            plan(&settings(), request, response),
            expected,
            "{request:?} {response:?}"
        );
    }
}

#[test]
fn header_helpers() {
    assert!(no_transform(["max-age=60, No-Transform"]));
    assert!(no_transform(["public", "no-transform"]));
    assert!(!no_transform(["no-store, no-cache"]));
    assert_eq!(merged_vary([]), Some("Accept-Encoding".to_string()));
    assert_eq!(
        merged_vary(["Origin", "Cookie, Accept-Language"]),
        Some("Origin, Cookie, Accept-Language, Accept-Encoding".to_string())
    );
    assert_eq!(merged_vary(["origin, accept-encoding"]), None);
    assert_eq!(merged_vary(["*"]), None);
    assert_eq!(weak_etag("\"abc\"").as_deref(), Some("W/\"abc\""));
    assert_eq!(weak_etag("W/\"abc\"").as_deref(), Some("W/\"abc\""));
    assert_eq!(weak_etag("abc"), None);
    assert_eq!(weak_etag("\""), None);
    let range = MediaRange::parse("Text/*").unwrap();
    assert!(range.matches("text/plain; charset=utf-8"));
    assert!(!range.matches("application/text"));
    assert!(MediaRange::parse("json").is_none());
    assert!(MediaRange::parse("application/").is_none());
    assert!(MediaRange::parse("*/json").is_none());
}

fn decode(encoding: Encoding, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        Gzip => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap();
        }
        Br => {
            brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Zstd => out = zstd::decode_all(bytes).unwrap(),
    }
    out
}

/// Every encoder's stream, fed in uneven chunks, decodes to the input with the real decoders,
/// under both flush policies. Flushed each chunk, what came out so far holds the whole input
/// so far (an event is not held back); flushed when full, the body is no larger.
#[test]
fn encoders_round_trip_chunk_by_chunk() {
    let input: Vec<u8> = (0..300_000u32)
        .flat_map(|i| format!("{{\"id\":{i},\"name\":\"item {}\"}},", i % 97).into_bytes())
        .collect();
    for encoding in ALL {
        let mut sizes = Vec::new();
        for flush in [Flush::EachChunk, Flush::WhenFull] {
            let mut encoder = Encoder::new(encoding, encoding_level(encoding), flush).unwrap();
            let mut encoded = Vec::new();
            let mut fed = 0;
            for size in [1, 10, 1000, 65536, 7].iter().cycle() {
                if fed >= input.len() {
                    break;
                }
                let end = (fed + size).min(input.len());
                encoded.extend_from_slice(&encoder.encode(&input[fed..end]).unwrap());
                fed = end;
            }
            if encoding == Gzip {
                let mut partial = Vec::new();
                let _ = flate2::read::GzDecoder::new(encoded.as_slice()).read_to_end(&mut partial);
                if flush == Flush::EachChunk {
                    assert_eq!(partial, input, "{encoding:?}: flushed output");
                } else {
                    assert!(partial.len() < input.len(), "{encoding:?}: not flushed");
                }
            }
            encoded.extend_from_slice(&encoder.finish().unwrap());
            assert!(encoder.is_finished());
            assert!(encoder.encode(b"x").is_err());
            assert_eq!(decode(encoding, &encoded), input, "{encoding:?} {flush:?}");
            assert!(encoded.len() < input.len() / 4, "{encoding:?} compresses");
            assert_eq!(encoder.counts(), (input.len() as u64, encoded.len() as u64));
            sizes.push(encoded.len());
        }
        assert!(sizes[1] <= sizes[0], "{encoding:?}: {sizes:?}");
    }
}

/// Events and unbuffered responses are flushed chunk by chunk; everything else when full.
#[test]
fn only_streamed_responses_are_flushed_each_chunk() {
    let cases = [
        (Some("text/event-stream"), None, Flush::EachChunk),
        (
            Some("Text/Event-Stream; charset=utf-8"),
            None,
            Flush::EachChunk,
        ),
        (Some("application/json"), Some("no"), Flush::EachChunk),
        (Some("application/json"), Some(" NO "), Flush::EachChunk),
        (Some("application/json"), Some("yes"), Flush::WhenFull),
        (Some("application/json"), None, Flush::WhenFull),
        (Some("text/event-streamer"), None, Flush::WhenFull),
        (None, None, Flush::WhenFull),
    ];
    for (content_type, accel, expected) in cases {
        assert_eq!(
            Flush::for_response(content_type, accel),
            expected,
            "{content_type:?} {accel:?}"
        );
    }
}

fn encoding_level(encoding: Encoding) -> i32 {
    encoding.default_level()
}

fn problems(text: &str) -> Vec<(String, String)> {
    match parse(std::path::Path::new("./config.toml"), text) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { problems, .. }) => {
            problems.into_iter().map(|p| (p.path, p.message)).collect()
        }
        Err(other) => panic!("{other}"),
    }
}

const BASE: &str = "[upstreams.g]\nservers = [{ addr = \"127.0.0.1:5000\" }]\n";

#[test]
fn config_merges_route_over_proxy_over_defaults() {
    let text = format!(
        "[proxy]\ncompress = {{ encodings = [\"gzip\", \"br\"], level = 5, min_bytes = \"2KiB\" }}\n{BASE}\
         [[routes]]\nname = \"a\"\npath = \"/a\"\nupstream = \"g\"\n\
         [[routes]]\nname = \"b\"\npath = \"/b\"\nupstream = \"g\"\ncompress = {{ types = [\"text/csv\"], level = {{ gzip = 9 }} }}\n\
         [[routes]]\nname = \"c\"\npath = \"/c\"\nupstream = \"g\"\ncompress = {{ encodings = [] }}\n"
    );
    let config = parse(std::path::Path::new("./config.toml"), &text).unwrap();
    let routes = config.routes();
    let a = routes[0].compress.as_ref().unwrap();
    assert_eq!(a.encodings, vec![Gzip, Br]);
    assert_eq!(a.min_bytes, 2048);
    assert_eq!((a.level(Gzip), a.level(Br)), (5, 5));
    assert!(a.compresses_type(Some("application/json")));
    let b = routes[1].compress.as_ref().unwrap();
    assert_eq!(b.encodings, vec![Gzip, Br]);
    assert_eq!((b.level(Gzip), b.level(Br)), (9, 4));
    assert!(b.compresses_type(Some("text/csv")));
    assert!(!b.compresses_type(Some("application/json")));
    assert!(routes[2].compress.is_none());
    // Without [proxy] compress, a route's own table starts from the defaults.
    let text = format!("{BASE}[[routes]]\npath = \"/\"\nupstream = \"g\"\ncompress = {{}}\n");
    let config = parse(std::path::Path::new("./config.toml"), &text).unwrap();
    let own = config.routes()[0].compress.as_ref().unwrap();
    assert_eq!(own.encodings, ALL.to_vec());
    assert_eq!(own.min_bytes, 1024);
    assert_eq!((own.level(Zstd), own.level(Br), own.level(Gzip)), (3, 4, 6));
    assert!(config.proxy().compress.is_none());
}

#[test]
fn config_mistakes_have_their_paths() {
    let text = format!(
        "[proxy]\ncompress = {{ encodings = [\"gzip\", \"deflate\", \"gzip\"], level = 10 }}\n{BASE}\
         [[routes]]\npath = \"/a\"\nupstream = \"g\"\n\
         [[routes]]\npath = \"/b\"\nupstream = \"g\"\ncompress = {{ types = [\"json\", \"text/*\"], min_bytes = -1, level = {{ br = 12, zstd = 0 }} }}\n\
         [[routes]]\npath = \"/c\"\nupstream = \"g\"\ncompress = {{ types = [], level = 20, encodings = [\"zstd\"] }}\n"
    );
    let found = problems(&text);
    let paths: Vec<&str> = found.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "proxy.compress.encodings[1]",
            "proxy.compress.encodings[2]",
            "proxy.compress.level",
            "routes[1].compress.min_bytes",
            "routes[1].compress.types[0]",
            "routes[1].compress.level.br",
            "routes[1].compress.level.zstd",
            "routes[2].compress.types",
            "routes[2].compress.level",
        ],
        "{found:#?}"
    );
    assert!(found[0].1.contains("unknown encoding \"deflate\""));
    assert!(found[1].1.contains("listed twice"));
    assert!(found[2].1.contains("10 is outside gzip's levels 1..=9"));
    assert!(found[8].1.contains("20 is outside zstd's levels 1..=19"));
    // Unknown keys are serde's, with their path too.
    let found = problems(&format!(
        "{BASE}[[routes]]\npath = \"/\"\nupstream = \"g\"\ncompress = {{ algorithm = \"gzip\" }}\n"
    ));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].0.starts_with("routes[0].compress"), "{found:?}");
}
