//! The request body as it streams: counted against the size limit (the whole body, parts and all),
//! for multipart/form-data also hashed whole (a `Repr-Digest` covers the whole body) and watched by
//! the [`MultipartGuard`] (how many parts, how long their headers) before the parser buffers any of
//! it, and the first failure remembered, so that whoever reads it (the file pipeline, the multipart
//! parser) answers the right problem. Once it failed, the stream yields nothing more.
//!
//! Every read of the body (a raw body's chunks; a multipart body's preamble, part headers and part
//! content) goes through [`Shared::paced`]: bounded by the body's [`BodyPace`] (idle per read, a
//! minimum average rate, a deadline), else `408 request_timeout`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use attachment_policy::pace::PaceError;
use attachment_policy::{BodyPace, MultipartGuard, PaceLimits, PolicyError, SizeCounter};
use bytes::Bytes;
use edge::{ApiError, Problem};
use futures::Stream;
use sha2::{Digest, Sha256};

use super::policy;

/// Why the body stopped.
#[derive(Debug)]
enum Failure {
    /// Refused by a policy: over the size limit, too many parts, too long a part header.
    Refused(PolicyError),
    Read(String),
}

/// What the body did so far; shared between the stream and its readers.
pub(crate) struct Tally {
    counter: SizeCounter,
    hasher: Option<Sha256>,
    /// The multipart structure's guard (multipart/form-data bodies only).
    guard: Option<MultipartGuard>,
    pace: BodyPace,
    /// When the body began.
    started: Instant,
    failure: Option<Failure>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A [`Tally`] shared by the stream and whoever asks it afterwards.
#[derive(Clone)]
pub(crate) struct Shared(Arc<Mutex<Tally>>);

impl Shared {
    /// A tally for a body of at most `counter`'s limit; a multipart body (`guard`) is also hashed
    /// whole.
    pub fn new(counter: SizeCounter, guard: Option<MultipartGuard>, pace: PaceLimits) -> Self {
        Self(Arc::new(Mutex::new(Tally {
            counter,
            hasher: guard.is_some().then(Sha256::new),
            guard,
            pace: BodyPace::new(pace),
            started: Instant::now(),
            failure: None,
        })))
    }

    /// `read` (a read of the body), bounded by the body's pace: `408 request_timeout` when it
    /// waits longer than the pace allows (the body then stops for every reader).
    pub async fn paced<T>(&self, read: impl Future<Output = T>) -> Result<T, ApiError> {
        let (elapsed, bytes, allowance) = {
            let t = self.lock();
            let elapsed = millis(t.started.elapsed());
            let bytes = t.counter.seen();
            (elapsed, bytes, t.pace.allowance(elapsed, bytes))
        };
        let allowance = allowance.map_err(|e| self.timed_out(e))?;
        let began = Instant::now();
        let read = std::pin::pin!(read);
        let timer = std::pin::pin!(spin_sdk::time::sleep(Duration::from_millis(allowance)));
        match futures::future::select(read, timer).await {
            futures::future::Either::Left((v, _)) => {
                self.lock().pace.waited(millis(began.elapsed()));
                Ok(v)
            }
            futures::future::Either::Right(_) => {
                let e = self.lock().pace.expired(elapsed, bytes);
                Err(self.timed_out(e))
            }
        }
    }

    /// Records that the body broke its pace, and the error for it.
    fn timed_out(&self, e: PaceError) -> ApiError {
        let mut t = self.lock();
        t.failure
            .get_or_insert(Failure::Refused(PolicyError::RequestTimeout));
        policy(PolicyError::from(e)).with_cause(e.cause())
    }

    fn lock(&self) -> MutexGuard<'_, Tally> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes read so far.
    pub fn seen(&self) -> u64 {
        self.lock().counter.seen()
    }

    /// The hash of the whole body (once it has been read), when it was hashed whole.
    pub fn take_hash(&self) -> Option<Sha256> {
        self.lock().hasher.take()
    }

    /// The error for a body that stopped: refused by a policy (over the size limit, too many parts:
    /// `413`; too long a part header: `400`) or unreadable (client abort, truncated: `400`); else a
    /// malformed multipart body, as `parser` says.
    pub fn failure(&self, parser: impl std::fmt::Display) -> ApiError {
        match &self.lock().failure {
            Some(Failure::Refused(e)) => policy(e.clone()),
            Some(Failure::Read(cause)) => {
                ApiError::new(Problem::bad_request("The request body could not be read."))
                    .with_cause(format!("reading request body: {cause}"))
            }
            None => ApiError::new(Problem::bad_request("Malformed multipart/form-data body."))
                .with_cause(format!("multipart: {parser}")),
        }
    }
}

/// The error item of a [`Counted`] stream; the reason is in its [`Shared`] tally.
#[derive(Debug)]
pub(crate) struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body stopped")
    }
}

impl std::error::Error for Stopped {}

/// A body stream that keeps a [`Shared`] tally.
pub(crate) struct Counted<S> {
    inner: Pin<Box<S>>,
    tally: Shared,
}

impl<S> Counted<S> {
    pub fn new(inner: S, tally: Shared) -> Self {
        Self {
            inner: Box::pin(inner),
            tally,
        }
    }
}

impl<S, E> Stream for Counted<S>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Debug,
{
    type Item = Result<Bytes, Stopped>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.tally.lock().failure.is_some() {
            return Poll::Ready(Some(Err(Stopped)));
        }
        let polled = self.inner.as_mut().poll_next(cx);
        let mut t = self.tally.lock();
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Ok(b))) => {
                let judged = t
                    .counter
                    .add(b.len())
                    .and_then(|()| match t.guard.as_mut() {
                        Some(g) => g.feed(&b).map_err(PolicyError::from),
                        None => Ok(()),
                    });
                if let Err(e) = judged {
                    t.failure = Some(Failure::Refused(e));
                    return Poll::Ready(Some(Err(Stopped)));
                }
                if let Some(h) = t.hasher.as_mut() {
                    h.update(&b);
                }
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => {
                t.failure = Some(Failure::Read(format!("{e:?}")));
                Poll::Ready(Some(Err(Stopped)))
            }
        }
    }
}
