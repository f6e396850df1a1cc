//! The filename of an upload (`Content-Disposition` / `?filename=`) on any header and query: never
//! panics, never names an empty file, lists the name it chooses among every name the request carries
//! (which the upload checks one by one), and reads back every name a download sends.
#![no_main]

use delivery::disposition::{
    Disposition, filename, filenames, header_value, offered_name, upload_filename, upload_filenames,
};
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
    let all = upload_filenames(Some(header), Some(query));
    assert!(all.iter().all(|n| !n.is_empty()), "{text:?}");
    if let Some(name) = upload_filename(Some(header), Some(query)) {
        assert!(!name.is_empty(), "{text:?}");
        assert!(all.contains(&name), "{name:?} not among {all:?}");
    }
    if let Some(name) = filename(header) {
        assert!(filenames(header).contains(&name), "{header:?}");
    }
    // What a download sends for any stored name is read back as the name it offers.
    let sent = header_value(Disposition::Inline, text);
    assert_eq!(
        filename(&sent).as_deref(),
        Some(offered_name(text).as_str()),
        "{sent:?}"
    );
});
