//! Filenames a client sends become [`SafeFilename`]s or a refusal.
//!
//! Order: strip any path (`/` and `\`), normalise to NFC, then refuse: empty / `.` / `..`, NUL and
//! every control character (C0, DEL, C1), bidi controls (U+202A–U+202E, U+2066–U+2069,
//! U+200E/U+200F, U+061C), every other invisible or formatting character ([`is_invisible`]: the
//! general categories Cf, Zl and Zp and every `Default_Ignorable_Code_Point`, e.g. zero-width
//! spaces and joiners, soft hyphens, variation selectors, tag characters, Hangul fillers), more than
//! 255 bytes (UTF-8), a trailing dot or space (Windows drops them, turning `evil.exe.` into
//! `evil.exe`), Windows device names (`CON`, `PRN`, `AUX`, `NUL`, `COM1`–`COM9`, `LPT1`–`LPT9`, with
//! any extension, any case), and blocked extensions: the last one, and any earlier one too
//! (`invoice.exe.pdf` as well as `invoice.pdf.exe`). Extensions are compared after NFKC,
//! lower-casing and dropping invisible characters, so full-width `.ｅｘｅ` is `.exe`.
//!
//! A request may name its file more than once (`filename=` and `filename*=`, a `?filename=` query,
//! RFC 2231 continuations): only one becomes the [`SafeFilename`], but a client or mail program
//! downstream may pick another, so every other name goes through [`ExtensionPolicy::check_name`].

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::PolicyError;

/// Longest filename accepted, in UTF-8 bytes.
pub const MAX_FILENAME_BYTES: usize = 255;

/// The default blocked extensions: executables, scripts, installers and app packages (MSIX/AppX,
/// App Installer, ClickOnce, Java Web Start), shortcuts and shell locations (`.url`, `.lnk`,
/// `.library-ms`, `.search-ms`, `.searchConnector-ms`, `.settingcontent-ms`), disk images,
/// OneNote notebooks, web archives (`.mht`/`.mhtml`), Excel web queries and SYLK (`.iqy`, `.slk`),
/// and Office add-ins (`.xll`, `.xlam`, `.ppam`, ...).
pub const DEFAULT_BLOCKED_EXTENSIONS: &str = "exe, scr, com, pif, bat, cmd, cpl, dll, sys, drv, ocx, \
     msi, msp, mst, msc, js, jse, mjs, vbs, vbe, vb, wsf, wsh, ws, wsc, ps1, ps1xml, ps2, ps2xml, psc1, \
     psc2, psm1, psd1, hta, lnk, scf, inf, reg, jar, application, gadget, appref-ms, url, iso, img, vhd, \
     vhdx, sh, command, chm, apk, app, dmg, pkg, deb, rpm, elf, run, xll, xbap, one, onepkg, msix, \
     msixbundle, appx, appxbundle, appinstaller, jnlp, iqy, slk, library-ms, search-ms, \
     searchconnector-ms, settingcontent-ms, mht, mhtml, xlam, ppam, xla, ppa, wll, vsto, mam, msh, \
     msh1, msh2, mshxml, msh1xml, msh2xml, cab, diagcab, diagcfg, diagpkg, udl, ade, adp, mde, accde, \
     appcontent-ms, hlp, isp, ins, its, job, sct, shb, vxd, nsh, ex_, ksh, csh, bash, zsh, action, \
     workflow, ipa, xpi, crx, scpt, scptd, terminal, desktop, ahk, au3, a3x, ppkg, wim";

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

    /// The blocked-extension check alone, for a name a request carries besides the one it stores
    /// (the ASCII `filename=` beside a `filename*=`, a `?filename=` query, a multipart part's other
    /// form): path stripped, invisible characters dropped, trailing dots and spaces ignored, every
    /// extension compared. Other defects of such a name do not matter: it is never stored.
    pub fn check_name(&self, raw: &str) -> Result<(), PolicyError> {
        let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
        let visible: String = base.chars().filter(|&c| !is_invisible(c)).collect();
        if self.any_blocked(&visible) {
            return Err(blocked());
        }
        Ok(())
    }

    /// Whether any extension of `name` (the last or an earlier one) is blocked.
    fn any_blocked(&self, name: &str) -> bool {
        let trimmed = name.trim_end_matches(['.', ' ']);
        let mut parts = trimmed.split('.');
        parts.next(); // the stem
        parts.any(|ext| self.is_blocked(ext.trim()))
    }
}

fn blocked() -> PolicyError {
    PolicyError::BlockedFileType("This file extension is not allowed.")
}

/// NFKC, invisible characters dropped, lower case: how extensions are compared.
fn fold(s: &str) -> String {
    s.nfkc()
        .filter(|&c| !is_invisible(c))
        .collect::<String>()
        .to_lowercase()
}

/// Whether `c` is invisible or changes how text around it is shown: the general categories Cf
/// (format: bidi controls, zero-width spaces and joiners, soft hyphen, BOM, tags, ...), Zl and Zp
/// (line and paragraph separators), and every `Default_Ignorable_Code_Point`.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    ) || is_default_ignorable(c)
}

