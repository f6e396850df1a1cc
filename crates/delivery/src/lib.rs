//! How stored content is delivered over HTTP, as pure functions the `download`
//! component calls and tests exercise natively:
//!
//! - [`disposition`]: [`Disposition`] (attachment or inline), RFC 6266 `Content-Disposition` with an
//!   ASCII fallback and `filename*`, and the parser of the filename an upload names in one;
//! - [`range`]: one `Range: bytes=` range resolved against the size;
//! - [`etag`]: the strong `ETag` (the content's SHA-256) and `If-None-Match` / `If-Range`;
//! - [`answer`]: the status and every header of a content answer (`200`/`206`/`304`/`416`), with the
//!   active-content rule (HTML, SVG, XML, JavaScript: always `attachment` plus
//!   `Content-Security-Policy: sandbox`), `X-Content-Type-Options: nosniff`, `Cache-Control: private`;
//! - [`ScanStatus`] and [`may_serve`]: which scan verdicts may be served;
//! - [`serve`]: the checks a verified URL's attachment must pass ([`serve::check`]) and how content
//!   leaves ([`serve::Mode`]), with their configuration values.
//!
//! No header value built here can contain CR, LF or NUL, whatever the stored metadata holds.

pub mod disposition;
pub mod etag;
pub mod range;
pub mod serve;

pub use disposition::Disposition;
pub use range::RangeOutcome;

/// `Cache-Control` of content answers (and their `304`s).
pub const CACHE_CONTROL: &str = "private";
/// `Content-Security-Policy` of active content.
pub const SANDBOX_CSP: &str = "sandbox";
/// The type served when the stored one is missing or malformed.
pub const FALLBACK_TYPE: &str = "application/octet-stream";

/// A stored scan verdict (`attachment_blobs.scan_status`); the scan domain owns it.
pub use scan_core::ScanStatus;

/// Whether content with this verdict may be served. `infected`/`suspicious` never; `pending`/`error`
/// only when `serve_unscanned` (variable of the same name) is set; `clean`/`skipped` always.
pub fn may_serve(status: ScanStatus, serve_unscanned: bool) -> bool {
    match status {
        ScanStatus::Clean | ScanStatus::Skipped => true,
        ScanStatus::Pending | ScanStatus::Error => serve_unscanned,
        ScanStatus::Infected | ScanStatus::Suspicious => false,
    }
}

/// The media type to send: the stored one's essence (`type/subtype`, lower case) when it is a
/// well-formed token pair, else `application/octet-stream`. Parameters are dropped.
pub fn content_type(stored: Option<&str>) -> String {
    let essence = stored
        .and_then(|s| s.split(';').next())
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let token = |t: &str| {
        !t.is_empty()
            && t.len() <= 127
            && t.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'!' | b'#' | b'$' | b'&' | b'^' | b'_' | b'.' | b'+' | b'-'
                    )
            })
    };
    match essence.split_once('/') {
        Some((t, s)) if token(t) && token(s) => essence,
        _ => FALLBACK_TYPE.to_owned(),
    }
}

/// Types a browser would render or run: HTML, XHTML, SVG, any XML, JavaScript/ECMAScript, XSLT.
pub fn is_active_content(content_type: &str) -> bool {
    let t = content_type.to_ascii_lowercase();
    let t = t.split(';').next().unwrap_or("").trim();
    let (top, sub) = t.split_once('/').unwrap_or((t, ""));
    matches!(
        t,
        "text/html"
            | "application/xhtml+xml"
            | "image/svg+xml"
            | "text/xml"
            | "application/xml"
            | "text/xsl"
            | "application/xslt+xml"
            | "text/javascript"
            | "application/javascript"
            | "application/x-javascript"
            | "text/ecmascript"
            | "application/ecmascript"
            | "text/jscript"
            | "application/x-ecmascript"
            | "text/x-javascript"
            | "text/vtt"
            | "text/cache-manifest"
    ) || sub.ends_with("+xml")
        || sub.ends_with("-xml")
        || (top == "text" && sub.contains("script"))
        || (top == "application" && sub.contains("javascript"))
        || sub == "html"
}

/// What is known about the content being served.
#[derive(Debug, Clone, Copy)]
pub struct Representation<'a> {
    /// Lowercase hex SHA-256.
    pub content_hash: &'a str,
    pub size: u64,
    /// The stored media type (`detected_mime`, else `declared_mime`).
    pub mime: Option<&'a str>,
    pub filename: &'a str,
}

/// The request headers that matter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    pub range: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_range: Option<&'a str>,
}

/// The status and headers of a content answer. For `200`/`206` the body is
/// `outcome.length(size)` bytes of the content (none for `HEAD`); `304` and `416` have no content
/// (the component sends a problem body with the `416`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub outcome: RangeOutcome,
    pub headers: Vec<(&'static str, String)>,
}

/// Decides the answer: `If-None-Match` first (`304`), then `If-Range`, then `Range`.
/// `requested` is the disposition the URL was issued with; active content is always `attachment`.
pub fn answer(rep: &Representation<'_>, requested: Disposition, cond: &Conditions<'_>) -> Answer {
    let etag = etag::strong(rep.content_hash);
    let ctype = content_type(rep.mime);
    let active = is_active_content(&ctype);
    let mut headers: Vec<(&'static str, String)> = vec![
        ("etag", etag.clone()),
        ("cache-control", CACHE_CONTROL.to_owned()),
        ("x-content-type-options", "nosniff".to_owned()),
    ];
    if active {
        headers.push(("content-security-policy", SANDBOX_CSP.to_owned()));
    }
    if let Some(inm) = cond.if_none_match
        && etag::none_match_hits(inm, &etag)
    {
        return Answer {
            status: 304,
            outcome: RangeOutcome::Full,
            headers,
        };
    }
    let range_applies = match cond.if_range {
        None => true,
        Some(v) => etag::if_range_matches(v, &etag),
    };
    let outcome = if range_applies {
        range::resolve(cond.range, rep.size)
    } else {
        RangeOutcome::Full
    };
    headers.push(("accept-ranges", "bytes".to_owned()));
    if let Some(cr) = outcome.content_range(rep.size) {
        headers.push(("content-range", cr));
    }
    if outcome == RangeOutcome::Unsatisfiable {
        return Answer {
            status: 416,
            outcome,
            headers,
        };
    }
    let kind = if active {
        Disposition::Attachment
    } else {
        requested
    };
    headers.push(("content-type", ctype));
    headers.push(("content-length", outcome.length(rep.size).to_string()));
    headers.push((
        "content-disposition",
        disposition::header_value(kind, rep.filename),
    ));
    Answer {
        status: if matches!(outcome, RangeOutcome::Partial { .. }) {
            206
        } else {
            200
        },
        outcome,
        headers,
    }
}

#[cfg(test)]
mod tests;
