//! Where one file's chunks come from: a raw body, or one part of a multipart/form-data body. A body
//! that stays silent for [`BODY_IDLE`] counts as abandoned and fails like any other.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use edge::{ApiError, Problem};
use futures::{Stream, StreamExt};

use super::counted::{Counted, Shared};

/// How long a body may stay silent before the upload counts as abandoned (a client that vanished
/// without the connection reporting it): cleanup then runs as for any other failure.
const BODY_IDLE: Duration = Duration::from_secs(20);

/// `fut`, or `400` when the body stayed silent for [`BODY_IDLE`].
async fn or_idle<T>(fut: impl Future<Output = T>) -> Result<T, ApiError> {
    let fut = std::pin::pin!(fut);
    let timer = std::pin::pin!(spin_sdk::time::sleep(BODY_IDLE));
    match futures::future::select(fut, timer).await {
        futures::future::Either::Left((v, _)) => Ok(v),
        futures::future::Either::Right(_) => Err(ApiError::new(Problem::bad_request(
            "The request body stopped arriving.",
        ))
        .with_cause("request body idle timeout")),
    }
}

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
        match or_idle(self.body.next()).await? {
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
        or_idle(self.field.chunk())
            .await?
            .map_err(|e| self.tally.failure(e))
    }
}
