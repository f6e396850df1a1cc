//! `Content-Disposition` per RFC 6266: `attachment|inline; filename="<ASCII fallback>";
//! filename*=UTF-8''<percent-encoded>` (RFC 8187).
//!
//! Nothing from a stored filename can break out of the header: the fallback keeps only printable
//! ASCII other than `"`, `\`, `;`, `%` and `/` (each other character becomes `_`), and the `filename*`
//! value is percent-encoded down to RFC 8187 `attr-char`s, so CR, LF, NUL, quotes or semicolons
//! never appear raw. Bidirectional and other invisible formatting characters (e.g. U+202E, used to
//! disguise `exe` as `pdf`) become `_` in both forms.
//!
//! The other direction, the filename a client names in an upload's `Content-Disposition` (or
//! `?filename=`), is [`parse`]: [`filename`] and [`upload_filename`] (the one name stored), and
//! [`filenames`] and [`upload_filenames`] (every name the request carries).

mod parse;

pub use parse::{extended_filename, filename, filenames, upload_filename, upload_filenames};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// RFC 8187 `attr-char`: ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." / "^" / "_" / "`" /
/// "|" / "~"; everything else is percent-encoded.
const ATTR_CHAR_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Longest fallback, in bytes (the extension is kept when cutting).
pub const MAX_FALLBACK_LEN: usize = 150;
/// Longest filename considered, in chars (the database allows 255).
pub const MAX_NAME_CHARS: usize = 255;
/// The name used when nothing usable remains.
pub const DEFAULT_NAME: &str = "download";

/// How content is to be presented: the disposition type of `Content-Disposition`. The one
/// definition of it: the API spells it `"attachment"` / `"inline"` (`POST .../download-url`), signed
/// URLs carry it (`crates/signed-url`), and content answers send it ([`header_value`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Disposition {
    /// Save as a file (the default).
    #[default]
    Attachment,
    /// Show in the browser (never for active content, see [`crate::answer`]).
    Inline,
}

impl Disposition {
    /// The header's and the API's spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Disposition::Attachment => "attachment",
            Disposition::Inline => "inline",
        }
    }

    /// Parses the API's spelling (exact, lower case).
    pub fn from_api(s: &str) -> Option<Self> {
        match s {
            "attachment" => Some(Disposition::Attachment),
            "inline" => Some(Disposition::Inline),
            _ => None,
        }
    }
}

/// Characters that change how text around them is displayed without being visible: bidi
/// embeddings/overrides/isolates and marks, zero-width characters, BOM, line/paragraph separators.
pub fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}'
        | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// The name a download offers for a stored `name` (what `filename*` carries): at most
/// [`MAX_NAME_CHARS`] characters (a short extension kept), control and invisible formatting
/// characters and path separators replaced by `_`, surrounding whitespace and dots trimmed, and
/// [`DEFAULT_NAME`] when nothing remains. Never empty.
pub fn offered_name(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let kept: Vec<char> = if chars.len() > MAX_NAME_CHARS {
        // Keep a short extension when cutting.
        let ext_at = chars
            .iter()
            .rposition(|&c| c == '.')
            .filter(|&i| chars.len() - i <= 16)
            .unwrap_or(chars.len());
        let ext = &chars[ext_at..];
        chars[..MAX_NAME_CHARS - ext.len()]
            .iter()
            .chain(ext)
            .copied()
            .collect()
    } else {
        chars
    };
    let s: String = kept
        .into_iter()
        .map(|c| {
            if c.is_control() || is_invisible_format(c) || c == '/' || c == '\\' {
                '_'
            } else {
                c
            }
        })
        .collect();
    let t = s.trim_matches(|c: char| c.is_whitespace() || c == '.');
    if t.is_empty() {
        DEFAULT_NAME.to_owned()
    } else {
        t.to_owned()
    }
}

/// The ASCII fallback for `filename="..."`.
pub fn ascii_fallback(name: &str) -> String {
    let s: String = offered_name(name)
        .chars()
        .map(|c| match c {
            ' '..='~' if !matches!(c, '"' | '\\' | ';' | '%' | '/') => c,
            _ => '_',
        })
        .collect();
    if s.len() <= MAX_FALLBACK_LEN {
        return s;
    }
    // Keep a short extension.
    match s.rfind('.') {
        Some(dot) if s.len() - dot <= 16 => {
            let ext = &s[dot..];
            format!("{}{ext}", &s[..MAX_FALLBACK_LEN - ext.len()])
        }
        _ => s[..MAX_FALLBACK_LEN].to_owned(),
    }
}

/// The `Content-Disposition` header value.
pub fn header_value(kind: Disposition, filename: &str) -> String {
    let fallback = ascii_fallback(filename);
    let full = offered_name(filename);
    let encoded = utf8_percent_encode(&full, ATTR_CHAR_ENCODE);
    format!(
        "{}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}",
        kind.as_str()
    )
}
