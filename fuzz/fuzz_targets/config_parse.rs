//! Any text through the config parser and validator: a `Config` or a list of problems, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = scalelab_proxy::config::parse(std::path::Path::new("./fuzz.toml"), text);
    }
});
