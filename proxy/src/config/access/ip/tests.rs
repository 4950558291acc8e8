use super::*;

fn set(nets: &[&str]) -> IpSet {
    let nets: Vec<IpNet> = nets.iter().map(|n| parse_net(n).unwrap()).collect();
    IpSet::new(&nets)
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn cidr_matching_table() {
    let s = set(&[
        "10.0.0.0/8",
        "192.168.1.7",
        "2001:db8::/32",
        "::1",
        "::ffff:172.16.0.0/108",
    ]);
    for (addr, expected) in [
        ("10.0.0.0", true),
        ("10.255.255.255", true),
        ("11.0.0.0", false),
        ("9.255.255.255", false),
        ("192.168.1.7", true),
        ("192.168.1.8", false),
        ("192.168.1.6", false),
        ("2001:db8::1", true),
        ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true),
        ("2001:db9::", false),
        ("::1", true),
        ("::2", false),
        // IPv4-mapped IPv6 is looked up as IPv4, both ways.
        ("::ffff:10.1.2.3", true),
        ("::ffff:11.1.2.3", false),
        ("172.16.5.5", true),
        ("::ffff:172.16.5.5", true),
        ("172.32.0.0", false),
    ] {
        assert_eq!(s.contains(ip(addr)), expected, "{addr}");
    }
}

#[test]
fn overlapping_and_adjacent_networks_merge() {
    let s = set(&["10.0.0.0/9", "10.128.0.0/9", "10.1.0.0/16", "0.0.0.0/0"]);
    assert_eq!(s.ranges(), 1);
    assert!(s.contains(ip("255.255.255.255")));
    let s = set(&["10.0.0.0/24", "10.0.1.0/24", "10.0.3.0/24"]);
    assert_eq!(s.ranges(), 2);
    assert!(s.contains(ip("10.0.1.255")));
    assert!(!s.contains(ip("10.0.2.0")));
    assert!(s.contains(ip("10.0.3.0")));
    let everything6 = set(&["::/0"]);
    assert!(everything6.contains(ip("ffff::1")));
    assert!(!everything6.contains(ip("1.2.3.4")));
}

#[test]
fn empty_set_contains_nothing() {
    let s = IpSet::default();
    assert!(s.is_empty());
    assert!(!s.contains(ip("127.0.0.1")));
    assert!(!s.contains(ip("::1")));
}

#[test]
fn thousands_of_networks_stay_exact() {
    // Every other /24 of 10.0.0.0/8: 32,768 ranges that never merge.
    let nets: Vec<IpNet> = (0..32_768u32)
        .map(|i| {
            let base = (10u32 << 24) | ((i * 2) << 8);
            IpNet::from(ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(base), 24).unwrap())
        })
        .collect();
    let s = IpSet::new(&nets);
    assert_eq!(s.ranges(), 32_768);
    assert!(s.contains(ip("10.0.0.1")));
    assert!(!s.contains(ip("10.0.1.1")));
    assert!(s.contains(ip("10.255.254.200")));
    assert!(!s.contains(ip("10.255.255.200")));
}

#[test]
fn list_files_report_each_bad_line() {
    let (nets, errors) =
        parse_list("# office\n10.0.0.0/8\n\n192.168.0.1 # gateway\nnope\n10.0.0.0/33\n");
    assert_eq!(nets.len(), 2);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("line 5: invalid network \"nope\""),
        "{errors:?}"
    );
    assert!(errors[1].starts_with("line 6:"), "{errors:?}");
}
