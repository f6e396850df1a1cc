//! The filename of an upload (`Content-Disposition` / `?filename=`) on any header and query: never
//! panics, never names an empty file, and reads back every name a download sends.
#![no_main]

use delivery::disposition::{Disposition, filename, header_value, offered_name, upload_filename};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // One input gives the header and the query (split at the first newline, which no header has).
    let (header, query) = text.split_once('\n').unwrap_or((text, ""));
    if let Some(name) = filename(header) {
        assert!(!name.is_empty(), "{header:?}");
    }
    if let Some(name) = upload_filename(Some(header), Some(query)) {
        assert!(!name.is_empty(), "{text:?}");
    }
    // What a download sends for any stored name is read back as the name it offers.
    let sent = header_value(Disposition::Inline, text);
    assert_eq!(
        filename(&sent).as_deref(),
        Some(offered_name(text).as_str()),
        "{sent:?}"
    );
});
