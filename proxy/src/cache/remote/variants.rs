//! The variants marker: what the shared tier keeps under a key whose responses vary (`Vary`),
//! so that a proxy that has not yet learnt it varies finds out in its first lookup and asks for
//! the variant its request selects. A version byte first, then the header names, one a line
//! (header names are tokens, so they hold no line break).

/// The format written now; a marker of another version is ignored (a miss), and the next store
/// replaces it.
const VERSION: u8 = 1;

/// The marker for a key varying on `names`.
pub fn encode(names: &[String]) -> Vec<u8> {
    let mut bytes = vec![VERSION];
    bytes.extend_from_slice(names.join("\n").as_bytes());
    bytes
}

/// The header names in a marker; `None` for an empty, unknown or damaged one.
pub fn decode(bytes: &[u8]) -> Option<Vec<String>> {
    let (&version, rest) = bytes.split_first()?;
    if version != VERSION || rest.is_empty() {
        return None;
    }
    let text = std::str::from_utf8(rest).ok()?;
    Some(text.split('\n').map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::{decode, encode};

    #[test]
    fn a_marker_reads_back_its_header_names() {
        let names = |list: &[&str]| list.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        for list in [
            &["accept-language"][..],
            &["accept-language", "accept-encoding"],
        ] {
            assert_eq!(decode(&encode(&names(list))), Some(names(list)));
        }
        assert_eq!(encode(&names(&["a", "b"])), b"\x01a\nb");
        for unreadable in [&b""[..], b"\x01", b"\x02a", b"\x01\xff"] {
            assert_eq!(decode(unreadable), None, "{unreadable:?}");
        }
    }
}
