//! Where one file's chunks come from: a raw body, or one part of a multipart/form-data body. Every
//! read keeps the body's pace (`Shared::paced`): a body that arrives too slowly, or stays silent,
//! fails like any other.

use bytes::Bytes;
use edge::{ApiError, Problem};
use futures::{Stream, StreamExt};

use super::counted::{Counted, Shared};

/// One file's chunks.
#[allow(async_fn_in_trait)]
pub(super) trait ChunkSource {
    /// The next chunk; `None` at the end of the file.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError>;

    /// An upper bound of the file's size when the request's `Content-Length` gives one (part buffers
    /// are then no larger than the file).
    fn at_most(&self) -> Option<u64>;
}

/// A raw body: the file is the whole body.
pub(super) struct RawSource<S> {
    pub body: Counted<S>,
    pub tally: Shared,
    /// The declared `Content-Length`: a body that ends short of it was truncated.
    pub expected: Option<u64>,
}

impl<S, E> ChunkSource for RawSource<S>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Debug,
{
    fn at_most(&self) -> Option<u64> {
        self.expected
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        match self.tally.paced(self.body.next()).await? {
            None => match self.expected {
                Some(n) if self.tally.seen() < n => Err(ApiError::new(Problem::bad_request(
                    "The request body ended before its Content-Length.",
                ))
                .with_cause("truncated request body")),
                _ => Ok(None),
            },
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(self.tally.failure(e)),
        }
    }
}

/// One file part of a multipart/form-data body.
pub(super) struct FieldSource<'a, 'r> {
    pub field: &'a mut multer::Field<'r>,
    pub tally: Shared,
    /// The request's `Content-Length`: a file is at most the whole body (what the parser read ahead
    /// of this field may belong to it, so the body read so far is no bound).
    pub content_length: Option<u64>,
}

impl ChunkSource for FieldSource<'_, '_> {
    fn at_most(&self) -> Option<u64> {
        self.content_length
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        self.tally
            .paced(self.field.chunk())
            .await?
            .map_err(|e| self.tally.failure(e))
    }
}
