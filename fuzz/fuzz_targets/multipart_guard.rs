//! The multipart guard over arbitrary bytes: never panics, its verdict and count do not depend on how
//! the body is chunked, and a body it lets through has at most `max_parts` parts.
#![no_main]

use attachment_policy::multipart::{GuardError, MultipartGuard, MultipartLimits};
use libfuzzer_sys::fuzz_target;

fn run(
    boundary: &str,
    limits: MultipartLimits,
    body: &[u8],
    chunk: usize,
) -> (Result<(), GuardError>, u32) {
    let mut g = MultipartGuard::new(boundary, limits);
    let mut r = Ok(());
    for c in body.chunks(chunk.max(1)) {
        r = g.feed(c);
        if r.is_err() {
            break;
        }
    }
    (r, g.parts())
}

fuzz_target!(|data: &[u8]| {
    let Some(([b, parts, chunk], body)) = data.split_first_chunk::<3>() else {
        return;
    };
    // Short boundaries make delimiters likely in fuzzed bytes.
    let boundary = ["b", "--", "ab-ab", "\r\n"][usize::from(*b % 4)];
    let limits = MultipartLimits {
        max_parts: u32::from(*parts % 16) + 1,
        max_header_bytes: 512 + usize::from(*b),
    };
    let whole = run(boundary, limits, body, body.len());
    let chunked = run(boundary, limits, body, usize::from(*chunk) + 1);
    assert_eq!(whole, chunked, "chunking changed the verdict");
    match whole.0 {
        Ok(()) => assert!(whole.1 <= limits.max_parts),
        Err(GuardError::TooManyParts) => assert_eq!(whole.1, limits.max_parts + 1),
        Err(GuardError::PartHeaderTooLarge) => assert!(whole.1 <= limits.max_parts),
    }
});
