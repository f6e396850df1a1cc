//! `Range` resolution against a representation size: never panics, and a partial answer lies inside
//! the content.
#![no_main]

use delivery::range::{RangeOutcome, resolve};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((size, header)) = data.split_first_chunk::<8>() else {
        return;
    };
    let size = u64::from_le_bytes(*size) % (1 << 50);
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let outcome = resolve(Some(header), size);
    if let RangeOutcome::Partial { first, last } = outcome {
        assert!(
            first <= last && last < size,
            "{header:?} over {size}: {first}-{last}"
        );
    }
    assert!(outcome.length(size) <= size);
});
