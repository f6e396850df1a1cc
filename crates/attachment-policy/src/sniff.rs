//! Content inspection while the bytes stream by.
//!
//! * The head (first [`HEAD_LEN`] bytes, or the whole content when shorter) decides the kind:
//!   magic bytes by `infer`, plus our own checks for what must never be stored whatever its name
//!   or declared type says: PE (`MZ`), ELF, Mach-O (thin and fat), Windows shortcuts, shebang
//!   scripts (`#!`), PHP (`<?php`), and the executable types `infer` knows (wasm, dex, Java class,
//!   ...).
//! * Markup (HTML, SVG, XML: by content, declared type or extension) is scanned over the WHOLE
//!   stream (with a carry-over between chunks) for script and embedded active content: `<script`,
//!   `<iframe`/`<frame`, `<object`, `<embed`, `<applet`, SVG's `<foreignObject`, `<meta http-equiv`
//!   (refresh redirects), `on*=` event-handler attributes, and `javascript:` / `vbscript:` /
//!   `data:text/html` / `data:image/svg+xml` URLs, the URLs also as a browser reads them: character
//!   references decoded (`&#106;avascript:`, `&#x6A;`, `&colon;`) and the tabs and line breaks it
//!   ignores inside a URL removed (`java&#9;script:`). HTML or SVG without any of that is allowed
//!   (downloads never serve it inline).
//! * The stored media type ([`Detected::mime`]) is the sniffed one when the magic bytes say so;
//!   else markup's own type; else the declared type (or the extension's), unless it is a type the
//!   magic bytes would have recognised (a PNG that is not a PNG) or active content, in which case
//!   `text/plain` for text and `application/octet-stream` for anything else.

use crate::PolicyError;

/// How many leading bytes decide the kind.
pub const HEAD_LEN: usize = 4096;

/// What the inspection concluded so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing wrong (yet).
    Allowed,
    /// Refused, with a client-safe reason.
    Blocked(&'static str),
}

/// The result for content that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// The media type we store and serve (`mimeType`).
    pub mime: String,
    /// What the magic bytes said, if anything (`attachment_blobs.sniffed_mime`).
    pub sniffed: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Markup {
    None,
    Html,
    Svg,
    Xml,
}

/// Inspects one upload's bytes as they stream (see the module docs).
#[derive(Debug, Clone)]
pub struct ContentInspector {
    declared: Option<String>,
    ext_guess: Option<String>,
    declared_markup: Markup,
    head: Vec<u8>,
    decided: bool,
    markup: Markup,
    sniffed: Option<String>,
    carry: Vec<u8>,
    verdict: Verdict,
    total: u64,
    text: bool,
}

/// The type a client declared for an upload (a body's or a part's `Content-Type`) as it is recorded
/// (`declared_mime`) and compared (`multipart/form-data`): the part before any parameter, trimmed,
/// lower case; `None` when that is empty. Not validated: the inspector judges the declared type on
/// its own terms, and nothing is served as declared without that.
pub fn declared_type(content_type: Option<&str>) -> Option<String> {
    let t = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    (!t.is_empty()).then_some(t)
}

fn essence(m: &str) -> Option<String> {
    let parsed: mime::Mime = m.trim().parse().ok()?;
    Some(parsed.essence_str().to_ascii_lowercase())
}

fn markup_of_type(t: &str) -> Markup {
    match t {
        "text/html" | "application/xhtml+xml" => Markup::Html,
        "image/svg+xml" => Markup::Svg,
        "text/xml" | "application/xml" => Markup::Xml,
        _ => Markup::None,
    }
}

fn markup_of_ext(ext: &str) -> Markup {
    match ext {
        "html" | "htm" | "xhtml" | "xht" | "shtml" | "hta" | "mht" | "mhtml" => Markup::Html,
        "svg" | "svgz" => Markup::Svg,
        "xml" | "xsl" | "xslt" => Markup::Xml,
        _ => Markup::None,
    }
}

/// Types the browser may execute or render as active content.
fn is_active(t: &str) -> bool {
    markup_of_type(t) != Markup::None
        || t.contains("javascript")
        || t.contains("ecmascript")
        || t == "text/x-shellscript"
        || t == "application/x-sh"
}

