//! The tus request headers that carry numbers and checksums. Each parser takes the header's value
//! (`None` when absent) and answers the value or a [`HeaderError`] whose text is safe to show a
//! client.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Why a tus header is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// A required header is absent.
    Missing(&'static str),
    /// The header is not of its grammar.
    Malformed(&'static str),
    /// `Tus-Resumable` names another version (the answer is `412` with `Tus-Version`).
    UnsupportedVersion,
    /// `Upload-Checksum` names an algorithm other than `sha256`.
    UnsupportedAlgorithm,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing(h) => write!(f, "The {h} header is required."),
            Self::Malformed(h) => write!(f, "The {h} header is malformed."),
            Self::UnsupportedVersion => {
                write!(f, "Only tus version {} is supported.", crate::VERSION)
            }
            Self::UnsupportedAlgorithm => write!(
                f,
                "Upload-Checksum supports only {}.",
                crate::CHECKSUM_ALGORITHMS
            ),
        }
    }
}

impl std::error::Error for HeaderError {}

/// `Tus-Resumable` must be present and [`crate::VERSION`] on every request but `OPTIONS`.
pub fn check_resumable(value: Option<&str>) -> Result<(), HeaderError> {
    match value.map(str::trim) {
        None => Err(HeaderError::Missing("Tus-Resumable")),
        Some(v) if v == crate::VERSION => Ok(()),
        Some(_) => Err(HeaderError::UnsupportedVersion),
    }
}

/// A non-negative decimal integer that fits an `i64` (the database's `bigint`): digits only, no
/// sign, no spaces inside, at most 18 digits.
fn non_negative(value: &str, name: &'static str) -> Result<u64, HeaderError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 18 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeaderError::Malformed(name));
    }
    v.parse().map_err(|_| HeaderError::Malformed(name))
}

/// `Upload-Offset` (required on `PATCH`).
pub fn offset(value: Option<&str>) -> Result<u64, HeaderError> {
    non_negative(
        value.ok_or(HeaderError::Missing("Upload-Offset"))?,
        "Upload-Offset",
    )
}

/// `Upload-Length` (required on creation: this service does not defer the length).
pub fn length(value: Option<&str>) -> Result<u64, HeaderError> {
    non_negative(
        value.ok_or(HeaderError::Missing("Upload-Length"))?,
        "Upload-Length",
    )
}

/// `Upload-Checksum: sha256 <base64 of the 32-byte digest>`; `None` when absent.
pub fn checksum(value: Option<&str>) -> Result<Option<[u8; 32]>, HeaderError> {
    let Some(v) = value else {
        return Ok(None);
    };
    let (algorithm, encoded) = v
        .trim()
        .split_once(' ')
        .ok_or(HeaderError::Malformed("Upload-Checksum"))?;
    if !algorithm.eq_ignore_ascii_case("sha256") {
        return Err(HeaderError::UnsupportedAlgorithm);
    }
    let digest = STANDARD
        .decode(encoded.trim())
        .map_err(|_| HeaderError::Malformed("Upload-Checksum"))?;
    <[u8; 32]>::try_from(digest.as_slice())
        .map(Some)
        .map_err(|_| HeaderError::Malformed("Upload-Checksum"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_must_be_1_0_0() {
        assert_eq!(check_resumable(Some("1.0.0")), Ok(()));
        assert_eq!(
            check_resumable(None),
            Err(HeaderError::Missing("Tus-Resumable"))
        );
        assert_eq!(
            check_resumable(Some("0.2.2")),
            Err(HeaderError::UnsupportedVersion)
        );
    }

    #[test]
    fn offsets_and_lengths_are_plain_non_negative_integers() {
        assert_eq!(offset(Some("0")), Ok(0));
        assert_eq!(offset(Some(" 8388608 ")), Ok(8_388_608));
        assert_eq!(
            length(Some("999999999999999999")),
            Ok(999_999_999_999_999_999)
        );
        for bad in [
            "",
            "-1",
            "+1",
            "1.0",
            "1e3",
            "0x10",
            "1 2",
            "1234567890123456789",
        ] {
            assert_eq!(
                offset(Some(bad)),
                Err(HeaderError::Malformed("Upload-Offset")),
                "{bad:?}"
            );
        }
        assert_eq!(offset(None), Err(HeaderError::Missing("Upload-Offset")));
        assert_eq!(length(None), Err(HeaderError::Missing("Upload-Length")));
    }

    #[test]
    fn a_sha256_checksum_decodes_to_32_bytes() {
        // sha256("") in base64.
        let empty = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        let d = checksum(Some(&format!("sha256 {empty}"))).unwrap().unwrap();
        assert_eq!(d[..4], [0xe3, 0xb0, 0xc4, 0x42]);
        assert_eq!(checksum(None), Ok(None));
        assert_eq!(
            checksum(Some(&format!("md5 {empty}"))),
            Err(HeaderError::UnsupportedAlgorithm)
        );
        assert_eq!(
            checksum(Some("sha256 AAAA")),
            Err(HeaderError::Malformed("Upload-Checksum")),
            "3 bytes are no SHA-256"
        );
        assert_eq!(
            checksum(Some("sha256")),
            Err(HeaderError::Malformed("Upload-Checksum"))
        );
        assert_eq!(
            checksum(Some("sha256 not*base64")),
            Err(HeaderError::Malformed("Upload-Checksum"))
        );
    }
}
