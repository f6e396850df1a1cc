//! Filenames a client sends become [`SafeFilename`]s or a refusal.
//!
//! Order: strip any path (`/` and `\`), normalise to NFC, then refuse: empty / `.` / `..`, NUL and
//! every control character (C0, DEL, C1), bidi controls (U+202A–U+202E, U+2066–U+2069,
//! U+200E/U+200F, U+061C), more than 255 bytes (UTF-8), a trailing dot or space (Windows drops them,
//! turning `evil.exe.` into `evil.exe`), Windows device names (`CON`, `PRN`, `AUX`, `NUL`,
//! `COM1`–`COM9`, `LPT1`–`LPT9`, with any extension, any case), and blocked extensions: the last
//! one, and any earlier one too (`invoice.exe.pdf` as well as `invoice.pdf.exe`). Extensions are
//! compared after NFKC and lower-casing, so full-width `.ｅｘｅ` is `.exe`.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

use crate::PolicyError;

/// Longest filename accepted, in UTF-8 bytes.
pub const MAX_FILENAME_BYTES: usize = 255;

/// The default blocked extensions (executables, scripts, installers, shortcuts, disk images).
pub const DEFAULT_BLOCKED_EXTENSIONS: &str = "exe, scr, com, pif, bat, cmd, cpl, dll, sys, drv, ocx, \
     msi, msp, mst, msc, js, jse, mjs, vbs, vbe, vb, wsf, wsh, ws, wsc, ps1, ps1xml, ps2, ps2xml, psc1, \
     psc2, psm1, psd1, hta, lnk, scf, inf, reg, jar, application, gadget, appref-ms, url, iso, img, vhd, \
     vhdx, sh, command, chm, apk, app, dmg, pkg, deb, rpm, elf, run, xll, xbap";

/// The configured blocked extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionPolicy {
    blocked: Vec<String>,
}

impl Default for ExtensionPolicy {
    fn default() -> Self {
        Self::from_config(DEFAULT_BLOCKED_EXTENSIONS).expect("default list is valid")
    }
}

impl ExtensionPolicy {
    /// Parses a comma/space separated list (`exe, .scr js`); a leading dot is allowed. An empty
    /// list is refused (use a list with a harmless entry to really allow everything).
    pub fn from_config(s: &str) -> Result<Self, String> {
        let mut blocked = Vec::new();
        for raw in s.split(|c: char| c == ',' || c.is_whitespace()) {
            let e = raw.trim().trim_start_matches('.').to_lowercase();
            if e.is_empty() {
                continue;
            }
            if !e
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!("blocked_extensions: {raw:?} is not an extension"));
            }
            if !blocked.contains(&e) {
                blocked.push(e);
            }
        }
        if blocked.is_empty() {
            return Err("blocked_extensions: empty list".into());
        }
        Ok(Self { blocked })
    }

    /// Whether `ext` (without dot, any case) is blocked.
    pub fn is_blocked(&self, ext: &str) -> bool {
        let e = fold(ext);
        self.blocked.contains(&e)
    }
}

fn fold(s: &str) -> String {
    s.nfkc().collect::<String>().to_lowercase()
}

/// A filename that passed the policy (NFC, ≤ 255 bytes, no path, no control/bidi characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SafeFilename(String);

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

const DEVICE_NAMES: &[&str] = &["con", "prn", "aux", "nul"];

fn is_device_name(name: &str) -> bool {
    // The part before the first dot, trailing spaces ignored (Windows does the same).
    let stem = fold(name.split('.').next().unwrap_or("").trim_end());
    if DEVICE_NAMES.contains(&stem.as_str()) {
        return true;
    }
    for p in ["com", "lpt"] {
        if let Some(d) = stem.strip_prefix(p) {
            // COM1..COM9, LPT1..LPT9, plus the superscript digits Windows also reserves.
            if matches!(
                d,
                "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³"
            ) {
                return true;
            }
        }
    }
    false
}

