//! The filename a client names for an upload: `Content-Disposition` (RFC 6266: `filename*` in RFC
//! 8187's `UTF-8''<percent-encoded>` preferred, else `filename` as a token or quoted-string), or
//! the `filename` query parameter. Untrusted input: the parser never panics, and a name it returns
//! is non-empty; it does not judge the name (path parts, control characters, extensions): that is
//! the upload policy's job (`attachment_policy::SafeFilename`), which sees exactly what was sent.
//!
//! It reads back what [`super::header_value`] writes: `filename(&header_value(d, name))` is
//! `Some(offered_name(name))` for every `name`.
//!
//! A request may name its file several times (`filename` and `filename*`, RFC 2231 continuations
//! `filename*0*=...`, one or more `?filename=`): [`upload_filenames`] and [`filenames`] list every
//! such name, decoded permissively (any charset, invalid UTF-8 replaced), for the checks that must
//! hold for each of them, whichever one a client or mail program downstream ends up showing.

use percent_encoding::percent_decode_str;

/// The filename of an upload: the `Content-Disposition` header's when it names one, else the first
/// `filename=` parameter of the query (`+` for a space, percent-encoded UTF-8). `None` when neither
/// names a non-empty one (or the query's is not UTF-8).
pub fn upload_filename(content_disposition: Option<&str>, query: Option<&str>) -> Option<String> {
    if let Some(name) = content_disposition.and_then(filename) {
        return Some(name);
    }
    let value = query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("filename="))?
        .replace('+', " ");
    let name = percent_decode_str(&value).decode_utf8().ok()?;
    (!name.is_empty()).then(|| name.into_owned())
}

