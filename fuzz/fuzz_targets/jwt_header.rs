//! Any `Authorization` value through the verifier's own header checks (scheme, segments,
//! base64url, size, alg, crit, embedded keys, kid) and `jsonwebtoken`: a rejection or claims,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scalelab_auth::Verifier;
use std::sync::OnceLock;

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let text = "[auth]\nalgorithms = [\"HS256\"]\nsecret = \"fuzz-secret-fuzz-secret-fuzz-secret-0123\"\nissuer = \"scalelab\"\naudience = \"scalelab-lab\"\nrequired_claims = [\"exp\"]\n";
        let file = scalelab_auth::parse_config_toml(text)
            .ok()
            .flatten()
            .expect("an [auth] table");
        let settings = scalelab_auth::validate(&file, std::path::Path::new("."))
            .ok()
            .expect("valid settings");
        Verifier::new(settings)
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = verifier().verify_header(Some(data));
});
