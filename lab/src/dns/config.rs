//! The proxy config of a lab started with `--dns`: the user's file with the gateways' group
//! named instead of listed (`servers = [{ name = "gateways.lab", port = P }]`) and a `[dns]`
//! table pointing at the lab's own dnsmasq. Pure: text in, text out.

use std::net::SocketAddr;

/// The group whose servers come from DNS.
pub const GROUP: &str = "gateways";

/// How often the proxy asks again at most: dnsmasq's answers live one second, so a change of the
/// hosts file reaches the proxy within about a second.
const MAX_REFRESH: &str = "1s";
/// How long one resolution may take; the name server is on loopback.
const TIMEOUT: &str = "1s";

/// `text` (the user's config) with `[upstreams.gateways]`'s servers replaced by one entry for
/// `name` on `port` and `[dns]` resolving through `resolver`. The first listed server's other
/// settings (`max_connections`) carry over to every address of the name; its `weight` does not,
/// because one name gives all its addresses the same weight.
///
/// # Errors
/// The text is not TOML or has no `[upstreams.gateways]` with a list of servers.
pub fn derive(text: &str, resolver: SocketAddr, name: &str, port: u16) -> Result<String, String> {
    let mut table: toml::Table = text.parse().map_err(|error| format!("not TOML: {error}"))?;
    let group = table
        .get_mut("upstreams")
        .and_then(toml::Value::as_table_mut)
        .and_then(|upstreams| upstreams.get_mut(GROUP))
        .and_then(toml::Value::as_table_mut)
        .ok_or_else(|| {
            format!("--dns names the servers of [upstreams.{GROUP}], which the file lacks")
        })?;
    let first = group
        .get("servers")
        .and_then(toml::Value::as_array)
        .and_then(|servers| servers.first())
        .and_then(toml::Value::as_table)
        .ok_or_else(|| format!("--dns needs [upstreams.{GROUP}] to list its servers"))?;
    let mut entry = first.clone();
    entry.remove("addr");
    entry.remove("weight");
    entry.insert("name".to_owned(), toml::Value::String(name.to_owned()));
    entry.insert("port".to_owned(), toml::Value::Integer(i64::from(port)));
    group.insert(
        "servers".to_owned(),
        toml::Value::Array(vec![toml::Value::Table(entry)]),
    );
    let dns = table
        .entry("dns")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let dns = dns
        .as_table_mut()
        .ok_or("the file's `dns` is not a table")?;
    dns.insert(
        "resolvers".to_owned(),
        toml::Value::Array(vec![toml::Value::String(resolver.to_string())]),
    );
    dns.insert(
        "max_refresh".to_owned(),
        toml::Value::String(MAX_REFRESH.to_owned()),
    );
    dns.insert(
        "timeout".to_owned(),
        toml::Value::String(TIMEOUT.to_owned()),
    );
    let body = toml::to_string(&table).map_err(|error| format!("writing TOML: {error}"))?;
    Ok(format!(
        "# Written by `scalelab up --dns` at each start from the lab's config, whose comments it drops:\n\
         # the gateways come from the name {name}, served by the lab's own dnsmasq on {resolver}.\n\
         # Edits here last until the next `up --dns`; edit the lab's config instead.\n\n{body}"
    ))
}