/// Every filename the upload request names: all of [`filenames`] of the header, then every
/// `filename=` parameter of the query. Names that decode to nothing are left out.
pub fn upload_filenames(content_disposition: Option<&str>, query: Option<&str>) -> Vec<String> {
    let mut out = content_disposition.map(filenames).unwrap_or_default();
    for pair in query.unwrap_or("").split('&') {
        if let Some(value) = pair.strip_prefix("filename=") {
            let value = value.replace('+', " ");
            out.push(percent_decode_str(&value).decode_utf8_lossy().into_owned());
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

/// Every filename a `Content-Disposition` value names, in any form: each `filename`, each
/// `filename*` (any charset; bytes that are not UTF-8 replaced), and the RFC 2231 continuations
/// (`filename*0`, `filename*1*`, ...) joined in order. Parameter names in any case; empty names
/// are left out. Never panics.
pub fn filenames(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut continued: Vec<(u32, String)> = Vec::new();
    for param in split_params(value).into_iter().skip(1) {
        let Some((key, v)) = param.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let v = v.trim();
        if key == "filename" {
            out.push(unquote(v));
        } else if key == "filename*" {
            out.push(ext_value_lossy(v));
        } else if let Some(rest) = key.strip_prefix("filename*") {
            let (index, extended) = match rest.strip_suffix('*') {
                Some(i) => (i, true),
                None => (rest, false),
            };
            let Ok(index) = index.parse::<u32>() else {
                continue;
            };
            let part = if extended && index == 0 {
                ext_value_lossy(v)
            } else if extended {
                percent_decode_str(v).decode_utf8_lossy().into_owned()
            } else {
                unquote(v)
            };
            continued.push((index, part));
        }
    }
    if !continued.is_empty() {
        continued.sort_by_key(|(i, _)| *i);
        out.push(continued.into_iter().map(|(_, p)| p).collect());
    }
    out.retain(|n| !n.is_empty());
    out
}

/// An RFC 8187 `ext-value` in any charset, decoded as UTF-8 with replacement characters; a value
/// without the `charset'language'` prefix is percent-decoded as it is.
fn ext_value_lossy(v: &str) -> String {
    let encoded = v
        .split_once('\'')
        .and_then(|(_, rest)| rest.split_once('\''))
        .map_or(v, |(_, e)| e);
    percent_decode_str(encoded).decode_utf8_lossy().into_owned()
}

/// The filename a `Content-Disposition` value names: `filename*` when it is present, in UTF-8 and
/// non-empty, else `filename` when non-empty; `None` otherwise. Parameter names are matched in any
/// case; the disposition type (the first element) is not looked at.
pub fn filename(value: &str) -> Option<String> {
    let (plain, extended) = both_forms(value);
    extended
        .filter(|n| !n.is_empty())
        .or(plain.filter(|n| !n.is_empty()))
}

/// The `filename*` of a `Content-Disposition` value when it is present, in UTF-8 and non-empty
/// (what [`filename`] prefers).
pub fn extended_filename(value: &str) -> Option<String> {
    both_forms(value).1.filter(|n| !n.is_empty())
}

/// The last `filename` and the last UTF-8 `filename*`.
fn both_forms(value: &str) -> (Option<String>, Option<String>) {
    let mut plain = None;
    let mut extended = None;
    for param in split_params(value).into_iter().skip(1) {
        let Some((key, v)) = param.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let v = v.trim();
        if key == "filename*" {
            if let Some(name) = ext_value(v) {
                extended = Some(name);
            }
        } else if key == "filename" {
            plain = Some(unquote(v));
        }
    }
    (plain, extended)
}

/// RFC 8187 `ext-value` in UTF-8: `UTF-8'<language>'<percent-encoded>`; other charsets, or bytes
/// that are not UTF-8, are `None`.
fn ext_value(v: &str) -> Option<String> {
    let (charset, rest) = v.split_once('\'')?;
    let (_language, encoded) = rest.split_once('\'')?;
    if !charset.eq_ignore_ascii_case("utf-8") {
        return None;
    }
    percent_decode_str(encoded)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// Splits at the `;`s outside quoted-strings (a backslash escapes the next character inside one).
fn split_params(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => {
                cur.push(c);
                escaped = true;
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// A quoted-string's content with its escapes resolved; a token as it is.
fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return v.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::disposition::{Disposition, header_value, offered_name};

    #[test]
    fn filename_star_is_preferred_and_decoded() {
        assert_eq!(
            filename("attachment; filename=\"resume.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf")
                .as_deref(),
            Some("résumé.pdf")
        );
        assert_eq!(
            filename("attachment; FILENAME*=utf-8'en'a%20b.txt").as_deref(),
            Some("a b.txt")
        );
    }

    #[test]
    fn tokens_and_quoted_strings() {
        assert_eq!(
            filename("attachment; filename=plain.txt").as_deref(),
            Some("plain.txt")
        );
        assert_eq!(
            filename("attachment; filename=\"a;b \\\"q\\\".txt\"").as_deref(),
            Some("a;b \"q\".txt")
        );
        // The name is returned as sent: judging it is the upload policy's job.
        assert_eq!(
            filename("attachment; filename=\"../../etc/passwd\"").as_deref(),
            Some("../../etc/passwd")
        );
        assert_eq!(
            filename("attachment; filename*=UTF-8''nul%00.txt").as_deref(),
            Some("nul\0.txt")
        );
    }

    #[test]
    fn no_usable_name_is_none_or_falls_back() {
        assert_eq!(filename("attachment"), None);
        assert_eq!(filename(""), None);
        assert_eq!(filename("filename=first-element-is-the-type.txt"), None);
        assert_eq!(filename("attachment; filename=\"\""), None);
        assert_eq!(filename("attachment; filename*=UTF-8''"), None);
        // A broken or non-UTF-8 filename* falls back to filename.
        assert_eq!(
            filename("attachment; filename*=latin1''x; filename=y.txt").as_deref(),
            Some("y.txt")
        );
        assert_eq!(
            filename("attachment; filename*=UTF-8''%FF.txt; filename=y.txt").as_deref(),
            Some("y.txt")
        );
        assert_eq!(
            filename("attachment; filename*=UTF-8''x.txt; filename=\"\"").as_deref(),
            Some("x.txt")
        );
        // Unbalanced quotes and stray escapes never panic.
        assert_eq!(
            filename("attachment; filename=\"open").as_deref(),
            Some("\"open")
        );
        assert_eq!(
            filename("attachment; filename=\"\\").as_deref(),
            Some("\"\\")
        );
    }

    #[test]
    fn the_header_first_then_the_query() {
        assert_eq!(
            upload_filename(None, Some("a=1&filename=r%C3%A9s+1.pdf")).as_deref(),
            Some("rés 1.pdf")
        );
        assert_eq!(
            upload_filename(Some("attachment; filename=x.txt"), Some("filename=y.txt")).as_deref(),
            Some("x.txt")
        );
        assert_eq!(
            upload_filename(Some("attachment"), Some("filename=y.txt")).as_deref(),
            Some("y.txt")
        );
        assert_eq!(upload_filename(None, Some("filename=")), None);
        assert_eq!(upload_filename(None, Some("filename=%FF")), None);
        assert_eq!(upload_filename(None, Some("name=x.txt")), None);
        assert_eq!(upload_filename(None, None), None);
    }

    #[test]
    fn every_name_of_a_request() {
        let all = |cd: &str, q: &str| upload_filenames(Some(cd), Some(q));
        assert_eq!(
            all(
                "attachment; filename=\"invoice.pdf\"; filename*=UTF-8''evil.exe",
                "a=1&filename=x.js&filename=y+z.txt"
            ),
            ["invoice.pdf", "evil.exe", "x.js", "y z.txt"]
        );
        // Other charsets and bytes that are not UTF-8 are still read.
        assert_eq!(
            filenames("attachment; filename*=iso-8859-1'en'r%E9sum%E9.exe"),
            ["r\u{FFFD}sum\u{FFFD}.exe"]
        );
        assert_eq!(filenames("attachment; FILENAME*=x.exe"), ["x.exe"]);
        assert_eq!(
            extended_filename("form-data; filename=\"a.txt\"; filename*=UTF-8''b%C3%A9.txt")
                .as_deref(),
            Some("bé.txt")
        );
        assert_eq!(extended_filename("form-data; filename=\"a.txt\""), None);
        // RFC 2231 continuations, joined in their order.
        assert_eq!(
            filenames("attachment; filename*1=\".ex\"; filename*0*=UTF-8''evil; filename*2*=e"),
            ["evil.exe"]
        );
        assert_eq!(
            filenames("attachment; filename*x=a.exe"),
            Vec::<String>::new()
        );
        assert_eq!(
            filenames("attachment; filename=\"\"; filename*=UTF-8''"),
            Vec::<String>::new()
        );
        assert_eq!(
            upload_filenames(None, Some("filename=%FF.exe")),
            ["\u{FFFD}.exe"]
        );
        assert!(upload_filenames(None, None).is_empty());
    }

    proptest! {
        #[test]
        fn every_name_includes_the_chosen_one(value in any::<String>(), query in any::<String>()) {
            let all = upload_filenames(Some(&value), Some(&query));
            prop_assert!(all.iter().all(|n| !n.is_empty()));
            if let Some(name) = upload_filename(Some(&value), Some(&query)) {
                prop_assert!(all.contains(&name), "{name:?} not in {all:?}");
            }
        }

        #[test]
        fn never_panics_and_never_names_nothing(value in any::<String>(), query in any::<String>()) {
            if let Some(name) = filename(&value) {
                prop_assert!(!name.is_empty());
            }
            if let Some(name) = upload_filename(Some(&value), Some(&query)) {
                prop_assert!(!name.is_empty());
            }
        }

        #[test]
        fn reads_back_what_downloads_send(name in any::<String>(), inline in any::<bool>()) {
            let d = if inline { Disposition::Inline } else { Disposition::Attachment };
            prop_assert_eq!(filename(&header_value(d, &name)), Some(offered_name(&name)));
        }
    }
}
