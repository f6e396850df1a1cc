//! Whether and how the content a verified URL names is served: the checks after the signature and
//! the expiry, in their documented order ([`check`]: deleted, revoked, scan verdict), and how the
//! content leaves ([`Mode`], decided per answer as a [`Via`]: streamed through the component or
//! redirected to storage), with the configuration values that choose them.

use crate::{ScanStatus, may_serve};

/// How content leaves (variable `download_mode`): the configured policy, which [`Mode::via`] turns
/// into the way one answer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Streamed up to `download_stream_max_bytes` of body, redirected above it (default): what a
    /// platform with a response cap (Fermyon Wasm Functions, Akamai Functions: 10 MiB) can serve.
    #[default]
    Auto,
    /// Always streamed through the component: a deployment that cannot expose its bucket, on a host
    /// without a response cap (`spin up`, SpinKube).
    Stream,
    /// Always a `302` to a presigned storage URL, after the same checks.
    Redirect,
}

/// How one answer's content leaves (also what its `attachment.download` audit row records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Through the component, as its body.
    Stream,
    /// A `302` to a presigned storage `GET`.
    Redirect,
}

/// `download_stream_max_bytes` when unset: the response-body cap of Fermyon Wasm Functions and Akamai
/// Functions (10 MiB). A body of exactly this size still streams.
pub const DEFAULT_STREAM_MAX_BYTES: u64 = 10 << 20;

impl Mode {
    /// Parses `download_mode`: `auto` (or empty) | `stream` | `redirect`.
    pub fn from_config(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" | "" => Ok(Self::Auto),
            "stream" => Ok(Self::Stream),
            "redirect" => Ok(Self::Redirect),
            other => Err(format!(
                "download_mode: {other:?} is not auto|stream|redirect"
            )),
        }
    }

    /// How an answer whose body is `length` bytes leaves (the range's length for a `206`, the whole
    /// size for a `200`), with `stream_max` = `download_stream_max_bytes`.
    pub const fn via(self, length: u64, stream_max: u64) -> Via {
        match self {
            Self::Stream => Via::Stream,
            Self::Redirect => Via::Redirect,
            Self::Auto if length <= stream_max => Via::Stream,
            Self::Auto => Via::Redirect,
        }
    }
}

impl Via {
    /// Its name in `attachment.download` audit rows (`details.mode`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Stream => "stream",
            Self::Redirect => "redirect",
        }
    }
}

/// Parses `download_stream_max_bytes`: a decimal byte count of at least 1 (empty: the default,
/// [`DEFAULT_STREAM_MAX_BYTES`]). `0` is refused rather than read as "redirect everything", which
/// is what `download_mode = redirect` says.
pub fn stream_max_from_config(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(DEFAULT_STREAM_MAX_BYTES);
    }
    match s.parse::<u64>() {
        Ok(n) if n >= 1 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!(
            "download_stream_max_bytes: {s:?} is not a byte count of at least 1"
        )),
    }
}

/// Parses `serve_unscanned`: `true` | `false` (or empty).
pub fn serve_unscanned_from_config(s: &str) -> Result<bool, String> {
    match s.trim() {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        other => Err(format!("serve_unscanned: {other:?} is not true|false")),
    }
}

/// What the database holds now for the attachment a verified URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    /// Soft-deleted.
    pub is_deleted: bool,
    /// Its `url_generation` (revoking bumps it).
    pub generation: u32,
    /// Its content's verdict.
    pub scan_status: ScanStatus,
}

/// Why a URL with a valid signature and expiry is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Deleted (`410 gone`), whether or not the delete also bumped the generation.
    Deleted,
    /// Issued before a revoke (`403 url_expired`).
    Revoked,
    /// The verdict forbids serving (`403 scan_blocked`).
    ScanBlocked(ScanStatus),
}

