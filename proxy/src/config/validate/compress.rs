//! `compress` in `[proxy]` and in each route. A route's table fills its missing keys from
//! `[proxy]`'s, then from the defaults, so a route can change one key (`level`, `types`) and
//! keep the rest; `encodings = []` turns compression off for the route. Problems in
//! `[proxy]`'s keys are reported once, under `proxy.compress`, not again for each route that
//! inherits them.

use crate::config::compress::{
    CompressSettings, Encoding, MediaRange, DEFAULT_MIN_BYTES, DEFAULT_TYPES,
};
use crate::config::file::{ByteSize, FileCompress, FileLevel};
use crate::config::units::parse_bytes;
use scalelab_common::problem::Problems;

/// One table keys are read from: its TOML path, and whether its problems are reported here.
struct Layer<'a> {
    path: String,
    file: &'a FileCompress,
    report: bool,
}

/// `[proxy] compress`: `None` when absent or `encodings = []`.
pub fn validate_proxy_compress(
    file: Option<&FileCompress>,
    problems: &mut Problems,
) -> Option<CompressSettings> {
    let layer = Layer {
        path: "proxy.compress".to_string(),
        file: file?,
        report: true,
    };
    settings(&[layer], problems)
}

/// A route's effective settings: its own keys, then `[proxy]`'s, then the defaults.
pub fn validate_route_compress(
    base: &str,
    route: Option<&FileCompress>,
    proxy: Option<&FileCompress>,
    problems: &mut Problems,
) -> Option<CompressSettings> {
    let mut layers = Vec::with_capacity(2);
    if let Some(file) = route {
        layers.push(Layer {
            path: format!("{base}.compress"),
            file,
            report: true,
        });
    }
    if let Some(file) = proxy {
        // Reported once already, by `validate_proxy_compress`.
        layers.push(Layer {
            path: "proxy.compress".to_string(),
            file,
            report: false,
        });
    }
    if layers.is_empty() {
        return None;
    }
    settings(&layers, problems)
}

/// The first layer that sets a key, with the key's value.
fn first<'a, T>(
    layers: &'a [Layer<'a>],
    get: impl Fn(&'a FileCompress) -> Option<T>,
) -> Option<(&'a Layer<'a>, T)> {
    layers
        .iter()
        .find_map(|layer| get(layer.file).map(|value| (layer, value)))
}

/// Reads each key from the first layer that sets it; `None` when the encodings are empty.
fn settings(layers: &[Layer<'_>], problems: &mut Problems) -> Option<CompressSettings> {
    let mut unreported = Problems::new();
    let encodings = match first(layers, |f| f.encodings.as_ref()) {
        None => Encoding::ALL.to_vec(),
        Some((layer, list)) => encodings(&layer.path, list, sink(layer, problems, &mut unreported)),
    };
    let min_bytes = match first(layers, |f| f.min_bytes.as_ref()) {
        None => DEFAULT_MIN_BYTES,
        Some((layer, size)) => min_bytes(
            &format!("{}.min_bytes", layer.path),
            size,
            sink(layer, problems, &mut unreported),
        ),
    };
    let types = match first(layers, |f| f.types.as_ref()) {
        None => DEFAULT_TYPES
            .iter()
            .filter_map(|text| MediaRange::parse(text))
            .collect(),
        Some((layer, list)) => types(&layer.path, list, sink(layer, problems, &mut unreported)),
    };
    let levels = match first(layers, |f| f.level.as_ref()) {
        None => Encoding::ALL.map(Encoding::default_level),
        Some((layer, level)) => levels(
            &layer.path,
            level,
            &encodings,
            sink(layer, problems, &mut unreported),
        ),
    };
    if encodings.is_empty() {
        return None;
    }
    Some(CompressSettings::new(encodings, min_bytes, types, levels))
}

fn sink<'s>(
    layer: &Layer<'_>,
    problems: &'s mut Problems,
    unreported: &'s mut Problems,
) -> &'s mut Problems {
    if layer.report {
        problems
    } else {
        unreported
    }
}

fn encodings(path: &str, list: &[String], problems: &mut Problems) -> Vec<Encoding> {
    let mut valid: Vec<Encoding> = Vec::new();
    for (i, token) in list.iter().enumerate() {
        let at = format!("{path}.encodings[{i}]");
        match Encoding::parse(token) {
            Some(encoding) if valid.contains(&encoding) => {
                problems.push(at, format!("{token:?} is listed twice"));
            }
            Some(encoding) => valid.push(encoding),
            None => problems.push(
                at,
                format!("unknown encoding {token:?}; valid: \"zstd\", \"br\", \"gzip\""),
            ),
        }
    }
    valid
}

/// `min_bytes` may be 0 (compress every body), unlike the other sizes.
fn min_bytes(path: &str, size: &ByteSize, problems: &mut Problems) -> u64 {
    match size {
        ByteSize::Bytes(n) if *n >= 0 => *n as u64,
        ByteSize::Bytes(n) => {
            problems.push(path, format!("{n} must not be negative"));
            DEFAULT_MIN_BYTES
        }
        ByteSize::Text(text) => parse_bytes(text).unwrap_or_else(|message| {
            problems.push(path, message);
            DEFAULT_MIN_BYTES
        }),
    }
}

fn types(path: &str, list: &[String], problems: &mut Problems) -> Vec<MediaRange> {
    if list.is_empty() {
        problems.push(
            format!("{path}.types"),
            "an empty list compresses nothing: set encodings = [] to turn compression off",
        );
    }
    list.iter()
        .enumerate()
        .filter_map(|(i, text)| {
            let parsed = MediaRange::parse(text);
            if parsed.is_none() {
                problems.push(
                    format!("{path}.types[{i}]"),
                    format!("{text:?} is not a media type: \"type/subtype\" or \"type/*\""),
                );
            }
            parsed
        })
        .collect()
}

/// `level = N` must suit every listed encoding; `level = { gzip, br, zstd }` each its own.
fn levels(
    path: &str,
    level: &FileLevel,
    encodings: &[Encoding],
    problems: &mut Problems,
) -> [i32; 3] {
    let mut levels = Encoding::ALL.map(Encoding::default_level);
    let mut check = |encoding: Encoding, value: i64, at: String, problems: &mut Problems| {
        let (low, high) = encoding.levels();
        if value < low || value > high {
            problems.push(
                at,
                format!(
                    "{value} is outside {}'s levels {low}..={high}",
                    encoding.token()
                ),
            );
        } else {
            levels[encoding.index()] = value as i32;
        }
    };
    match level {
        FileLevel::All(value) => {
            for encoding in encodings {
                check(*encoding, *value, format!("{path}.level"), problems);
            }
        }
        FileLevel::Each(each) => {
            for (encoding, value) in [
                (Encoding::Gzip, each.gzip),
                (Encoding::Br, each.br),
                (Encoding::Zstd, each.zstd),
            ] {
                if let Some(value) = value {
                    let at = format!("{path}.level.{}", encoding.token());
                    check(encoding, value, at, problems);
                }
            }
        }
    }
    levels
}
