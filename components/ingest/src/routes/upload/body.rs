//! The request body in large reads.
//!
//! `spin_sdk`'s body stream reads the WASI body stream 16 KiB at a time; a 1 GiB upload then takes
//! some 65,000 guest/host round trips, which measured at a third of the upload's time in the
//! component. Reading with a larger buffer lets the host hand over each frame it received whole
//! (it copies at most what the buffer holds and keeps the rest for the next read), so the same
//! bytes arrive in far fewer reads. Each read allocates at most [`READ_SIZE`] bytes, freed once the
//! chunk has been consumed: memory stays bounded.

use bytes::Bytes;
use futures::Stream;
use spin_sdk::wasip3::http::types::{self, ErrorCode};
use spin_sdk::wasip3::http_compat::IncomingRequestBody;
use spin_sdk::wasip3::wit_bindgen::{FutureReader, FutureWriter, StreamReader, StreamResult};
use spin_sdk::wasip3::wit_future;

/// The largest read: one frame of the runner's HTTP server fits (hyper buffers up to ~400 KiB).
const READ_SIZE: usize = 512 * 1024;

type Trailers = FutureReader<Result<Option<types::Trailers>, ErrorCode>>;

enum State {
    Reading {
        stream: StreamReader<u8>,
        trailers: Trailers,
        /// Tells the host how consuming the body ended (dropped: fine).
        _result: FutureWriter<Result<(), ErrorCode>>,
    },
    /// The body was already being read through the SDK: nothing to read here.
    Unavailable,
    Done,
}

/// The chunks of `body` (an error when the client aborted or the body is malformed).
pub(crate) fn chunks(
    mut body: IncomingRequestBody,
) -> impl Stream<Item = Result<Bytes, ErrorCode>> + Send + 'static {
    let state = match body.take_unstarted() {
        Some(req) => {
            let (result, reader) = wit_future::new(|| Ok(()));
            let (stream, trailers) = types::Request::consume_body(req, reader);
            State::Reading {
                stream,
                trailers,
                _result: result,
            }
        }
        None => State::Unavailable,
    };
    futures::stream::unfold(state, |state| async move {
        match state {
            State::Reading {
                mut stream,
                trailers,
                _result,
            } => {
                let (res, chunk) = stream.read(Vec::with_capacity(READ_SIZE)).await;
                match res {
                    StreamResult::Complete(_) => Some((
                        Ok(Bytes::from(chunk)),
                        State::Reading {
                            stream,
                            trailers,
                            _result,
                        },
                    )),
                    StreamResult::Dropped => match trailers.await {
                        Ok(_) => None,
                        Err(e) => Some((Err(e), State::Done)),
                    },
                    StreamResult::Cancelled => Some((
                        Err(ErrorCode::InternalError(Some("body read cancelled".into()))),
                        State::Done,
                    )),
                }
            }
            State::Unavailable => Some((
                Err(ErrorCode::InternalError(Some(
                    "request body already started".into(),
                ))),
                State::Done,
            )),
            State::Done => None,
        }
    })
}