/// `Default_Ignorable_Code_Point` (Unicode's DerivedCoreProperties.txt): the format characters
/// above, plus the combining grapheme joiner, Hangul and Khmer fillers, Mongolian and other
/// variation selectors, and the ranges reserved for future ignorables.
fn is_default_ignorable(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// A filename that passed the policy (NFC, ≤ 255 bytes, no path, no control, bidi or other
/// invisible characters).
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
        if name.chars().any(is_invisible) {
            return Err(PolicyError::InvalidFilename(
                "The filename contains invisible or formatting characters.",
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
        if policy.any_blocked(&name) {
            return Err(blocked());
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
            // Invisible and formatting characters (Cf, Zl, Zp, Default_Ignorable_Code_Point).
            ("in\u{200B}voice.txt", I),    // zero-width space
            ("a\u{200D}b.txt", I),         // zero-width joiner
            ("a\u{00AD}b.txt", I),         // soft hyphen
            ("a\u{FEFF}.txt", I),          // BOM
            ("a\u{2028}b.txt", I),         // line separator
            ("a\u{2029}b.txt", I),         // paragraph separator
            ("a\u{2060}b.txt", I),         // word joiner
            ("a\u{034F}b.txt", I),         // combining grapheme joiner
            ("a\u{3164}.txt", I),          // Hangul filler
            ("a\u{115F}.txt", I),          // Hangul choseong filler
            ("a\u{FE0F}.txt", I),          // variation selector
            ("a\u{180E}.txt", I),          // Mongolian vowel separator
            ("a\u{E0041}.txt", I),         // tag character
            ("a\u{E0100}.txt", I),         // variation selector 17
            ("a\u{1D173}.txt", I),         // musical symbol begin beam
            ("report.pdf\u{200B}.exe", I), // hidden from the eye, but refused either way
            // The extensions added to the default list.
            ("n.one", B),
            ("pkg.msix", B),
            ("pkg.msixbundle", B),
            ("pkg.appx", B),
            ("pkg.appxbundle", B),
            ("setup.appinstaller", B),
            ("q.iqy", B),
            ("q.slk", B),
            ("x.library-ms", B),
            ("x.search-ms", B),
            ("x.searchConnector-ms", B),
            ("x.SettingContent-ms", B),
            ("x.jnlp", B),
            ("page.mht", B),
            ("page.mhtml", B),
            ("addin.xlam", B),
            ("addin.ppam", B),
            ("addin.xll", B),
            ("x.cab", B),
            ("x.diagcab", B),
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
    fn invisible_characters_are_the_unicode_classes() {
        for c in [
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{200E}',
            '\u{202E}',
            '\u{2066}',
            '\u{00AD}',
            '\u{061C}',
            '\u{FEFF}',
            '\u{2028}',
            '\u{2029}',
            '\u{FFF9}',
            '\u{E0001}',
            '\u{FE00}',
            '\u{E01EF}',
            '\u{17B4}',
            '\u{FFA0}',
            '\u{2065}',
            '\u{110BD}',
            '\u{13430}',
        ] {
            assert!(is_invisible(c), "U+{:04X}", c as u32);
        }
        for c in [
            'a', ' ', '.', '-', '_', 'é', 'ß', 'コ', '\u{301}', '😀', '\u{00A0}', '\u{3000}',
        ] {
            assert!(!is_invisible(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn other_names_are_checked_for_blocked_extensions_only() {
        let p = ExtensionPolicy::default();
        for bad in [
            "evil.exe",
            "EVIL.EXE",
            "dir/evil.exe",
            "C:\\x\\invoice.pdf.exe",
            "invoice.exe.pdf",
            "evil.exe.",
            "evil.exe  ",
            "evil.e\u{200B}xe",
            "evil.exe\u{200D}",
            "x.\u{ff45}\u{ff58}\u{ff45}",
            "setup.msix",
        ] {
            assert_eq!(
                p.check_name(bad).unwrap_err().code(),
                Code::BlockedFileType,
                "{bad:?}"
            );
        }
        // Anything else is no concern of this check: the name is never stored.
        for fine in [
            "report.pdf",
            "r_sum_.pdf",
            "",
            "CON",
            "a\nb.txt",
            "a\u{202E}b.txt",
            "..",
        ] {
            assert!(p.check_name(fine).is_ok(), "{fine:?}");
        }
    }

    #[test]
    fn the_manifest_default_is_the_built_in_list() {
        let manifest = include_str!("../../../spin.toml");
        let line = manifest
            .lines()
            .find(|l| l.starts_with("blocked_extensions = "))
            .expect("blocked_extensions in spin.toml");
        let value = line
            .split_once("default = \"")
            .and_then(|(_, v)| v.split_once('"'))
            .map(|(v, _)| v)
            .expect("a default");
        assert_eq!(
            ExtensionPolicy::from_config(value).unwrap(),
            ExtensionPolicy::default()
        );
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
                    prop_assert!(!s.chars().any(is_invisible));
                    prop_assert!(ExtensionPolicy::default().check_name(s).is_ok());
                    prop_assert!(!s.is_empty() && s.len() <= MAX_FILENAME_BYTES);
                    prop_assert!(!s.ends_with('.') && !s.ends_with(' '));
                }
            }

            #[test]
            fn an_accepted_name_with_an_invisible_character_is_refused(
                stem in "[a-z]{1,8}",
                at in 0usize..8,
                c in proptest::sample::select(vec!['\u{200B}', '\u{200D}', '\u{00AD}', '\u{2028}', '\u{FE0F}', '\u{E0020}', '\u{2062}']),
            ) {
                let mut name: Vec<char> = format!("{stem}.txt").chars().collect();
                name.insert(at.min(name.len()), c);
                let name: String = name.into_iter().collect();
                prop_assert_eq!(
                    SafeFilename::parse(&name, &ExtensionPolicy::default()).map_err(|e| e.code()),
                    Err(Code::InvalidFilename)
                );
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
