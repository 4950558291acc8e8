//! Sticky sessions' cookie values: an opaque, keyed name for a server of a group. The value
//! is HMAC-SHA256 (RFC 2104) of "group\naddress" under a secret drawn once per process from
//! the OS (through rustls' ring provider), cut to 128 bits: a client cannot learn a server's
//! address from it nor forge one for a server it was never sent to. A restart draws a new
//! secret, so old cookies match no server and their requests are re-balanced (and the
//! cookie replaced), the same as for a server that went away.

use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::OnceLock;

const BLOCK: usize = 64;

fn secret() -> &'static [u8; 32] {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    SECRET.get_or_init(|| {
        let mut key = [0u8; 32];
        if rustls::crypto::ring::default_provider()
            .secure_random
            .fill(&mut key)
            .is_err()
        {
            // No OS randomness (never seen on Linux): std's per-process random SipHash keys
            // still make the value unguessable from outside the process.
            use std::hash::{BuildHasher, Hasher};
            for chunk in key.chunks_mut(8) {
                let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
                hasher.write_u8(0);
                chunk.copy_from_slice(&hasher.finish().to_le_bytes());
            }
        }
        key
    })
}

/// The cookie value naming `addr` in `group`: 32 lower-case hex digits.
pub fn token(group: &str, addr: SocketAddr) -> String {
    let message = format!("{group}\n{addr}");
    let tag = hmac_sha256(secret(), message.as_bytes());
    tag[..16].iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}