/// Checks `current` for a URL issued at `url_generation`, first failure first: deleted, revoked,
/// then the scan verdict (`serve_unscanned` lets `pending`/`error` through).
pub fn check(current: &Current, url_generation: u32, serve_unscanned: bool) -> Result<(), Refusal> {
    if current.is_deleted {
        return Err(Refusal::Deleted);
    }
    if current.generation != url_generation {
        return Err(Refusal::Revoked);
    }
    if !may_serve(current.scan_status, serve_unscanned) {
        return Err(Refusal::ScanBlocked(current.scan_status));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current(is_deleted: bool, generation: u32, scan_status: ScanStatus) -> Current {
        Current {
            is_deleted,
            generation,
            scan_status,
        }
    }

    #[test]
    fn first_failure_answers() {
        use ScanStatus::*;
        assert_eq!(check(&current(false, 2, Clean), 2, false), Ok(()));
        // Deleted before everything, revoked before the verdict.
        assert_eq!(
            check(&current(true, 3, Infected), 2, false),
            Err(Refusal::Deleted)
        );
        assert_eq!(
            check(&current(false, 3, Infected), 2, false),
            Err(Refusal::Revoked)
        );
        assert_eq!(
            check(&current(false, 2, Infected), 2, true),
            Err(Refusal::ScanBlocked(Infected))
        );
        assert_eq!(
            check(&current(false, 0, Pending), 0, false),
            Err(Refusal::ScanBlocked(Pending))
        );
        assert_eq!(check(&current(false, 0, Pending), 0, true), Ok(()));
        assert_eq!(check(&current(false, 0, Skipped), 0, false), Ok(()));
    }

    #[test]
    fn configuration_values() {
        assert_eq!(Mode::from_config(" redirect "), Ok(Mode::Redirect));
        assert_eq!(Mode::from_config(""), Ok(Mode::Auto));
        assert_eq!(Mode::from_config("auto"), Ok(Mode::Auto));
        assert_eq!(Mode::default(), Mode::Auto);
        assert_eq!(Mode::from_config("stream"), Ok(Mode::Stream));
        for bad in ["Redirect", "AUTO", "proxy", "stream,redirect"] {
            assert!(Mode::from_config(bad).is_err(), "{bad}");
        }
        assert_eq!(stream_max_from_config(""), Ok(10_485_760));
        assert_eq!(stream_max_from_config(" 1048576 "), Ok(1_048_576));
        assert_eq!(stream_max_from_config("1"), Ok(1));
        assert_eq!(stream_max_from_config("18446744073709551615"), Ok(u64::MAX));
        for bad in [
            "0",
            "-1",
            "+5",
            "10MiB",
            "1e7",
            "1 000",
            "18446744073709551616",
        ] {
            assert!(stream_max_from_config(bad).is_err(), "{bad}");
        }
        assert_eq!(serve_unscanned_from_config("true"), Ok(true));
        assert_eq!(serve_unscanned_from_config(" "), Ok(false));
        assert_eq!(serve_unscanned_from_config("false"), Ok(false));
        assert!(serve_unscanned_from_config("yes").is_err());
    }

    #[test]
    fn auto_streams_up_to_the_threshold_and_redirects_above() {
        let cap = DEFAULT_STREAM_MAX_BYTES;
        assert_eq!(Mode::Auto.via(0, cap), Via::Stream);
        assert_eq!(Mode::Auto.via(1024, cap), Via::Stream);
        // Exactly the platform cap still fits in one response; one byte more does not.
        assert_eq!(Mode::Auto.via(cap, cap), Via::Stream);
        assert_eq!(Mode::Auto.via(cap + 1, cap), Via::Redirect);
        assert_eq!(Mode::Auto.via(25 << 20, cap), Via::Redirect);
        assert_eq!(Mode::Auto.via(u64::MAX, u64::MAX), Via::Stream);
        // The fixed modes ignore the length.
        for len in [0, cap, cap + 1, u64::MAX] {
            assert_eq!(Mode::Stream.via(len, cap), Via::Stream);
            assert_eq!(Mode::Redirect.via(len, cap), Via::Redirect);
        }
        assert_eq!(Via::Stream.as_str(), "stream");
        assert_eq!(Via::Redirect.as_str(), "redirect");
    }

    /// The length `via` is asked about is the answer's body: a small range of a large object
    /// streams, a large range of it redirects, the whole of it redirects.
    #[test]
    fn the_answer_length_decides_not_the_object_size() {
        use crate::RangeOutcome;
        let cap = DEFAULT_STREAM_MAX_BYTES;
        let size = 25u64 << 20;
        let small = RangeOutcome::Partial {
            first: 12 << 20,
            last: (12 << 20) + 1023,
        };
        let large = RangeOutcome::Partial {
            first: 1 << 20,
            last: (13 << 20) - 1,
        };
        assert_eq!(Mode::Auto.via(small.length(size), cap), Via::Stream);
        assert_eq!(Mode::Auto.via(large.length(size), cap), Via::Redirect);
        assert_eq!(
            Mode::Auto.via(RangeOutcome::Full.length(size), cap),
            Via::Redirect
        );
        assert_eq!(
            Mode::Auto.via(RangeOutcome::Full.length(cap), cap),
            Via::Stream
        );
    }
}
