//! `Cache-Control` values as origins send them: parsed without panicking, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scalelab_proxy::cache::policy::CacheControl;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // Each line is one field value; several combine.
        let _ = CacheControl::parse(text.lines());
    }
});
