//! The scanner callback: `X-Scan-Signature` verification and body parsing on any input, and the
//! `name:secret` list of scanners: never panics, no signature made without a secret is accepted, a
//! body dated ahead of the clock is never accepted, and a parsed list has a usable first entry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scan_core::callback::{Callback, MAX_FUTURE_SKEW_MS};
use scan_core::signature::SecretRing;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };
    let ring = SecretRing::parse("fuzzing-secret-0123456789").expect("a valid secret ring");
    if let Ok(header) = std::str::from_utf8(header) {
        assert!(
            ring.verify(Some(header), body, 1_800_000_000).is_err(),
            "{header:?}"
        );
    }
    if let Ok(cb) = Callback::parse(body, 1_800_000_000_000) {
        assert!(cb.verdict.scanned_at <= 1_800_000_000_000 + MAX_FUTURE_SKEW_MS);
    }
    if let Ok(list) = std::str::from_utf8(body)
        && let Ok(ring) = SecretRing::parse(list)
    {
        assert!(ring.current().len() >= scan_core::signature::MIN_SECRET_LEN);
        assert!(!ring.current_name().is_empty() && !ring.current_name().contains(':'));
    }
});
