//! The tus 1.0.0 resumable upload protocol (<https://tus.io/protocols/resumable-upload>) as this
//! service speaks it, without any I/O: what a request's headers say and what the answers carry.
//!
//! | module | owns |
//! |---|---|
//! | [`headers`] | `Tus-Resumable`, `Upload-Offset`, `Upload-Length`, `Upload-Checksum` (sha256 only) |
//! | [`metadata`] | `Upload-Metadata`: comma-separated `key base64value` pairs (Uppy's `filename`, `filetype`) |
//! | [`chunk`] | whether one PATCH body may be stored: its size against the chunk limit, the upload's length and storage's smallest part |
//! | [`date`] | the HTTP date of `Upload-Expires` |
//!
//! The extensions served: creation, creation-with-upload, termination, expiration and checksum
//! ([`EXTENSIONS`]); no deferred length, no concatenation.

pub mod chunk;
pub mod date;
pub mod headers;
pub mod metadata;

/// The protocol version spoken (`Tus-Resumable`, `Tus-Version`).
pub const VERSION: &str = "1.0.0";
/// `Tus-Extension`.
pub const EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration,checksum";
/// `Tus-Checksum-Algorithm`.
pub const CHECKSUM_ALGORITHMS: &str = "sha256";
/// The media type of a PATCH body (and of a creation-with-upload body).
pub const CONTENT_TYPE: &str = "application/offset+octet-stream";
