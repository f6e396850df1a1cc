//! `Range: bytes=` handling for one representation of known size (RFC 9110 §14).
//!
//! Choices (openapi.yaml, `SignedContentUrl`): one satisfiable range → `206`; a range unit other
//! than `bytes` is ignored (RFC 9110 §14.2: MUST ignore) → `200`; several ranges → `200` with the
//! whole content (as S3 answers); a malformed or unsatisfiable `bytes` range (start at or past the
//! end, reversed, `-0`, garbage) → `416` with `Content-Range: bytes */size`. A suffix longer than
//! the content selects the whole content (RFC 9110 §14.1.2), answered `206`.

use http_range_header::{EndPosition, StartPosition};

/// What the `Range` header asks for, resolved against the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No usable range: send everything (`200`).
    Full,
    /// One range, inclusive byte positions `first..=last` (`206`).
    Partial { first: u64, last: u64 },
    /// `416`.
    Unsatisfiable,
}

impl RangeOutcome {
    /// The `Content-Range` value for `206`/`416`.
    pub fn content_range(self, size: u64) -> Option<String> {
        match self {
            RangeOutcome::Full => None,
            RangeOutcome::Partial { first, last } => Some(format!("bytes {first}-{last}/{size}")),
            RangeOutcome::Unsatisfiable => Some(format!("bytes */{size}")),
        }
    }
    /// The number of body bytes sent.
    pub fn length(self, size: u64) -> u64 {
        match self {
            RangeOutcome::Full => size,
            RangeOutcome::Partial { first, last } => last - first + 1,
            RangeOutcome::Unsatisfiable => 0,
        }
    }
    /// The storage `Range` header to request, if any.
    pub fn storage_range(self) -> Option<String> {
        match self {
            RangeOutcome::Partial { first, last } => Some(format!("bytes={first}-{last}")),
            _ => None,
        }
    }
}

/// Resolves a `Range` header value against a representation of `size` bytes.
pub fn resolve(header: Option<&str>, size: u64) -> RangeOutcome {
    let Some(value) = header.map(str::trim) else {
        return RangeOutcome::Full;
    };
    let Some((unit, _)) = value.split_once('=') else {
        return RangeOutcome::Unsatisfiable;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeOutcome::Full;
    }
    // The parser wants the unit in lower case with nothing around it.
    let normalised = format!("bytes={}", &value[unit.len() + 1..]);
    let Ok(parsed) = http_range_header::parse_range_header(&normalised) else {
        return RangeOutcome::Unsatisfiable;
    };
    if parsed.ranges.len() != 1 {
        return RangeOutcome::Full;
    }
    let r = parsed.ranges[0];
    if size == 0 {
        return RangeOutcome::Unsatisfiable;
    }
    let (first, last) = match (r.start, r.end) {
        (StartPosition::FromLast(n), _) => {
            // `-0` is refused by the parser; a suffix past the start is the whole content.
            (size.saturating_sub(n), size - 1)
        }
        (StartPosition::Index(first), EndPosition::LastByte) => (first, size - 1),
        (StartPosition::Index(first), EndPosition::Index(last)) => {
            if last < first {
                return RangeOutcome::Unsatisfiable;
            }
            (first, last.min(size - 1))
        }
    };
    if first >= size {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Partial { first, last }
}
