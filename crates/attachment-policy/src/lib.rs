//! What an attachment upload must satisfy, as pure functions (no I/O; tested natively):
//!
//! | module | owns |
//! |---|---|
//! | [`filename`] | [`SafeFilename`] (path stripped, NFC, no control/bidi characters, no device names, ≤ 255 bytes) and the blocked-extension list ([`ExtensionPolicy`], configuration with a default) |
//! | [`sniff`] | [`ContentInspector`]: magic bytes of the first chunk (`infer` + our own PE/ELF/Mach-O/shebang checks), script in HTML/SVG across the whole stream, and the media type we store |
//! | [`digest`] | [`ContentHash`] (lowercase hex SHA-256) and RFC 9530 `Repr-Digest` |
//! | [`size`] | the upload size limit: `Content-Length` before reading, a counter while streaming |
//! | [`multipart`] | [`MultipartGuard`]: how many parts, and how many header bytes per part, a multipart body may carry, judged on the raw bytes as they stream |
//! | [`pace`] | [`BodyPace`]: how slowly a body may arrive (idle per read, a minimum average rate, a deadline) |
//!
//! Every refusal is a [`PolicyError`] that knows its problem code (`invalid_filename`,
//! `blocked_file_type`, `payload_too_large`, `too_many_parts`, `part_header_too_large`,
//! `request_timeout`, `digest_mismatch`, `bad_request`).

pub mod digest;
pub mod filename;
pub mod multipart;
pub mod pace;
pub mod size;
pub mod sniff;

pub use digest::{ContentHash, ReprDigest};
pub use filename::{ExtensionPolicy, SafeFilename};
pub use multipart::{MultipartGuard, MultipartLimits};
pub use pace::{BodyPace, PaceLimits};
pub use size::{SizeCounter, SizeLimit};
pub use sniff::{ContentInspector, Verdict, check_declared, declared_type};

use problem::Code;

/// Why an upload is refused. `Display` is a client-safe explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The filename is unacceptable (`422 invalid_filename`).
    InvalidFilename(&'static str),
    /// A dangerous extension or executable/script content (`415 blocked_file_type`).
    BlockedFileType(&'static str),
    /// Over the size limit (`413 payload_too_large`).
    TooLarge,
    /// A multipart body with more parts than allowed (`413 too_many_parts`).
    TooManyParts,
    /// A multipart part header block (or preamble) over its limit (`400 part_header_too_large`).
    PartHeaderTooLarge,
    /// The body arrived too slowly (`408 request_timeout`).
    RequestTimeout,
    /// The content does not match `Repr-Digest` (`422 digest_mismatch`).
    DigestMismatch,
    /// A malformed header (`400 bad_request`).
    BadRequest(&'static str),
}

impl PolicyError {
    /// The problem code this refusal is answered with.
    pub fn code(&self) -> Code {
        match self {
            PolicyError::InvalidFilename(_) => Code::InvalidFilename,
            PolicyError::BlockedFileType(_) => Code::BlockedFileType,
            PolicyError::TooLarge => Code::PayloadTooLarge,
            PolicyError::TooManyParts => Code::TooManyParts,
            PolicyError::PartHeaderTooLarge => Code::PartHeaderTooLarge,
            PolicyError::RequestTimeout => Code::RequestTimeout,
            PolicyError::DigestMismatch => Code::DigestMismatch,
            PolicyError::BadRequest(_) => Code::BadRequest,
        }
    }

    /// A client-safe detail.
    pub fn detail(&self) -> &'static str {
        match self {
            PolicyError::InvalidFilename(d)
            | PolicyError::BlockedFileType(d)
            | PolicyError::BadRequest(d) => d,
            PolicyError::TooLarge => {
                "The upload is over the size limit of a single request; send larger files as a \
                 direct upload (POST /api/v1/emails/{messageId}/uploads)."
            }
            PolicyError::TooManyParts => "The multipart/form-data body has too many parts.",
            PolicyError::PartHeaderTooLarge => {
                "A part's headers in the multipart/form-data body are too long."
            }
            PolicyError::RequestTimeout => "The request body arrived too slowly.",
            PolicyError::DigestMismatch => "The content does not match the Repr-Digest header.",
        }
    }
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code(), self.detail())
    }
}

impl std::error::Error for PolicyError {}