/// Types `infer` recognises by their magic bytes: a declaration of one of these that the magic
/// bytes did not confirm is not believed.
fn is_sniffable(t: &str) -> bool {
    t.starts_with("image/") && t != "image/svg+xml"
        || t.starts_with("audio/")
        || t.starts_with("video/")
        || matches!(
            t,
            "application/pdf"
                | "application/zip"
                | "application/gzip"
                | "application/x-7z-compressed"
                | "application/vnd.rar"
                | "application/x-tar"
                | "application/rtf"
                | "application/wasm"
        )
}

const EXEC_MIME: &[&str] = &[
    "application/vnd.microsoft.portable-executable",
    "application/x-executable",
    "application/x-mach-binary",
    "application/wasm",
    "application/java",
    "application/vnd.android.dex",
    "application/vnd.android.dey",
    "application/x-llvm",
    "text/x-shellscript",
];

/// Judges a declared type on its own, before any byte of the content is seen (a direct upload's
/// claim): a type that names executable or script content is refused now, as the inspector would
/// refuse such content once it sees it. Anything else waits for the content.
pub fn check_declared(declared: Option<&str>) -> Result<(), PolicyError> {
    let Some(t) = declared.and_then(essence) else {
        return Ok(());
    };
    if EXEC_MIME.contains(&t.as_str())
        || t == "application/x-msdownload"
        || t == "application/x-sh"
        || t.contains("javascript")
        || t.contains("ecmascript")
    {
        return Err(PolicyError::BlockedFileType(
            "Executable or script content is not allowed.",
        ));
    }
    Ok(())
}

fn own_magic(head: &[u8]) -> Option<&'static str> {
    let starts = |m: &[u8]| head.starts_with(m);
    if starts(b"MZ") {
        return Some("Executable content (PE) is not allowed.");
    }
    if starts(b"\x7fELF") {
        return Some("Executable content (ELF) is not allowed.");
    }
    for m in [
        &[0xfe, 0xed, 0xfa, 0xce][..],
        &[0xfe, 0xed, 0xfa, 0xcf],
        &[0xce, 0xfa, 0xed, 0xfe],
        &[0xcf, 0xfa, 0xed, 0xfe],
        &[0xca, 0xfe, 0xba, 0xbe],
    ] {
        if starts(m) {
            return Some("Executable content (Mach-O) is not allowed.");
        }
    }
    if starts(&[0x4c, 0x00, 0x00, 0x00, 0x01, 0x14, 0x02, 0x00]) {
        return Some("Windows shortcuts are not allowed.");
    }
    let text = strip_bom_ws(head);
    if text.starts_with(b"#!") || head.starts_with(b"#!") {
        return Some("Scripts are not allowed.");
    }
    if text.len() >= 5 && text[..5].eq_ignore_ascii_case(b"<?php") {
        return Some("Scripts are not allowed.");
    }
    None
}

