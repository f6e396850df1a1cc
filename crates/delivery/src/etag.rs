//! The strong `ETag` of stored content (its SHA-256) and the conditional headers that use it.

/// `"<lowercase hex sha-256>"`. Anything that is not 64 hex digits (never expected) is replaced
/// by its hex-safe characters so the header stays well-formed.
pub fn strong(content_hash: &str) -> String {
    let h: String = content_hash
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .take(64)
        .collect();
    format!("\"{h}\"")
}

/// The opaque-tag of an entity-tag (`W/"x"` and `"x"` both give `x`); `None` when malformed.
fn opaque(tag: &str) -> Option<(bool, &str)> {
    let tag = tag.trim();
    let (weak, rest) = match tag.strip_prefix("W/") {
        Some(r) => (true, r),
        None => (false, tag),
    };
    let inner = rest.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('"')).then_some((weak, inner))
}

/// `If-None-Match` (RFC 9110 §13.1.2): `*` or a list of entity-tags compared weakly.
pub fn none_match_hits(header: &str, etag: &str) -> bool {
    let Some((_, ours)) = opaque(etag) else {
        return false;
    };
    header.split(',').any(|t| {
        let t = t.trim();
        t == "*" || opaque(t).is_some_and(|(_, o)| o == ours)
    })
}

/// `If-Range` (RFC 9110 §13.1.5): applies the range only for a strong match of the entity-tag.
/// A date (we send no `Last-Modified`) or a weak tag never matches.
pub fn if_range_matches(header: &str, etag: &str) -> bool {
    match (opaque(header), opaque(etag)) {
        (Some((false, theirs)), Some((_, ours))) => theirs == ours,
        _ => false,
    }
}
