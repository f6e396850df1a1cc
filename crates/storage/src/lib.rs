//! S3-compatible object storage over plain HTTP (Garage here; AWS S3, R2 or MinIO by configuration).
//!
//! | module | owns |
//! |---|---|
//! | [`budget`] | [`budget::BufferBudget`]: the bytes all part buffers of one component instance may hold at once |
//! | [`config`] | [`StorageConfig`]: path-style endpoint, region, bucket, keys (the secret never printed) |
//! | [`key`] | [`ObjectKey`]: keys we mint (uuid / content hash), never client input |
//! | [`parts`] | the pure bookkeeping of a pipelined multipart upload: part buffers, the in-flight window, ETags in order |
//! | [`request`] | the one SigV4 signer (aws-sigv4), pure: request builders (Put/Get(Range)/Head/Delete/Copy, multipart, ListObjectsV2) and presigned GET URLs |
//! | [`response`] | parsing answers: UploadId, ETags, listed keys, S3 XML errors → [`StorageError`] |
//! | `client` (feature `spin`) | what the components do with storage (stream an object in, get, copy, delete), sent with `spin_sdk::http::send` |
//!
//! Everything but `client` is pure and unit-tested natively; signing takes the time as an
//! argument, so known-answer tests are exact.

pub mod budget;
pub mod config;
pub mod error;
pub mod key;
pub mod parts;
pub mod request;
pub mod response;

#[cfg(feature = "spin")]
pub mod client;

pub use config::StorageConfig;
pub use error::StorageError;
pub use key::ObjectKey;
pub use request::{Body, S3Request};

/// Smallest part S3 accepts in a multipart upload (all parts but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Most parts S3 accepts in one multipart upload.
pub const MAX_PARTS: u32 = 10_000;
