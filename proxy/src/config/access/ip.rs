//! IP allow and deny lists: a set of networks kept as sorted, merged address ranges, so that a
//! lookup is one binary search (O(log n)) however many CIDRs a list (or its file) holds. Pure.
//!
//! IPv4 and IPv6 are kept apart (`u32` and `u128` ranges); an IPv4-mapped IPv6 address
//! (`::ffff:10.0.0.1`, what a dual-stack socket reports for an IPv4 client) is looked up as
//! the IPv4 address it carries, so one `10.0.0.0/8` entry covers both spellings.

use ipnet::IpNet;
use std::net::IpAddr;

/// A set of networks, as disjoint ranges sorted by their first address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl IpSet {
    /// The set of `nets`. Overlapping and adjacent networks are merged.
    pub fn new<'a>(nets: impl IntoIterator<Item = &'a IpNet>) -> IpSet {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            match net {
                IpNet::V4(net) => v4.push((u32::from(net.network()), u32::from(net.broadcast()))),
                IpNet::V6(net) => {
                    // A mapped IPv4 network is stored as the IPv4 network it names, like the
                    // addresses looked up.
                    if let Some(mapped) = mapped_v4_net(net) {
                        v4.push(mapped);
                    } else {
                        v6.push((u128::from(net.network()), u128::from(net.broadcast())));
                    }
                }
            }
        }
        IpSet {
            v4: merge(v4),
            v6: merge(v6),
        }
    }

    /// Whether `ip` is in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(ip) => find(&self.v4, u32::from(ip)),
            IpAddr::V6(ip) => find(&self.v6, u128::from(ip)),
        }
    }

    /// How many disjoint ranges the set holds (for the config summary).
    pub fn ranges(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// The address a client is looked up as: an IPv4-mapped IPv6 address is its IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// A `::ffff:a.b.c.d/n` network with n >= 96 as the IPv4 range it covers.
fn mapped_v4_net(net: &ipnet::Ipv6Net) -> Option<(u32, u32)> {
    let first = net.network().to_ipv4_mapped()?;
    let last = net.broadcast().to_ipv4_mapped()?;
    (net.prefix_len() >= 96).then(|| (u32::from(first), u32::from(last)))
}

/// Sorts ranges and joins the ones that overlap or touch.
fn merge<T: Copy + Ord + num_like::Successor>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut merged: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match merged.last_mut() {
            Some(previous) if previous.1.successor().is_none_or(|next| first <= next) => {
                if last > previous.1 {
                    previous.1 = last;
                }
            }
            _ => merged.push((first, last)),
        }
    }
    merged
}

/// Whether `value` falls in one of `ranges` (disjoint, sorted): the last range starting at or
/// before it must also end at or after it.
fn find<T: Copy + Ord>(ranges: &[(T, T)], value: T) -> bool {
    let after = ranges.partition_point(|&(first, _)| first <= value);
    after > 0
        && ranges
            .get(after - 1)
            .is_some_and(|&(_, last)| value <= last)
}

mod num_like {
    /// The next integer, or `None` at the top of the type.
    pub trait Successor: Sized {
        fn successor(self) -> Option<Self>;
    }
    impl Successor for u32 {
        fn successor(self) -> Option<u32> {
            self.checked_add(1)
        }
    }
    impl Successor for u128 {
        fn successor(self) -> Option<u128> {
            self.checked_add(1)
        }
    }
}

/// Reads a list file's text: one network per line (a CIDR or a single address), blank lines
/// and `#` comments ignored. Every bad line is reported with its line number.
pub fn parse_list(text: &str) -> (Vec<IpNet>, Vec<String>) {
    let mut nets = Vec::new();
    let mut errors = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        match parse_net(entry) {
            Some(net) => nets.push(net),
            None => errors.push(format!(
                "line {}: invalid network {entry:?}; write it like \"10.0.0.0/8\" or \"127.0.0.1\"",
                number + 1
            )),
        }
    }
    (nets, errors)
}

/// A CIDR, or a single address as a /32 or /128.
pub fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .ok()
}

#[cfg(test)]
mod tests;