fn strip_bom_ws(b: &[u8]) -> &[u8] {
    let b = b.strip_prefix(b"\xef\xbb\xbf").unwrap_or(b);
    let i = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    &b[i..]
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `on<letters>\s*=` preceded by whitespace, `/`, `"` or `'` (an event-handler attribute).
fn has_event_handler(lower: &[u8]) -> bool {
    let n = lower.len();
    let mut i = 1;
    while i + 2 < n {
        if lower[i] == b'o'
            && lower[i + 1] == b'n'
            && matches!(
                lower[i - 1],
                b' ' | b'\t' | b'\n' | b'\r' | b'/' | b'"' | b'\''
            )
        {
            let mut j = i + 2;
            while j < n && lower[j].is_ascii_lowercase() {
                j += 1;
            }
            if j - (i + 2) >= 2 {
                while j < n && lower[j].is_ascii_whitespace() {
                    j += 1;
                }
                if j < n && lower[j] == b'=' {
                    return true;
                }
            }
        }
        i += 1;
    }
    false
}

/// Elements that run or embed active content (lowercase, matched at a tag start).
const ACTIVE_ELEMENTS: &[&[u8]] = &[
    b"<script",
    b"<iframe",
    b"<frame",
    b"<object",
    b"<embed",
    b"<applet",
    b"<foreignobject",
];

/// URL schemes that run script or load a document (lowercase).
const ACTIVE_URLS: &[&[u8]] = &[
    b"javascript:",
    b"vbscript:",
    b"data:text/html",
    b"data:image/svg+xml",
];

/// A named character reference a URL scheme could be spelt with, and its character.
const NAMED_REFERENCES: &[(&[u8], u8)] = &[
    (b"colon", b':'),
    (b"sol", b'/'),
    (b"tab", b'\t'),
    (b"newline", b'\n'),
    (b"plus", b'+'),
    (b"period", b'.'),
];

/// `lower` as a browser reads a URL in it: character references decoded, then tab, line feed and
/// carriage return removed (the URL parser drops them anywhere in a URL).
fn as_url_text(lower: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::with_capacity(lower.len());
    let mut i = 0;
    while i < lower.len() {
        if lower[i] == b'&'
            && let Some((ch, used)) = character_reference(&lower[i + 1..])
        {
            decoded.push(ch);
            i += 1 + used;
            continue;
        }
        decoded.push(lower[i]);
        i += 1;
    }
    decoded.retain(|b| !matches!(b, b'\t' | b'\n' | b'\r'));
    decoded
}

/// The ASCII character of a reference after `&` (`#106;`, `#x6a`, `colon;`) and the bytes it used;
/// `None` for anything else (non-ASCII characters cannot spell a scheme).
fn character_reference(after: &[u8]) -> Option<(u8, usize)> {
    let (digits, radix, start) = match after {
        [b'#', b'x', ..] => (&after[2..], 16, 2),
        [b'#', ..] => (&after[1..], 10, 1),
        _ => {
            let (name, ch) = NAMED_REFERENCES
                .iter()
                .find(|(name, _)| after.starts_with(name))?;
            let used = name.len() + usize::from(after.get(name.len()) == Some(&b';'));
            return Some((*ch, used));
        }
    };
    // Browsers accept leading zeros and a missing `;`.
    let len = digits
        .iter()
        .take_while(|b| char::from(**b).is_digit(radix))
        .count();
    if len == 0 || len > 8 {
        return None;
    }
    let value = u32::from_str_radix(std::str::from_utf8(&digits[..len]).ok()?, radix).ok()?;
    let ch = u8::try_from(value).ok().filter(u8::is_ascii)?;
    let used = start + len + usize::from(digits.get(len) == Some(&b';'));
    Some((ch.to_ascii_lowercase(), used))
}

fn script_marker(lower: &[u8]) -> bool {
    if ACTIVE_ELEMENTS.iter().any(|e| contains(lower, e))
        || contains(lower, b"http-equiv")
        || has_event_handler(lower)
    {
        return true;
    }
    let url_text = as_url_text(lower);
    ACTIVE_URLS.iter().any(|u| contains(&url_text, u))
}

/// Overlap kept between chunks so a marker split across them is still seen (a scheme spelt with
/// character references takes up to ~11 × 10 bytes).
const CARRY: usize = 160;

fn looks_text(head: &[u8], complete: bool) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        // A multi-byte character cut at the end of a partial head.
        Err(e) => !complete && e.error_len().is_none() && e.valid_up_to() + 4 > head.len(),
    }
}

impl ContentInspector {
    /// A new inspection, with the client's declared type and the filename's extension.
    pub fn new(declared: Option<&str>, extension: Option<&str>) -> Self {
        let declared = declared.and_then(essence);
        let ext = extension.map(str::to_ascii_lowercase);
        let ext_guess = ext
            .as_deref()
            .and_then(|e| mime_guess::from_ext(e).first())
            .map(|m| m.essence_str().to_ascii_lowercase());
        let mut declared_markup = declared.as_deref().map_or(Markup::None, markup_of_type);
        if declared_markup == Markup::None {
            declared_markup = ext.as_deref().map_or(Markup::None, markup_of_ext);
        }
        Self {
            declared,
            ext_guess,
            declared_markup,
            head: Vec::new(),
            decided: false,
            markup: Markup::None,
            sniffed: None,
            carry: Vec::new(),
            verdict: Verdict::Allowed,
            total: 0,
            text: false,
        }
    }

