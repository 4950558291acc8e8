use crate::config::parse_in;
use crate::config::tls::TlsVersion;
use scalelab_common::problem::Problem;
use std::path::Path;

/// A self-signed pair for `names`, written as `STEM.pem` and `STEM-key.pem` in `dir`.
fn pair(dir: &Path, stem: &str, names: &[&str]) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let made = rcgen::generate_simple_self_signed(names).unwrap();
    std::fs::write(dir.join(format!("{stem}.pem")), made.cert.pem()).unwrap();
    std::fs::write(
        dir.join(format!("{stem}-key.pem")),
        made.key_pair.serialize_pem(),
    )
    .unwrap();
}

const HEAD: &str = "[proxy]\nlisten = [\"127.0.0.1:8000\"]\ntls_listen = [\"127.0.0.1:8443\"]\n";

fn entry(cert: &str, key: &str, names: &str) -> String {
    format!("[[tls.certificates]]\ncert = \"{cert}\"\nkey = \"{key}\"\nserver_names = [{names}]\n")
}

fn found(problems: &[Problem]) -> Vec<(String, String)> {
    problems
        .iter()
        .map(|p| (p.path.clone(), p.message.clone()))
        .collect()
}

#[test]
fn certificates_load_relative_to_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    pair(&dir.path().join("certs"), "lab", &["localhost"]);
    let text = format!(
        "{HEAD}[tls]\nmin_version = \"1.3\"\n{}",
        entry(
            "certs/lab.pem",
            "certs/lab-key.pem",
            "\"LocalHost\", \"*.lab.test\""
        )
    );
    let config = parse_in(&text, dir.path()).expect("valid");
    let tls = config.tls.expect("[tls]");
    assert_eq!(tls.min_version, TlsVersion::Tls13);
    assert_eq!(config.proxy.tls_listen.len(), 1);
    let certificate = &tls.certificates[0];
    assert_eq!(certificate.cert, dir.path().join("certs/lab.pem"));
    assert_eq!(certificate.server_names, ["localhost", "*.lab.test"]);
    assert_eq!(certificate.sha256.len(), 64);
    // rcgen's default validity ends in 4096: far from the warning.
    assert!(!tls.summary(0).contains("warning"), "{}", tls.summary(0));
    assert!(tls
        .summary(certificate.not_after - 3 * 86_400)
        .contains("warning: tls.certificates[0]"));
}

#[test]
fn every_tls_problem_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    pair(dir.path(), "a", &["localhost"]);
    pair(dir.path(), "b", &["b.test"]);
    std::fs::write(dir.path().join("broken.pem"), "not pem\n").unwrap();
    let text = format!(
        "{HEAD}[tls]\nmin_version = \"1.1\"\n{}{}{}{}{}",
        // 0: fine, the default.
        entry("a.pem", "a-key.pem", "\"localhost\""),
        // 1: its key is another certificate's.
        entry("a.pem", "b-key.pem", "\"one.test\""),
        // 2: a name already taken, and a bad wildcard.
        entry("b.pem", "b-key.pem", "\"LOCALHOST\", \"a.*.test\""),
        // 3: no file, and no names.
        entry("missing.pem", "b-key.pem", ""),
        // 4: not PEM.
        entry("broken.pem", "b-key.pem", "\"four.test\""),
    );
    let problems = found(&parse_in(&text, dir.path()).expect_err("invalid"));
    let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "tls.min_version",
            "tls.certificates[1].key",
            "tls.certificates[2].server_names[0]",
            "tls.certificates[2].server_names[1]",
            "tls.certificates[3].server_names",
            "tls.certificates[3].cert",
            "tls.certificates[4].cert",
        ],
        "{problems:#?}"
    );
    let message = |i: usize| problems[i].1.as_str();
    assert!(
        message(1).contains("does not match the certificate"),
        "{}",
        message(1)
    );
    assert!(message(1).contains("b-key.pem"), "{}", message(1));
    assert!(message(2).contains("already a name of tls.certificates[0]"));
    assert!(message(5).contains("missing.pem") && message(5).contains("cannot read it"));
    assert!(
        message(6).contains("no CERTIFICATE block"),
        "{}",
        message(6)
    );
}

#[test]
fn a_tls_listener_needs_a_certificate_and_no_tls_needs_none() {
    let problems = found(&parse_in(HEAD, Path::new(".")).expect_err("invalid"));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, "proxy.tls_listen");
    let plain = parse_in("[proxy]\nlisten = [\"127.0.0.1:8000\"]\n", Path::new(".")).unwrap();
    assert!(plain.tls.is_none() && plain.proxy.tls_listen.is_empty());
}
