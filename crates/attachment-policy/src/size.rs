//! The upload size limit: refused from `Content-Length` before reading anything, and counted
//! while streaming when there is none (or it lies).

use crate::PolicyError;

/// Default limit: 10 MiB (variable `max_upload_bytes`), the request-body cap of Fermyon Wasm Functions
/// and Akamai Functions.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 10 * 1024 * 1024;

/// A size limit in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimit(u64);

impl SizeLimit {
    /// A limit of `max` bytes (at least 1).
    pub fn new(max: u64) -> Self {
        Self(max.max(1))
    }

    /// Parses the configuration value (decimal bytes, `1..`).
    pub fn from_config(s: &str) -> Result<Self, String> {
        match s.trim().parse::<u64>() {
            Ok(n) if n >= 1 => Ok(Self(n)),
            _ => Err("max_upload_bytes must be a positive number of bytes".into()),
        }
    }

    /// The limit.
    pub fn max(&self) -> u64 {
        self.0
    }

    /// Judges a `Content-Length` header before reading: `Ok(Some(n))` within the limit,
    /// `Ok(None)` when absent, `413` over the limit, `400` when malformed.
    pub fn check_content_length(&self, header: Option<&str>) -> Result<Option<u64>, PolicyError> {
        let Some(raw) = header else { return Ok(None) };
        let raw = raw.trim();
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PolicyError::BadRequest("Invalid Content-Length."));
        }
        match raw.parse::<u64>() {
            Ok(n) if n <= self.0 => Ok(Some(n)),
            // Too many digits for u64 is certainly over the limit.
            _ => Err(PolicyError::TooLarge),
        }
    }

    /// A counter for one stream.
    pub fn counter(&self) -> SizeCounter {
        SizeCounter {
            limit: self.0,
            seen: 0,
        }
    }
}

impl Default for SizeLimit {
    fn default() -> Self {
        Self(DEFAULT_MAX_UPLOAD_BYTES)
    }
}

/// Counts streamed bytes against a limit.
#[derive(Debug, Clone, Copy)]
pub struct SizeCounter {
    limit: u64,
    seen: u64,
}

impl SizeCounter {
    /// Adds `n` bytes; `413` once the total passes the limit.
    pub fn add(&mut self, n: usize) -> Result<(), PolicyError> {
        self.seen = self.seen.saturating_add(n as u64);
        if self.seen > self.limit {
            Err(PolicyError::TooLarge)
        } else {
            Ok(())
        }
    }

    /// Bytes counted.
    pub fn seen(&self) -> u64 {
        self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_rules() {
        let l = SizeLimit::new(10);
        assert_eq!(l.check_content_length(None), Ok(None));
        assert_eq!(l.check_content_length(Some("10")), Ok(Some(10)));
        assert_eq!(l.check_content_length(Some(" 0 ")), Ok(Some(0)));
        assert_eq!(
            l.check_content_length(Some("11")),
            Err(PolicyError::TooLarge)
        );
        assert_eq!(
            l.check_content_length(Some("99999999999999999999999")),
            Err(PolicyError::TooLarge)
        );
        for bad in ["", "-1", "1e3", "0x10", "1,2", "+5"] {
            assert!(
                matches!(
                    l.check_content_length(Some(bad)),
                    Err(PolicyError::BadRequest(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn streaming_counter() {
        let mut c = SizeLimit::new(10).counter();
        assert!(c.add(4).is_ok());
        assert!(c.add(6).is_ok());
        assert_eq!(c.add(1), Err(PolicyError::TooLarge));
        assert_eq!(c.seen(), 11);
        assert_eq!(SizeLimit::default().max(), 10_485_760);
        assert!(SizeLimit::from_config("0").is_err());
        assert_eq!(SizeLimit::from_config("1024").unwrap().max(), 1024);
    }
}
