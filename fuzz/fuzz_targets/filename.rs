//! `SafeFilename::parse` on any client-supplied name: never panics, and what it accepts is a bare,
//! NFC-normalised name of at most 255 bytes with no control, NUL or bidi-override character.
#![no_main]

use attachment_policy::{ExtensionPolicy, SafeFilename};
use libfuzzer_sys::fuzz_target;
use unicode_normalization::UnicodeNormalization;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(name) = SafeFilename::parse(raw, &ExtensionPolicy::default()) else {
        return;
    };
    let s = name.as_str();
    assert!(!s.is_empty() && s.len() <= 255, "{s:?}");
    assert!(!s.contains(['/', '\\']), "{s:?}");
    assert!(!s.chars().any(char::is_control), "{s:?}");
    assert!(
        !s.contains(['\u{202E}', '\u{202D}', '\u{2066}', '\u{2067}', '\u{2068}']),
        "{s:?}"
    );
    assert_eq!(s.nfc().collect::<String>(), s, "not NFC");
    assert!(!s.ends_with(['.', ' ']), "{s:?}");
});
