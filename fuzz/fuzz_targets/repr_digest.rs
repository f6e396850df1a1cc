//! `Repr-Digest` parsing (RFC 9530) on any header value: never panics.
#![no_main]

use attachment_policy::{ContentHash, ReprDigest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Some(digest)) = ReprDigest::parse(header) {
        // Verifying against some content never panics either.
        let _ = digest.verify(&ContentHash::of(data));
    }
});
