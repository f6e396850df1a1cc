//! What carries identity into a request: access tokens (`Authorization: Bearer`) and the middleware's
//! `x-auth-context` hand-off. On any input: never panics, and nothing made without the keys passes.
#![no_main]

use std::sync::OnceLock;

use auth_core::{AuthContext, ContextKey, KeyRing, Verifier, VerifierConfig};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static (Verifier, ContextKey) {
    static KEYS: OnceLock<(Verifier, ContextKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let ring = KeyRing::generate("k1").expect("key generation");
        let verifier = Verifier::new(&ring, VerifierConfig::new("iss", "aud")).expect("verifier");
        let context = ContextKey::from_config("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .expect("a valid context key");
        (verifier, context)
    })
}

fuzz_target!(|data: &[u8]| {
    let (verifier, context) = keys();
    let now = 1_800_000_000;
    assert!(verifier.verify_authorization(Some(data), now).is_err());
    assert!(AuthContext::verify(data, context, now).is_err());
});
