//! The scanner callback: `X-Scan-Signature` verification and body parsing on any input: never panics,
//! and no signature made without the secret is accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scan_core::callback::Callback;
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
    let _ = Callback::parse(body, 1_800_000_000_000);
});
