//! `Repr-Digest` parsing (RFC 9530 over RFC 8941) on any header value: never panics; whatever it
//! accepts was visible ASCII, and its `sha-256` member survives a round trip through `header_for`.
#![no_main]

use attachment_policy::{ContentHash, ReprDigest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    match ReprDigest::parse(header) {
        Ok(Some(digest)) => {
            assert!(
                header
                    .bytes()
                    .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
            );
            // Verifying against some content never panics either.
            let _ = digest.verify(&ContentHash::of(data));
            let again = ReprDigest::parse(&ReprDigest::header_for(&digest.as_hash()));
            assert_eq!(again, Ok(Some(digest)));
        }
        Ok(None) => assert!(
            header
                .bytes()
                .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
        ),
        Err(_) => {}
    }
});
