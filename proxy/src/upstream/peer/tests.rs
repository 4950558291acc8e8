use super::*;
use crate::config::transport::UpstreamTls;
use pingora::upstreams::peer::Peer;

/// The group `g` of a config with `extra` lines, parsed for real (so the CA is read as it is).
fn group(dir: &std::path::Path, extra: &str) -> Upstream {
    let text = format!(
        "[upstreams.g]\nservers = [ {{ addr = \"127.0.0.1:5000\" }} ]\nconnect_timeout = \"2s\"\nread_timeout = \"3s\"\n{extra}\n[[routes]]\nname = \"r\"\npath = \"/\"\nupstream = \"g\"\n"
    );
    let config = crate::config::parse(&dir.join("config.toml"), &text).expect("valid");
    config.upstreams()["g"].clone()
}

fn write_ca(dir: &std::path::Path, name: &str) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().expect("key");
    let pem = params.self_signed(&key).expect("CA").pem();
    std::fs::write(dir.join(name), pem).expect("write");
}

#[test]
fn the_peer_follows_the_groups_protocol_and_tls() {
    let dir = tempfile::tempdir().expect("dir");
    write_ca(dir.path(), "a.pem");
    write_ca(dir.path(), "b.pem");
    let addr = SocketAddr::from(([127, 0, 0, 1], 5000));
    let cases = [
        ("", ALPN::H1, false, "", 1),
        (
            "protocol = \"h2c\"",
            ALPN::H2,
            false,
            "",
            H2_STREAMS_PER_CONNECTION,
        ),
        (
            "protocol = \"h2\"\ntls = { sni = \"a.test\", ca = \"a.pem\" }",
            ALPN::H2,
            true,
            "a.test",
            H2_STREAMS_PER_CONNECTION,
        ),
        ("tls = { sni = \"a.test\" }", ALPN::H1, true, "a.test", 1),
    ];
    for (extra, alpn, tls, sni, streams) in cases {
        let config = group(dir.path(), extra);
        let peer = build(addr, &config);
        assert_eq!(peer.options.alpn, alpn, "{extra}");
        assert_eq!(peer.is_tls(), tls, "{extra}");
        assert_eq!(peer.sni, sni, "{extra}");
        assert_eq!(peer.options.max_h2_streams, streams, "{extra}");
        assert_eq!(
            peer.options.connection_timeout,
            Some(config.connect_timeout)
        );
        assert_eq!(peer.options.read_timeout, Some(config.read_timeout));
        assert!(
            peer.options
                .reject_h1_response_with_content_length_and_transfer_encoding
        );
    }

    let verified = group(dir.path(), "tls = { sni = \"a.test\", ca = \"a.pem\" }");
    let peer = build(addr, &verified);
    assert!(peer.verify_cert() && peer.verify_hostname());
    assert_eq!(peer.get_ca().map(|ca| ca.len()), Some(1));
    // Two CAs for the same server and name never share pooled connections.
    let other = build(
        addr,
        &group(dir.path(), "tls = { sni = \"a.test\", ca = \"b.pem\" }"),
    );
    assert_ne!(peer.reuse_hash(), other.reuse_hash());
    assert_ne!(peer.group_key, 0);

    let unverified = group(dir.path(), "tls = { verify = false }");
    assert_eq!(
        unverified.tls,
        Some(UpstreamTls {
            sni: String::new(),
            verify: false,
            ca: None
        })
    );
    let peer = build(addr, &unverified);
    assert!(!peer.verify_cert() && !peer.verify_hostname());
}
