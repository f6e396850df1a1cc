//! The filename a client names for an upload: `Content-Disposition` (RFC 6266: `filename*` in RFC
//! 8187's `UTF-8''<percent-encoded>` preferred, else `filename` as a token or quoted-string), or
//! the `filename` query parameter. Untrusted input: the parser never panics, and a name it returns
//! is non-empty; it does not judge the name (path parts, control characters, extensions): that is
//! the upload policy's job (`attachment_policy::SafeFilename`), which sees exactly what was sent.
//!
//! It reads back what [`super::header_value`] writes: `filename(&header_value(d, name))` is
//! `Some(offered_name(name))` for every `name`.

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

/// The filename a `Content-Disposition` value names: `filename*` when it is present, in UTF-8 and
/// non-empty, else `filename` when non-empty; `None` otherwise. Parameter names are matched in any
/// case; the disposition type (the first element) is not looked at.
pub fn filename(value: &str) -> Option<String> {
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
    extended
        .filter(|n| !n.is_empty())
        .or(plain.filter(|n| !n.is_empty()))
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

    proptest! {
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
