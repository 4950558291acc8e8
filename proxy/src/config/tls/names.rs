//! The shape of a `server_names` entry: a DNS name, or `*.` and a DNS name (a wildcard
//! matching exactly one more label, as browsers do).

/// The name in the form the SNI table keys it by (lowercase, no trailing dot).
///
/// # Errors
/// A sentence saying what is wrong with it.
pub fn normalize_server_name(text: &str) -> Result<String, String> {
    let name = text.trim_end_matches('.').to_ascii_lowercase();
    let host = name.strip_prefix("*.").unwrap_or(&name);
    if host.contains('*') {
        return Err(format!(
            "{text:?}: a wildcard may only be the whole first label, as in \"*.example.com\""
        ));
    }
    if host.is_empty() || host.len() > 253 {
        return Err(format!("{text:?}: a DNS name has 1 to 253 characters"));
    }
    for label in host.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(format!(
                "{text:?}: {label:?} is not a DNS label (letters, digits and '-', 1 to 63 of them)"
            ));
        }
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::normalize_server_name;

    #[test]
    fn names_are_normalized_or_refused_with_a_reason() {
        let cases: &[(&str, Option<&str>)] = &[
            ("localhost", Some("localhost")),
            ("Lab.Test.", Some("lab.test")),
            ("*.lab.test", Some("*.lab.test")),
            ("*.localhost", Some("*.localhost")),
            ("a.*.test", None),
            ("*", None),
            ("**.test", None),
            ("", None),
            ("-bad.test", None),
            ("sp ace.test", None),
            ("a..test", None),
        ];
        for (text, expected) in cases {
            let got = normalize_server_name(text);
            match expected {
                Some(name) => assert_eq!(got.as_deref(), Ok(*name), "{text}"),
                None => assert!(got.is_err(), "{text} should be refused, got {got:?}"),
            }
        }
    }
}