impl SafeFilename {
    /// Applies the policy to a client-supplied name.
    pub fn parse(raw: &str, policy: &ExtensionPolicy) -> Result<Self, PolicyError> {
        let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
        let name: String = base.nfc().collect();
        if name.chars().any(|c| c == '\0') {
            return Err(PolicyError::InvalidFilename(
                "The filename contains a NUL character.",
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(PolicyError::InvalidFilename(
                "The filename contains control characters.",
            ));
        }
        if name.chars().any(is_bidi_control) {
            return Err(PolicyError::InvalidFilename(
                "The filename contains bidirectional control characters.",
            ));
        }
        if name.trim().is_empty() || name == "." || name == ".." {
            return Err(PolicyError::InvalidFilename("The filename is empty."));
        }
        if name.len() > MAX_FILENAME_BYTES {
            return Err(PolicyError::InvalidFilename(
                "The filename is longer than 255 bytes.",
            ));
        }
        // Extensions first: `evil.exe.` and `evil.exe ` are dangerous, not merely malformed.
        let trimmed = name.trim_end_matches(['.', ' ']);
        let mut parts = trimmed.split('.');
        parts.next(); // the stem
        if parts.any(|ext| policy.is_blocked(ext.trim())) {
            return Err(PolicyError::BlockedFileType(
                "This file extension is not allowed.",
            ));
        }
        if name.ends_with('.') || name.ends_with(' ') {
            return Err(PolicyError::InvalidFilename(
                "The filename ends with a dot or a space.",
            ));
        }
        if is_device_name(&name) {
            return Err(PolicyError::InvalidFilename(
                "The filename is a reserved device name.",
            ));
        }
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last extension, lower-cased (`None` without a dot, or for a dot-file like `.bashrc`).
    pub fn extension(&self) -> Option<String> {
        let (stem, ext) = self.0.rsplit_once('.')?;
        if stem.is_empty() || ext.is_empty() {
            return None;
        }
        Some(ext.to_lowercase())
    }
}

impl fmt::Display for SafeFilename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use problem::Code;

    fn check(raw: &str) -> Result<String, Code> {
        SafeFilename::parse(raw, &ExtensionPolicy::default())
            .map(|s| s.0)
            .map_err(|e| e.code())
    }

    #[test]
    fn accepts_ordinary_names() {
        assert_eq!(check("report.pdf").unwrap(), "report.pdf");
        assert_eq!(
            check("Résumé 2024 (final).docx").unwrap(),
            "Résumé 2024 (final).docx"
        );
        assert_eq!(check("archive.tar.gz").unwrap(), "archive.tar.gz");
        assert_eq!(check(".bashrc").unwrap(), ".bashrc");
        assert_eq!(check("README").unwrap(), "README");
        assert_eq!(check("コンテンツ.txt").unwrap(), "コンテンツ.txt");
        assert_eq!(
            check("console.log").unwrap(),
            "console.log",
            "only exact device stems"
        );
        assert_eq!(check("com10.txt").unwrap(), "com10.txt");
    }

    #[test]
    fn strips_paths() {
        assert_eq!(check("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(check("C:\\Users\\x\\evil.txt").unwrap(), "evil.txt");
        assert_eq!(check("/abs/path/a.png").unwrap(), "a.png");
        assert_eq!(check("dir/").unwrap_err(), Code::InvalidFilename);
        assert_eq!(check("..").unwrap_err(), Code::InvalidFilename);
        assert_eq!(check("a/..").unwrap_err(), Code::InvalidFilename);
    }

    #[test]
    fn normalises_to_nfc() {
        // "e" + combining acute → "é" (U+00E9).
        assert_eq!(check("cafe\u{301}.txt").unwrap(), "caf\u{e9}.txt");
    }

    #[test]
    fn bad_input_matrix() {
        use Code::{BlockedFileType as B, InvalidFilename as I};
        let cases: &[(&str, Code)] = &[
            ("", I),
            ("   ", I),
            ("a\0b.txt", I),
            ("a\nb.txt", I),
            ("a\rb.txt", I),
            ("a\tb.txt", I),
            ("a\u{7f}.txt", I),
            ("a\u{85}.txt", I),
            ("invoice\u{202E}fdp.exe", I),
            ("x\u{202A}.txt", I),
            ("x\u{2066}.txt", I),
            ("x\u{2069}.txt", I),
            ("x\u{200E}.txt", I),
            ("x\u{200F}.txt", I),
            ("CON", I),
            ("con.txt", I),
            ("Nul.tar.gz", I),
            ("PRN.pdf", I),
            ("aux", I),
            ("COM1.log", I),
            ("lpt9", I),
            ("COM1 .txt", I),
            ("report.pdf.", I),
            ("report.pdf ", I),
            ("invoice.pdf.exe", B),
            ("INVOICE.PDF.EXE", B),
            ("payload.exe.pdf", B),
            ("evil.exe.", B),
            ("evil.exe  ", B),
            ("setup.msi", B),
            ("x.scr", B),
            ("x.js", B),
            ("x.vbs", B),
            ("x.ps1", B),
            ("x.jar", B),
            ("x.hta", B),
            ("x.lnk", B),
            ("x.bat", B),
            ("x.\u{ff45}\u{ff58}\u{ff45}", B), // full-width "exe"
        ];
        for (raw, want) in cases {
            assert_eq!(check(raw).unwrap_err(), *want, "{raw:?}");
        }
        assert_eq!(
            check(&format!("{}.txt", "a".repeat(251))).unwrap().len(),
            255
        );
        assert_eq!(check(&format!("{}.txt", "a".repeat(252))).unwrap_err(), I);
        // 128 two-byte characters = 256 bytes.
        assert_eq!(check(&"é".repeat(128)).unwrap_err(), I);
    }

    #[test]
    fn configured_list() {
        let p = ExtensionPolicy::from_config(".exe, PDF  docx").unwrap();
        assert!(SafeFilename::parse("a.pdf", &p).is_err());
        assert!(SafeFilename::parse("a.js", &p).is_ok());
        assert!(ExtensionPolicy::from_config(" , ").is_err());
        assert!(ExtensionPolicy::from_config("exe, a/b").is_err());
        let n = SafeFilename::parse("Photo.JPG", &p).unwrap();
        assert_eq!(n.extension().as_deref(), Some("jpg"));
        assert_eq!(SafeFilename::parse(".env", &p).unwrap().extension(), None);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn never_panics_and_output_is_safe(raw in "\\PC*|.*|[\\x00-\\x7f]{0,300}") {
                if let Ok(name) = SafeFilename::parse(&raw, &ExtensionPolicy::default()) {
                    let s = name.as_str();
                    prop_assert!(!s.contains('/') && !s.contains('\\'));
                    prop_assert!(!s.chars().any(char::is_control));
                    prop_assert!(!s.chars().any(is_bidi_control));
                    prop_assert!(!s.is_empty() && s.len() <= MAX_FILENAME_BYTES);
                    prop_assert!(!s.ends_with('.') && !s.ends_with(' '));
                }
            }

            #[test]
            fn any_path_prefix_is_stripped(dirs in proptest::collection::vec("[a-z.]{1,8}", 0..5), name in "[a-z]{1,10}\\.txt") {
                // A reserved device name (`prn.txt`) is refused on its own merits, path or not.
                prop_assume!(!DEVICE_NAMES.contains(&name.trim_end_matches(".txt")));
                let raw = format!("{}/{}", dirs.join("\\"), name);
                let got = SafeFilename::parse(&raw, &ExtensionPolicy::default()).unwrap();
                prop_assert_eq!(got.as_str(), name.as_str());
            }
        }
    }
}
