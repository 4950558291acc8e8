use crate::config::transport::UpstreamProtocol;
use crate::config::{parse, ConfigError};
use std::path::Path;

/// A config whose one group `g` ends with `extra`, parsed as if read from `dir/config.toml`.
fn parse_group(dir: &Path, extra: &str) -> Result<crate::config::Config, Vec<(String, String)>> {
    let text = format!(
        "[proxy]\nlisten = [\"127.0.0.1:8000\"]\n\n[upstreams.g]\nservers = [ {{ addr = \"127.0.0.1:5000\" }} ]\n{extra}\n\n[[routes]]\nname = \"r\"\npath = \"/\"\nupstream = \"g\"\n"
    );
    parse(&dir.join("config.toml"), &text).map_err(|error| match error {
        ConfigError::Invalid { problems, .. } => problems
            .into_iter()
            .map(|problem| (problem.path, problem.message))
            .collect(),
        other => panic!("{other}"),
    })
}

fn ca_pem() -> String {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().expect("key");
    params.self_signed(&key).expect("CA").pem()
}

#[test]
fn protocol_and_tls_are_read_with_their_defaults() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("ca.pem"), ca_pem()).expect("write");
    let config = parse_group(dir.path(), "").expect("valid");
    assert_eq!(config.upstreams["g"].protocol, UpstreamProtocol::Http1);
    assert_eq!(config.upstreams["g"].tls, None);

    let config = parse_group(dir.path(), "protocol = \"h2c\"").expect("valid");
    assert_eq!(config.upstreams["g"].protocol, UpstreamProtocol::H2c);

    let config = parse_group(
        dir.path(),
        "protocol = \"h2\"\ntls = { sni = \"api.lab.test\", ca = \"ca.pem\" }",
    )
    .expect("valid");
    let group = &config.upstreams["g"];
    assert_eq!(group.protocol, UpstreamProtocol::H2);
    let tls = group.tls.as_ref().expect("tls");
    assert_eq!((tls.sni.as_str(), tls.verify), ("api.lab.test", true));
    let ca = tls.ca.as_ref().expect("ca");
    assert_eq!(ca.certificates.len(), 1);
    assert_eq!(ca.path, dir.path().join("ca.pem"));
    assert_eq!(ca.sha256.len(), 64);

    // `enabled = false` keeps the table but speaks clear text.
    let config = parse_group(dir.path(), "tls = { enabled = false, sni = \"x\" }").expect("valid");
    assert_eq!(config.upstreams["g"].tls, None);
    // An IP address is a name a certificate can carry.
    let config = parse_group(dir.path(), "tls = { sni = \"127.0.0.1\" }").expect("valid");
    assert_eq!(
        config.upstreams["g"].tls.as_ref().expect("tls").sni,
        "127.0.0.1"
    );
}

#[test]
fn invalid_transports_are_reported_with_their_paths() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("empty.pem"), "no certificate here\n").expect("write");
    std::fs::write(
        dir.path().join("garbage.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let cases: &[(&str, &str, &str)] = &[
        (
            "protocol = \"h3\"",
            "upstreams.g.protocol",
            "unknown protocol \"h3\"; valid: http1, h2, h2c",
        ),
        (
            "protocol = \"h2\"",
            "upstreams.g.protocol",
            "\"h2\" is HTTP/2 over TLS",
        ),
        (
            "protocol = \"h2c\"\ntls = { sni = \"a.test\" }",
            "upstreams.g.protocol",
            "\"h2c\" is HTTP/2 in clear text",
        ),
        (
            "tls = { enabled = true }",
            "upstreams.g.tls.sni",
            "needed to verify",
        ),
        (
            "tls = { sni = \"not a name\" }",
            "upstreams.g.tls.sni",
            "is not a DNS name or an IP address",
        ),
        (
            "tls = { sni = \"a.test\", ca = \"missing.pem\" }",
            "upstreams.g.tls.ca",
            "cannot read",
        ),
        (
            "tls = { sni = \"a.test\", ca = \"empty.pem\" }",
            "upstreams.g.tls.ca",
            "holds no PEM certificate",
        ),
        (
            "tls = { sni = \"a.test\", ca = \"garbage.pem\" }",
            "upstreams.g.tls.ca",
            "certificate 1: not X.509",
        ),
        (
            "tls = { verify = false, ca = \"empty.pem\" }",
            "upstreams.g.tls.ca",
            "only used to verify",
        ),
    ];
    for (extra, path, message) in cases {
        let problems = parse_group(dir.path(), extra).expect_err(extra);
        assert!(
            problems
                .iter()
                .any(|(at, said)| at == path && said.contains(message)),
            "{extra}: expected {path}: {message}, got {problems:?}"
        );
    }
    // An unknown key in the table is refused by the file types.
    let error = parse(
        &dir.path().join("config.toml"),
        "[upstreams.g]\nservers = []\ntls = { sni = \"a\", insecure = true }\n",
    )
    .expect_err("unknown key");
    assert!(error.to_string().contains("insecure"), "{error}");
}