    /// The verdict so far.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    fn block(&mut self, why: &'static str) -> Result<(), PolicyError> {
        self.verdict = Verdict::Blocked(why);
        Err(PolicyError::BlockedFileType(why))
    }

    fn check(&self) -> Result<(), PolicyError> {
        match self.verdict {
            Verdict::Allowed => Ok(()),
            Verdict::Blocked(why) => Err(PolicyError::BlockedFileType(why)),
        }
    }

    /// Feeds the next chunk; `Err(blocked_file_type)` as soon as the content is known to be bad.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), PolicyError> {
        self.check()?;
        self.total += chunk.len() as u64;
        if !self.decided {
            let take = (HEAD_LEN - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
            if self.head.len() == HEAD_LEN {
                self.decide(false)?;
                return self.scan(&chunk[take..]);
            }
            return Ok(());
        }
        self.scan(chunk)
    }

    fn decide(&mut self, complete: bool) -> Result<(), PolicyError> {
        self.decided = true;
        let head = std::mem::take(&mut self.head);
        if let Some(why) = own_magic(&head) {
            return self.block(why);
        }
        if let Some(t) = infer::get(&head) {
            let m = t.mime_type();
            if EXEC_MIME.contains(&m) {
                return self.block("Executable content is not allowed.");
            }
            self.sniffed = Some(m.to_owned());
        }
        let text = looks_text(&head, complete);
        let lower_head = head.to_ascii_lowercase();
        let trimmed = strip_bom_ws(&lower_head);
        let content_markup = if !text {
            Markup::None
        } else if contains(&lower_head, b"<svg") {
            Markup::Svg
        } else if trimmed.starts_with(b"<?xml") {
            Markup::Xml
        } else if trimmed.starts_with(b"<") {
            Markup::Html
        } else {
            Markup::None
        };
        self.markup = match (content_markup, self.declared_markup) {
            (Markup::None, d) if text => d,
            (c, _) => c,
        };
        if self.sniffed.as_deref() == Some("text/html") && self.markup == Markup::None {
            self.markup = Markup::Html;
        }
        self.text = text;
        self.scan(&head)
    }

    fn scan(&mut self, chunk: &[u8]) -> Result<(), PolicyError> {
        if self.markup == Markup::None || chunk.is_empty() {
            return Ok(());
        }
        let mut window = std::mem::take(&mut self.carry);
        window.extend(chunk.iter().map(u8::to_ascii_lowercase));
        if script_marker(&window) {
            return self.block("HTML or SVG content with script is not allowed.");
        }
        let keep = window.len().min(CARRY);
        self.carry = window[window.len() - keep..].to_vec();
        Ok(())
    }

    /// Ends the inspection: the stored type, or the refusal.
    pub fn finish(&mut self) -> Result<Detected, PolicyError> {
        self.check()?;
        if !self.decided {
            self.decide(true)?;
        }
        let text = self.text;
        let mime = if let Some(s) = &self.sniffed {
            s.clone()
        } else {
            match self.markup {
                Markup::Html => "text/html".to_owned(),
                Markup::Svg => "image/svg+xml".to_owned(),
                Markup::Xml => "application/xml".to_owned(),
                Markup::None => {
                    let claimed = self
                        .declared
                        .clone()
                        .filter(|d| d != "application/octet-stream")
                        .or_else(|| self.ext_guess.clone());
                    match claimed {
                        Some(c) if !is_sniffable(&c) && !is_active(&c) => {
                            if text || !c.starts_with("text/") {
                                c
                            } else {
                                "application/octet-stream".to_owned()
                            }
                        }
                        _ if text && self.total > 0 => "text/plain".to_owned(),
                        _ => "application/octet-stream".to_owned(),
                    }
                }
            }
        };
        Ok(Detected {
            mime,
            sniffed: self.sniffed.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn declared_executable_and_script_types_are_refused_before_content() {
        for t in [
            "application/x-msdownload",
            "application/vnd.microsoft.portable-executable",
            "text/javascript; charset=utf-8",
            "Application/X-SH",
        ] {
            assert!(check_declared(Some(t)).is_err(), "{t}");
        }
        for t in ["application/pdf", "text/html", "image/png", "not a type"] {
            assert_eq!(check_declared(Some(t)), Ok(()), "{t}");
        }
        assert_eq!(check_declared(None), Ok(()));
    }

    use super::*;
    use problem::Code;

    fn run(declared: Option<&str>, ext: Option<&str>, chunks: &[&[u8]]) -> Result<Detected, Code> {
        let mut i = ContentInspector::new(declared, ext);
        for c in chunks {
            i.feed(c).map_err(|e| e.code())?;
        }
        i.finish().map_err(|e| e.code())
    }

    fn one(declared: Option<&str>, ext: Option<&str>, body: &[u8]) -> Result<Detected, Code> {
        run(declared, ext, &[body])
    }

    #[test]
    fn declared_types_as_recorded() {
        assert_eq!(
            declared_type(Some("Text/Plain; charset=utf-8")).as_deref(),
            Some("text/plain")
        );
        assert_eq!(
            declared_type(Some(" multipart/form-data ; boundary=x")).as_deref(),
            Some("multipart/form-data")
        );
        assert_eq!(declared_type(Some("; charset=utf-8")), None);
        assert_eq!(declared_type(Some("")), None);
        assert_eq!(declared_type(None), None);
    }

    const PNG: &[u8] =
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    const PDF: &[u8] = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n";

    #[test]
    fn executables_are_blocked_whatever_they_claim() {
        let b = Code::BlockedFileType;
        let mut pe = b"MZ\x90\0\x03\0\0\0".to_vec();
        pe.resize(600, 0);
        assert_eq!(
            one(Some("application/pdf"), Some("pdf"), &pe).unwrap_err(),
            b
        );
        assert_eq!(
            one(None, Some("pdf"), b"\x7fELF\x02\x01\x01\0").unwrap_err(),
            b
        );
        assert_eq!(
            one(None, Some("txt"), &[0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1]).unwrap_err(),
            b
        );
        assert_eq!(
            one(None, Some("bin2"), &[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 2]).unwrap_err(),
            b
        );
        assert_eq!(
            one(Some("text/plain"), Some("txt"), b"#!/bin/sh\nrm -rf /\n").unwrap_err(),
            b
        );
        assert_eq!(
            one(None, Some("txt"), b"\xef\xbb\xbf  #!/usr/bin/env python\n").unwrap_err(),
            b
        );
        assert_eq!(
            one(None, Some("txt"), b"<?php system($_GET['c']); ?>").unwrap_err(),
            b
        );
        assert_eq!(one(None, Some("wasm"), b"\0asm\x01\0\0\0").unwrap_err(), b);
        // Magic split across tiny chunks is still seen.
        assert_eq!(
            run(None, Some("pdf"), &[b"\x7f", b"EL", b"F\x02"]).unwrap_err(),
            b
        );
    }

    #[test]
    fn markup_with_script_is_blocked() {
        let b = Code::BlockedFileType;
        assert_eq!(
            one(
                None,
                Some("html"),
                b"<html><script>alert(1)</script></html>"
            )
            .unwrap_err(),
            b
        );
        assert_eq!(
            one(
                Some("image/svg+xml"),
                Some("svg"),
                br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>"#
            )
            .unwrap_err(),
            b
        );
        assert_eq!(
            one(
                None,
                Some("svg"),
                br#"<svg><a href="javascript:alert(1)">x</a></svg>"#
            )
            .unwrap_err(),
            b
        );
        assert_eq!(
            one(
                None,
                Some("svg"),
                br#"<svg><a xlink:href = "JaVaScRiPt:x">"#
            )
            .unwrap_err(),
            b
        );
        assert_eq!(
            one(
                Some("text/plain"),
                Some("txt"),
                b"<img src=x onerror =alert(1)>"
            )
            .unwrap_err(),
            b
        );
        // HTML declared as an image, script far beyond the head and split across chunks.
        let mut big = b"<!DOCTYPE html><html><body>".to_vec();
        big.resize(10_000, b' ');
        assert_eq!(
            run(
                Some("image/png"),
                Some("png"),
                &[&big, b"<scr", b"ipt>x</script>"]
            )
            .unwrap_err(),
            b
        );
    }

    #[test]
    fn script_urls_spelt_as_a_browser_would_read_them_are_blocked() {
        let b = Code::BlockedFileType;
        for body in [
            &br#"<a href="&#106;avascript:alert(1)">x</a>"#[..],
            br#"<a href="&#x6A;avascript:alert(1)">x</a>"#,
            br#"<a href="&#X6a;avascript:alert(1)">x</a>"#,
            br#"<a href="&#0000106avascript:alert(1)">x</a>"#,
            br#"<a href="java&#9;script:alert(1)">x</a>"#,
            br#"<a href="java&Tab;script:alert(1)">x</a>"#,
            b"<a href=\"java\tscr\nipt:alert(1)\">x</a>",
            br#"<a href="javascript&colon;alert(1)">x</a>"#,
            br#"<a href="vbscript&#58;x">x</a>"#,
            br#"<svg><use href="data:image/svg+xml;base64,PHN2Zz4="/></svg>"#,
            br#"<svg><animate attributeName="href" to="&#106;avascript:x"/></svg>"#,
        ] {
            assert_eq!(
                one(None, Some("html"), body).unwrap_err(),
                b,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn embedded_active_content_is_blocked() {
        let b = Code::BlockedFileType;
        for body in [
            &br#"<html><iframe srcdoc="<p>x</p>"></iframe></html>"#[..],
            br#"<html><frame src="x.html"></html>"#,
            br#"<html><object data="x.swf"></object></html>"#,
            br#"<html><EMBED src="x"></html>"#,
            br#"<html><applet code="x"></applet></html>"#,
            br#"<svg><foreignObject><div>x</div></foreignObject></svg>"#,
            br#"<html><meta http-equiv="refresh" content="0;url=https://evil.example"></html>"#,
        ] {
            assert_eq!(
                one(None, Some("html"), body).unwrap_err(),
                b,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Split across chunks, references and all.
        assert_eq!(
            run(
                None,
                Some("html"),
                &[b"<html><a href=\"&#x6A;&#x61;&#x76;", b"&#x61;script:x\">"]
            )
            .unwrap_err(),
            b
        );
    }

    #[test]
    fn character_references_and_words_alone_are_fine() {
        for body in [
            &b"<p>Fish &amp; chips, 3 &lt; 4, caf&eacute;, &#169; 2026</p>"[..],
            b"<p>Learn Java script: the basics</p>",
            b"<p>The frameworks we embedded in the objects</p>",
            b"<p>Ratio 1&colon;2 &#58; noted</p>",
        ] {
            let d = one(Some("text/html"), Some("html"), body).unwrap();
            assert_eq!(d.mime, "text/html", "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn markup_without_script_passes_as_itself() {
        let d = one(
            None,
            Some("svg"),
            br#"<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>"#,
        )
        .unwrap();
        assert_eq!(d.mime, "image/svg+xml");
        let d = one(
            Some("text/html"),
            Some("html"),
            b"<p>Once upon a time, one=two</p>",
        )
        .unwrap();
        assert_eq!(d.mime, "text/html");
    }

    #[test]
    fn plain_text_mentioning_script_words_is_fine() {
        let d = one(
            Some("text/plain"),
            Some("txt"),
            b"Use javascript wisely; onion = tasty.\n",
        )
        .unwrap();
        assert_eq!(d.mime, "text/plain");
        let d = one(Some("text/csv"), Some("csv"), b"a,b\n1,2\n").unwrap();
        assert_eq!(d.mime, "text/csv");
    }

    #[test]
    fn spoofed_types_are_corrected() {
        // PDF content declared as PNG: stored as PDF.
        let d = one(Some("image/png"), Some("png"), PDF).unwrap();
        assert_eq!(d.mime, "application/pdf");
        assert_eq!(d.sniffed.as_deref(), Some("application/pdf"));
        // Genuine PNG.
        assert_eq!(
            one(Some("image/png"), Some("png"), PNG).unwrap().mime,
            "image/png"
        );
        // Claimed PNG that is not one.
        assert_eq!(
            one(Some("image/png"), Some("png"), b"hello").unwrap().mime,
            "text/plain"
        );
        assert_eq!(
            one(Some("application/pdf"), Some("pdf"), &[1, 2, 3, 0, 200])
                .unwrap()
                .mime,
            "application/octet-stream"
        );
        // Text declared as HTML-ish active content but without markup: not served as declared.
        assert_eq!(
            one(Some("application/javascript"), Some("txt"), b"var x = 1;")
                .unwrap()
                .mime,
            "text/plain"
        );
        // Unknown binary with a harmless declared type keeps it.
        assert_eq!(
            one(
                Some("application/vnd.ms-excel"),
                Some("xls"),
                &[9, 8, 7, 0, 1]
            )
            .unwrap()
            .mime,
            "application/vnd.ms-excel"
        );
        // No declaration: the extension's type.
        assert_eq!(one(None, Some("csv"), b"a,b").unwrap().mime, "text/csv");
        // Empty content.
        assert_eq!(one(None, Some("txt"), b"").unwrap().mime, "text/plain");
    }
}
