//! The smallest useful Pingora proxy: one listener, round robin over the upstreams given on the
//! command line, upstream keep-alive, one worker thread. Usage: minimal-pingora LISTEN UP1 [UP2..]

use async_trait::async_trait;
use pingora::prelude::{HttpPeer, ProxyHttp, Result, Session};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use std::sync::atomic::{AtomicUsize, Ordering};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Minimal {
    upstreams: Vec<std::net::SocketAddr>,
    next: AtomicUsize,
    /// Set connect/read/write timeouts on each peer (as scalelab does), to measure their cost.
    timeouts: bool,
}

#[async_trait]
impl ProxyHttp for Minimal {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.upstreams.len();
        let mut peer = HttpPeer::new(self.upstreams[i], false, String::new());
        if self.timeouts {
            let limit = Some(std::time::Duration::from_secs(30));
            peer.options.connection_timeout = Some(std::time::Duration::from_secs(1));
            peer.options.read_timeout = limit;
            peer.options.write_timeout = limit;
        }
        Ok(Box::new(peer))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let upstreams = args[2..].iter().filter_map(|a| a.parse().ok()).collect();
    let work_stealing = std::env::var("WORK_STEALING").is_ok();
    let conf = ServerConf {
        threads: 1,
        work_stealing,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(
        &server.configuration,
        Minimal {
            upstreams,
            next: AtomicUsize::new(0),
            timeouts: std::env::var("TIMEOUTS").is_ok(),
        },
    );
    proxy.add_tcp(&args[1]);
    server.add_service(proxy);
    server.run_forever();
}
