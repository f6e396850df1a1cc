//! Whether one PATCH body may be stored. A PATCH is all or nothing: its body becomes one part of
//! the upload's multipart upload, so it is judged whole (its declared length before a byte is read,
//! the bytes counted while they arrive, the received length at the end) and either stored entirely
//! or not at all. Storage takes parts of at least [`MIN_PART`] bytes but for the last one, so a
//! chunk that does not finish the upload must be at least that large.

/// The smallest part storage accepts, but for the last (S3: 5 MiB).
pub const MIN_PART: u64 = 5 * 1024 * 1024;
/// The most parts of one upload (S3: 10,000).
pub const MAX_PARTS: u64 = 10_000;

/// Why a chunk is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// More than the per-request chunk limit (`upload_chunk_bytes`).
    TooLarge { limit: u64 },
    /// It would carry the upload past its `Upload-Length`.
    BeyondLength { length: u64 },
    /// It does not finish the upload and is smaller than storage's smallest part.
    TooSmall { minimum: u64 },
}

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge { limit } => write!(
                f,
                "A PATCH carries at most {limit} bytes; send the upload in chunks of that size."
            ),
            Self::BeyondLength { length } => {
                write!(
                    f,
                    "The chunk reaches past the Upload-Length of {length} bytes."
                )
            }
            Self::TooSmall { minimum } => write!(
                f,
                "A chunk that does not finish the upload must carry at least {minimum} bytes \
                 (storage's smallest part)."
            ),
        }
    }
}

impl std::error::Error for ChunkError {}

/// The most bytes a PATCH at `offset` may carry, and the error for one more: the chunk limit or
/// what is left of the upload, whichever is smaller.
pub fn read_limit(offset: u64, upload_length: u64, max_chunk: u64) -> (u64, ChunkError) {
    let left = upload_length.saturating_sub(offset);
    if left <= max_chunk {
        (
            left,
            ChunkError::BeyondLength {
                length: upload_length,
            },
        )
    } else {
        (max_chunk, ChunkError::TooLarge { limit: max_chunk })
    }
}

/// Judges a declared `Content-Length` before the body is read.
pub fn judge_declared(
    offset: u64,
    declared: u64,
    upload_length: u64,
    max_chunk: u64,
) -> Result<(), ChunkError> {
    if declared > max_chunk {
        return Err(ChunkError::TooLarge { limit: max_chunk });
    }
    if offset.saturating_add(declared) > upload_length {
        return Err(ChunkError::BeyondLength {
            length: upload_length,
        });
    }
    Ok(())
}

/// What a received chunk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// No bytes: nothing to store, the offset stays.
    Empty,
    /// A part that leaves more to send.
    Part,
    /// The part that completes the upload.
    Final,
}

/// Judges `received` bytes at `offset` (already within [`read_limit`]).
pub fn judge_received(
    offset: u64,
    received: u64,
    upload_length: u64,
) -> Result<Received, ChunkError> {
    let end = offset.saturating_add(received);
    if end > upload_length {
        return Err(ChunkError::BeyondLength {
            length: upload_length,
        });
    }
    if received == 0 {
        Ok(Received::Empty)
    } else if end == upload_length {
        Ok(Received::Final)
    } else if received < MIN_PART {
        Err(ChunkError::TooSmall { minimum: MIN_PART })
    } else {
        Ok(Received::Part)
    }
}

/// The largest `Upload-Length` accepted under `configured` (the direct upload limit): no more
/// than [`MAX_PARTS`] parts when every chunk but the last is the smallest storage takes.
pub fn max_length(configured: u64) -> u64 {
    configured.min(MIN_PART * (MAX_PARTS - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn the_read_limit_is_the_chunk_limit_or_what_is_left() {
        assert_eq!(
            read_limit(0, 20 * MIB, 8 * MIB),
            (8 * MIB, ChunkError::TooLarge { limit: 8 * MIB })
        );
        assert_eq!(
            read_limit(16 * MIB, 20 * MIB, 8 * MIB),
            (4 * MIB, ChunkError::BeyondLength { length: 20 * MIB })
        );
        assert_eq!(read_limit(30 * MIB, 20 * MIB, 8 * MIB).0, 0);
    }

    #[test]
    fn a_declared_length_is_judged_before_reading() {
        assert_eq!(judge_declared(0, 8 * MIB, 20 * MIB, 8 * MIB), Ok(()));
        assert_eq!(
            judge_declared(0, 8 * MIB + 1, 20 * MIB, 8 * MIB),
            Err(ChunkError::TooLarge { limit: 8 * MIB })
        );
        assert_eq!(
            judge_declared(16 * MIB, 5 * MIB, 20 * MIB, 8 * MIB),
            Err(ChunkError::BeyondLength { length: 20 * MIB })
        );
    }

    #[test]
    fn a_small_chunk_is_only_accepted_as_the_last() {
        assert_eq!(judge_received(0, 0, 20 * MIB), Ok(Received::Empty));
        assert_eq!(judge_received(0, 5 * MIB, 20 * MIB), Ok(Received::Part));
        assert_eq!(
            judge_received(16 * MIB, 4 * MIB, 20 * MIB),
            Ok(Received::Final)
        );
        assert_eq!(
            judge_received(0, 10, 10),
            Ok(Received::Final),
            "a small file"
        );
        assert_eq!(
            judge_received(0, MIB, 20 * MIB),
            Err(ChunkError::TooSmall { minimum: MIN_PART })
        );
        assert_eq!(
            judge_received(16 * MIB, 5 * MIB, 20 * MIB),
            Err(ChunkError::BeyondLength { length: 20 * MIB })
        );
    }

    #[test]
    fn the_longest_upload_fits_the_part_count() {
        assert_eq!(max_length(1024), 1024);
        let longest = max_length(u64::MAX);
        // Every chunk but the last at the minimum, the last one at most one more minimum.
        assert!(longest.div_ceil(MIN_PART) <= MAX_PARTS);
    }
}
