//! `Accept-Encoding` (RFC 9110 section 12.5.3) against the encodings a route offers. Pure.
//!
//! Each offered coding gets the client's weight for it: its own entry's `q`, else the `*`
//! entry's, else 0 (not acceptable). The highest weight above 0 wins; on a tie the server's
//! order decides. A client whose own `identity` entry weighs more than every offered coding
//! gets identity. With no `Accept-Encoding` at all the response is not encoded: RFC 9110 allows
//! any coding then, but a client that says nothing (curl without `--compressed`, most scripts)
//! expects plain bytes, as nginx and Caddy assume too. When every coding and identity are
//! refused the response goes out unencoded rather than as a 406 (nginx does the same).

use crate::config::compress::Encoding;

/// A weight in thousandths (`q=0.5` is 500), so ties compare exactly.
type Weight = u16;

/// The coding to send for this request's `Accept-Encoding` field lines (`None`: identity).
pub fn choose<'a>(
    accept_encoding: impl IntoIterator<Item = &'a str>,
    offered: &[Encoding],
) -> Option<Encoding> {
    let mut any = false;
    let mut star: Option<Weight> = None;
    let mut identity: Option<Weight> = None;
    // The client's weight for each coding, by `Encoding::index`.
    let mut weights: [Option<Weight>; 3] = [None; 3];
    for line in accept_encoding {
        any = true;
        for entry in line.split(',') {
            let mut parts = entry.split(';');
            let coding = parts.next().unwrap_or("").trim();
            if coding.is_empty() {
                continue;
            }
            let Some(weight) = weight(parts) else {
                // A malformed weight: the entry says nothing we can trust.
                continue;
            };
            if coding == "*" {
                star = Some(star.map_or(weight, |w| w.max(weight)));
            } else if coding.eq_ignore_ascii_case("identity") {
                identity = Some(weight);
            } else if let Some(encoding) = Encoding::parse(coding) {
                let slot = &mut weights[encoding.index()];
                *slot = Some(slot.map_or(weight, |w| w.max(weight)));
            }
        }
    }
    if !any {
        return None;
    }
    let mut best: Option<(Encoding, Weight)> = None;
    for encoding in offered {
        let weight = weights[encoding.index()].or(star).unwrap_or(0);
        if weight > 0 && best.is_none_or(|(_, top)| weight > top) {
            best = Some((*encoding, weight));
        }
    }
    let (encoding, weight) = best?;
    // Only an `identity` entry of its own can outweigh a coding the client listed: identity
    // is acceptable by default, but not preferred by default.
    (weight >= identity.unwrap_or(0)).then_some(encoding)
}

/// The `q` parameter of one entry (1 when absent); `None` when it is malformed.
fn weight<'a>(parameters: impl Iterator<Item = &'a str>) -> Option<Weight> {
    let mut weight = 1000;
    for parameter in parameters {
        let (name, value) = parameter.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("q") {
            weight = qvalue(value.trim())?;
        }
    }
    Some(weight)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`.
fn qvalue(text: &str) -> Option<Weight> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: Weight = 0;
    for (digit, scale) in fraction.bytes().zip([100, 10, 1]) {
        thousandths += Weight::from(digit - b'0') * scale;
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}
