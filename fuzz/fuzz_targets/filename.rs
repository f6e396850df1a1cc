//! `SafeFilename::parse` on any client-supplied name: never panics, and what it accepts is a bare,
//! NFC-normalised name of at most 255 bytes with no control, NUL, bidi-override or other invisible
//! character, that the blocked-extension check of the other names passes too. That check never
//! panics on any name, and whatever it refuses, `parse` refuses.
#![no_main]

use attachment_policy::filename::is_invisible;
use attachment_policy::{ExtensionPolicy, SafeFilename};
use libfuzzer_sys::fuzz_target;
use unicode_normalization::UnicodeNormalization;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let policy = ExtensionPolicy::default();
    let checked = policy.check_name(raw);
    let Ok(name) = SafeFilename::parse(raw, &policy) else {
        return;
    };
    assert!(
        checked.is_ok(),
        "accepted {raw:?} but its extension is blocked"
    );
    let s = name.as_str();
    assert!(!s.is_empty() && s.len() <= 255, "{s:?}");
    assert!(!s.contains(['/', '\\']), "{s:?}");
    assert!(!s.chars().any(char::is_control), "{s:?}");
    assert!(
        !s.contains(['\u{202E}', '\u{202D}', '\u{2066}', '\u{2067}', '\u{2068}']),
        "{s:?}"
    );
    assert!(!s.chars().any(is_invisible), "{s:?}");
    assert_eq!(s.nfc().collect::<String>(), s, "not NFC");
    assert!(!s.ends_with(['.', ' ']), "{s:?}");
});
