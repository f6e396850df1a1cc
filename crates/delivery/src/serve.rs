//! Whether and how the content a verified URL names is served: the checks after the signature and
//! the expiry, in their documented order ([`check`]: deleted, revoked, scan verdict), and how the
//! content leaves ([`Mode`]), with the configuration values that choose them.

use crate::{ScanStatus, may_serve};

/// How content leaves (variable `download_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Streamed through the component (default).
    #[default]
    Stream,
    /// A `302` to a presigned storage URL, after the same checks.
    Redirect,
}

impl Mode {
    /// Parses `download_mode`: `stream` (or empty) | `redirect`.
    pub fn from_config(s: &str) -> Result<Self, String> {
        match s.trim() {
            "stream" | "" => Ok(Self::Stream),
            "redirect" => Ok(Self::Redirect),
            other => Err(format!("download_mode: {other:?} is not stream|redirect")),
        }
    }

    /// The configuration's spelling (also in `attachment.download` audit rows).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Stream => "stream",
            Self::Redirect => "redirect",
        }
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
        assert_eq!(Mode::from_config(""), Ok(Mode::Stream));
        assert_eq!(Mode::from_config("stream"), Ok(Mode::Stream));
        assert!(Mode::from_config("Redirect").is_err());
        assert_eq!(Mode::Redirect.as_str(), "redirect");
        assert_eq!(serve_unscanned_from_config("true"), Ok(true));
        assert_eq!(serve_unscanned_from_config(" "), Ok(false));
        assert_eq!(serve_unscanned_from_config("false"), Ok(false));
        assert!(serve_unscanned_from_config("yes").is_err());
    }
}
