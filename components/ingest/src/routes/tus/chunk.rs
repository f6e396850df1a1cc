//! One chunk of a tus upload, all or nothing: the PATCH claims the session at its offset (a second
//! PATCH meanwhile is `423 upload_locked`, never a second upload of the same part), stores the body
//! as the next part of the multipart upload, and records the new offset and part ETag in one
//! compare-and-swap from the offset it claimed. The last chunk also completes the
//! multipart upload and turns the session `verifying`. Whatever fails stores nothing the session
//! counts: the offset stays, the claim is given back, and the client resumes from `HEAD`.
//!
//! A chunk with a `Content-Length` (what tus clients send) streams on to storage while it arrives,
//! so receiving it and storing it overlap and memory stays at a few frames ([`stream_part`]); one
//! without (chunked transfer coding) is read whole first, within `upload_chunk_bytes` and the
//! instance's part-buffer budget ([`buffer_part`]). Either way the body is paced like a
//! single-request upload and counted against the user's upload slots, and its `Upload-Checksum`
//! is checked before storage may keep the part.
//!
//! The file's SHA-256 is not computed here: the scan worker's one read of the completed object
//! (size, hash, policy, dedup, scan) gives it, natively, as for a direct upload without a claimed
//! hash. In the guest it cost more than moving the bytes did (measured: SHA-256 at about 210 MB/s
//! in wasmtime, two thirds of a chunk's time); a client that wants its bytes checked on the way sends
//! `Upload-Checksum`, which is hashed as the chunk passes.
//!
//! No database connection is held while the body streams: the claim is one short transaction
//! before, the record one after.

use attachment_policy::SizeLimit;
use auth_core::AuthContext;
use bytes::Bytes;
use deadline::with_deadline;
use edge::app::Call;
use edge::{ApiError, Code, Problem};
use futures::channel::mpsc;
use futures::future::{Either, join, select};
use futures::{SinkExt, StreamExt};
use http_body::Frame;
use http_body_util::StreamBody;
use sha2::{Digest, Sha256};
use spin_sdk::wasip3::http_compat::IncomingRequestBody;
use storage::{ObjectKey, StorageError};
use store::spin::Db;
use store::uploads::{self, Advance, SessionRow, State, TusProgress};
use tus::chunk::{ChunkError, Received};
use uuid::Uuid;

use crate::Config;
use crate::routes::upload::counted::{Counted, Shared};
use crate::routes::upload::{body, slot};

/// What the request's head says about its chunk.
pub(crate) struct Chunk {
    /// `Upload-Offset` (`0` for a creation body).
    pub offset: u64,
    /// `Upload-Checksum`'s SHA-256.
    pub checksum: Option<[u8; 32]>,
    /// `Content-Length`, when given.
    pub declared: Option<u64>,
}

/// A refused chunk as its problem.
pub(crate) fn refused(e: ChunkError) -> ApiError {
    let code = match e {
        ChunkError::TooLarge { .. } => Code::PayloadTooLarge,
        ChunkError::BeyondLength { .. } => Code::UploadLengthExceeded,
        ChunkError::TooSmall { .. } => Code::ChunkTooSmall,
    };
    ApiError::new(Problem::new(code).detail(e.to_string()))
}

/// `409 offset_mismatch`, with the offset to resume from.
fn mismatch(offset: i64) -> ApiError {
    ApiError::new(Problem::new(Code::OffsetMismatch))
        .with_headers(vec![("Upload-Offset", offset.to_string())])
}

/// Seconds a client is asked to wait for buffer memory or a concurrent PATCH.
const RETRY_AFTER_SECS: u64 = 5;

/// Receives and stores `chunk` of session `id` from `body`; the session as it was and the offset
/// after the chunk.
///
/// The work around the body is paid once per chunk (128 times for 1 GiB at 8 MiB), so what does
/// not depend on each other runs at once: the upload slot (Redis) is taken while the session is
/// claimed (Postgres), and given back while the chunk is recorded.
pub(crate) async fn receive(
    cfg: &Config,
    call: &mut Call,
    ctx: &AuthContext,
    id: Uuid,
    chunk: Chunk,
    body_stream: IncomingRequestBody,
) -> Result<(SessionRow, u64), ApiError> {
    let token = Uuid::new_v4();
    // A chunk of known, non-zero length streams under the slot taken here; one of unknown length
    // reserves its buffer first and takes its own slot then ([`buffer_part`]).
    let streams = chunk.declared.is_some_and(|d| d > 0);
    let log = &mut call.log;
    let taking = async {
        match streams {
            true => Some(slot::take(cfg, &ctx.user, log).await),
            false => None,
        }
    };
    let (claimed, slot) = join(claim(cfg, ctx, id, &chunk, token), taking).await;
    let (row, progress, slot) = match (claimed, slot.transpose()) {
        (Ok((row, progress)), Ok(slot)) => (row, progress, slot),
        (Err(e), Ok(slot)) => {
            if let Some(slot) = slot {
                slot.give_back(cfg).await;
            }
            return Err(e);
        }
        (Ok(_), Err(refused)) => {
            release(cfg, ctx, id, token).await;
            return Err(refused);
        }
        (Err(e), Err(_)) => return Err(e),
    };
    let claimed = Claimed {
        cfg,
        ctx,
        row: &row,
        progress: &progress,
        chunk: &chunk,
        token,
    };
    let landed = land(&claimed, call, body_stream).await;
    let recording = async {
        match landed {
            Ok(Some(landed)) => record(&claimed, call, landed).await.map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        }
    };
    let giving = async {
        if let Some(slot) = slot {
            slot.give_back(cfg).await;
        }
    };
    let (stored, ()) = join(recording, giving).await;
    match stored {
        Ok(Some(offset)) => Ok((row, offset)),
        Ok(None) => {
            // Nothing to store (an empty body): the offset stays.
            release(cfg, ctx, id, token).await;
            Ok((row, chunk.offset))
        }
        Err(e) => {
            release(cfg, ctx, id, token).await;
            Err(e)
        }
    }
}

/// The session, checked and claimed for this PATCH at `chunk.offset` (one short transaction).
async fn claim(
    cfg: &Config,
    ctx: &AuthContext,
    id: Uuid,
    chunk: &Chunk,
    token: Uuid,
) -> Result<(SessionRow, TusProgress), ApiError> {
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    let now_ms = auth_core::unix_now_ms();
    let claimed = async {
        let (row, progress) = super::owned(&tx, ctx, id).await?;
        match row.state {
            State::Aborted => return Err(Problem::not_found().into()),
            State::Open if row.is_expired(now_ms) => return Err(Code::UploadExpired.into()),
            State::Open => {}
            State::Verifying | State::Done | State::Rejected => {
                return Err(ApiError::new(
                    Problem::new(Code::UploadNotOpen).detail("The upload is complete."),
                )
                .with_headers(vec![("Upload-Offset", row.claimed_size.to_string())]));
            }
        }
        if u64::try_from(progress.offset).ok() != Some(chunk.offset) {
            return Err(mismatch(progress.offset));
        }
        let length = u64::try_from(row.claimed_size).map_err(|_| ApiError::internal("size"))?;
        if let Some(declared) = chunk.declared {
            tus::chunk::judge_declared(chunk.offset, declared, length, cfg.tus.chunk_bytes)
                .map_err(refused)?;
        }
        // The claim outlives the longest a PATCH may take: its body, the part, the completion.
        let outbound_ms = i64::try_from(cfg.outbound_timeout.duration().as_millis()).unwrap_or(0);
        let deadline_ms = i64::try_from(cfg.pace.deadline_ms).unwrap_or(i64::MAX / 4);
        let until = now_ms
            .saturating_add(deadline_ms)
            .saturating_add(outbound_ms.saturating_mul(4));
        if !uploads::claim_patch(&tx, id, token, progress.offset, until).await? {
            return Err(ApiError::new(Problem::new(Code::UploadLocked))
                .with_headers(vec![("Retry-After", RETRY_AFTER_SECS.to_string())]));
        }
        Ok((row, progress))
    }
    .await;
    match claimed {
        Ok(v) => {
            tx.commit().await?;
            Ok(v)
        }
        Err(e) => {
            tx.rollback().await;
            Err(e)
        }
    }
}

/// Gives the claim back after a PATCH that stored nothing; a failure only logs (it lapses).
async fn release(cfg: &Config, ctx: &AuthContext, id: Uuid, token: Uuid) {
    let released = async {
        let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
        let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
        uploads::release_patch(&tx, id, token).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = released {
        edge::log::event(
            crate::NAME,
            "tus_claim_not_released",
            serde_json::json!({ "uploadId": id.to_string(), "cause": e.to_string() }),
        );
    }
}

/// A chunk that reached storage as part `part` (or whose upload turned out complete already).
struct Landed {
    /// Its length.
    received: u64,
    /// Whether it finishes the upload.
    kind: Received,
    /// Storage's answer to its `UploadPart`.
    answer: Result<String, StorageError>,
}

/// A PATCH whose session is claimed: what storing and recording its chunk go by.
struct Claimed<'a> {
    cfg: &'a Config,
    ctx: &'a AuthContext,
    /// The session as the claim found it.
    row: &'a SessionRow,
    progress: &'a TusProgress,
    chunk: &'a Chunk,
    /// The claim's token.
    token: Uuid,
}

/// Reads and checks the chunk under the claim and sends it to storage as the session's next part;
/// `None` for an empty body.
async fn land(
    claimed: &Claimed<'_>,
    call: &mut Call,
    body_stream: IncomingRequestBody,
) -> Result<Option<Landed>, ApiError> {
    let Claimed {
        cfg,
        ctx,
        row,
        progress,
        chunk,
        ..
    } = *claimed;
    let length = u64::try_from(row.claimed_size).map_err(|_| ApiError::internal("size"))?;
    let key = ObjectKey::from_stored(&row.storage_key).map_err(ApiError::from)?;
    let target = Target {
        key: &key,
        upload_id: &row.s3_upload_id,
        part: progress.parts_done + 1,
    };
    match chunk.declared {
        // The length is known before the body: the bytes go on to storage as they arrive.
        Some(declared) => {
            let kind =
                tus::chunk::judge_received(chunk.offset, declared, length).map_err(refused)?;
            if kind == Received::Empty {
                return Ok(None);
            }
            stream_part(cfg, &target, declared, kind, chunk.checksum, body_stream)
                .await
                .map(Some)
        }
        None => buffer_part(cfg, call, ctx, &target, chunk, length, body_stream).await,
    }
}

/// Records a chunk that reached storage: the next offset and part ETag, in one compare-and-swap
/// from the offset claimed; the last chunk first completes the multipart upload. The offset after
/// the chunk.
async fn record(claimed: &Claimed<'_>, call: &mut Call, landed: Landed) -> Result<u64, ApiError> {
    let Claimed {
        cfg,
        ctx,
        row,
        progress,
        chunk,
        token,
    } = *claimed;
    let length = u64::try_from(row.claimed_size).map_err(|_| ApiError::internal("size"))?;
    let key = ObjectKey::from_stored(&row.storage_key).map_err(ApiError::from)?;
    let Landed {
        received,
        kind,
        answer,
    } = landed;
    let etag = match answer {
        Ok(etag) => etag,
        // The multipart upload is gone but the object is whole: an earlier final PATCH completed it
        // and lost its record (a database failure after CompleteMultipartUpload). Record it now:
        // the object holds what that PATCH sent, which the worker's read judges as any other.
        Err(StorageError::NotFound { .. })
            if kind == Received::Final
                && cfg.storage.object_size(&key).await.ok().flatten() == Some(length) =>
        {
            String::new()
        }
        Err(e) => return Err(e.into()),
    };
    let completes = kind == Received::Final;
    if completes {
        super::check_quota_at_final(cfg, ctx, row).await?;
    }
    if completes && !etag.is_empty() {
        let parts: Vec<(u32, String)> = progress
            .part_etags
            .iter()
            .cloned()
            .chain([etag.clone()])
            .zip(1u32..)
            .map(|(e, n)| (n, e))
            .collect();
        cfg.storage
            .complete_direct_upload(&key, &row.s3_upload_id, &parts)
            .await
            .map_err(ApiError::from)?;
    }
    let to = chunk.offset + received;
    let advance = Advance {
        token,
        from: progress.offset,
        to: i64::try_from(to).map_err(|_| ApiError::internal("offset"))?,
        etag: &etag,
        completes,
    };
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    match uploads::advance(&tx, row.id, &advance).await {
        Ok(true) => tx.commit().await?,
        Ok(false) => {
            tx.rollback().await;
            // The claim lapsed and another PATCH moved the upload on: this one counts for nothing.
            return Err(mismatch(progress.offset));
        }
        Err(e) => {
            tx.rollback().await;
            return Err(e.into());
        }
    }
    if completes {
        call.log.reason = Some(format!("tus upload {} complete", row.id));
    }
    Ok(to)
}

/// Where a chunk goes: part `part` of multipart upload `upload_id` of `key`.
struct Target<'a> {
    key: &'a ObjectKey,
    upload_id: &'a str,
    part: u32,
}

/// Frames of a streamed chunk queued for storage at most (each at most one body read, 512 KiB).
const FRAMES_QUEUED: usize = 2;
/// Buffer memory a streamed chunk reserves: the frames queued, the one being read and the one
/// being written.
const STREAM_BUFFER_BYTES: usize = (FRAMES_QUEUED + 2) * 512 * 1024;

/// A frame on its way to storage, or the cut that makes storage drop the part.
type Forwarded = Result<Frame<Bytes>, std::io::Error>;

/// Passes a chunk of exactly `declared` bytes on to storage while the client sends it, its checksum
/// (when asked for) computed on the way, memory bounded by a few frames whatever the chunk's size. Storage stores the part only when
/// every byte arrived: a body that ends early, stalls past its pace or fails its checksum cuts
/// the upload of the part (the last frame is held back until the checksum is known), so nothing
/// the session counts changes. A part stored whose record then fails is overwritten by the
/// retry, which sends the same part number.
async fn stream_part(
    cfg: &Config,
    target: &Target<'_>,
    declared: u64,
    kind: Received,
    checksum: Option<[u8; 32]>,
    body_stream: IncomingRequestBody,
) -> Result<Landed, ApiError> {
    let _permit = cfg
        .buffers
        .try_reserve(STREAM_BUFFER_BYTES)
        .ok_or_else(busy)?;
    let (tx, rx) = mpsc::channel::<Forwarded>(FRAMES_QUEUED);
    let send = cfg.storage.upload_part_streamed(
        target.key,
        target.upload_id,
        target.part,
        declared,
        StreamBody::new(rx),
    );
    let pump = pump(cfg, body_stream, declared, checksum, tx);
    let (answer, pumped) = match select(std::pin::pin!(send), std::pin::pin!(pump)).await {
        // Storage answered before the body ended (a refusal, or a vanished upload): the body is
        // still read to its end, so that the answer reaches a client that sends it whole.
        Either::Left((answer, pump)) => (answer, pump.await),
        Either::Right((pumped, send)) => {
            let timeout = cfg.storage.timeout();
            let answer = with_deadline(timeout, send).await.unwrap_or_else(|e| {
                Err(StorageError::Timeout(format!(
                    "PUT ?partNumber={} (streamed): {e}",
                    target.part
                )))
            });
            (answer, pumped)
        }
    };
    pumped?;
    Ok(Landed {
        received: declared,
        kind,
        answer,
    })
}

/// Reads the body (paced like a single-request upload) and forwards it to `tx`; an error when it is
/// not exactly `declared` bytes or fails its checksum (storage is then told to drop the part). Once
/// storage stops taking bytes, the rest is still read.
async fn pump(
    cfg: &Config,
    body_stream: IncomingRequestBody,
    declared: u64,
    checksum: Option<[u8; 32]>,
    mut tx: mpsc::Sender<Forwarded>,
) -> Result<(), ApiError> {
    let tally = Shared::new(SizeLimit::new(u64::MAX).counter(), None, cfg.pace);
    let mut counted = Counted::new(body::chunks(body_stream), tally.clone());
    let mut chunk_hash = checksum.map(|_| Sha256::new());
    let mut seen: u64 = 0;
    let mut forwarding = true;
    let outcome = async {
        loop {
            let b = match tally.paced(counted.next()).await? {
                None => break,
                Some(Ok(b)) => b,
                Some(Err(e)) => return Err(tally.failure(e)),
            };
            seen = seen.saturating_add(b.len() as u64);
            if seen > declared {
                return Err(ApiError::new(Problem::bad_request(
                    "The request body is longer than its Content-Length.",
                )));
            }
            if let Some(h) = chunk_hash.as_mut() {
                h.update(&b);
            }
            if seen == declared
                && let (Some(want), Some(h)) = (checksum, chunk_hash.take())
                && <[u8; 32]>::from(h.finalize()) != want
            {
                return Err(ApiError::from(Code::ChecksumMismatch));
            }
            if forwarding {
                let sent = with_deadline(cfg.storage.timeout(), tx.send(Ok(Frame::data(b)))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    // Storage stopped reading (it answered, or stalled): its answer says why.
                    tx.close_channel();
                    forwarding = false;
                }
            }
        }
        if seen < declared {
            return Err(ApiError::new(Problem::bad_request(
                "The request body ended before its Content-Length; nothing of it was stored.",
            ))
            .with_cause("truncated chunk"));
        }
        Ok(())
    }
    .await;
    if outcome.is_err() {
        // Cut the part short: storage drops a request whose body fails.
        let _ = tx.try_send(Err(std::io::Error::other("chunk refused")));
        tx.close_channel();
    }
    outcome
}

/// `503` when the instance's buffer memory is taken by other uploads.
fn busy() -> ApiError {
    ApiError::new(
        Problem::new(Code::ServiceUnavailable)
            .detail("The service is busy with other uploads; retry this chunk shortly."),
    )
    .with_headers(vec![("Retry-After", RETRY_AFTER_SECS.to_string())])
}

/// A chunk of unknown length (no `Content-Length`: chunked transfer coding), read whole (at most
/// `upload_chunk_bytes`, within the instance's part-buffer budget), judged, then stored as one
/// part signed with its SHA-256; `None` for an empty body.
#[allow(clippy::too_many_arguments)]
async fn buffer_part(
    cfg: &Config,
    call: &mut Call,
    ctx: &AuthContext,
    target: &Target<'_>,
    chunk: &Chunk,
    length: u64,
    body_stream: IncomingRequestBody,
) -> Result<Option<Landed>, ApiError> {
    let (limit, over) = tus::chunk::read_limit(chunk.offset, length, cfg.tus.chunk_bytes);
    let limit_usize = usize::try_from(limit).map_err(|_| ApiError::internal("chunk limit"))?;
    let _permit = cfg.buffers.try_reserve(limit_usize).ok_or_else(busy)?;
    let slot = slot::take(cfg, &ctx.user, &mut call.log).await?;
    let read = read(cfg, body_stream, limit_usize, over, chunk.declared).await;
    slot.give_back(cfg).await;
    let bytes = read?;

    let sha: [u8; 32] = Sha256::digest(&bytes).into();
    if chunk.checksum.is_some_and(|c| c != sha) {
        return Err(Code::ChecksumMismatch.into());
    }
    let received = u64::try_from(bytes.len()).map_err(|_| ApiError::internal("len"))?;
    let kind = tus::chunk::judge_received(chunk.offset, received, length).map_err(refused)?;
    if kind == Received::Empty {
        return Ok(None);
    }
    let answer = cfg
        .storage
        .upload_part_hashed(target.key, target.upload_id, target.part, bytes, sha)
        .await;
    Ok(Some(Landed {
        received,
        kind,
        answer,
    }))
}

/// The body, whole, at most `limit` bytes (`over` beyond), paced like a single-request upload.
async fn read(
    cfg: &Config,
    body_stream: IncomingRequestBody,
    limit: usize,
    over: ChunkError,
    declared: Option<u64>,
) -> Result<Bytes, ApiError> {
    let tally = Shared::new(SizeLimit::new(u64::MAX).counter(), None, cfg.pace);
    let mut counted = Counted::new(body::chunks(body_stream), tally.clone());
    let capacity = declared
        .and_then(|d| usize::try_from(d).ok())
        .unwrap_or(limit)
        .min(limit);
    let mut buf = Vec::with_capacity(capacity);
    loop {
        match tally.paced(counted.next()).await? {
            None => break,
            Some(Ok(b)) => {
                if buf.len() + b.len() > limit {
                    return Err(refused(over));
                }
                buf.extend_from_slice(&b);
            }
            Some(Err(e)) => return Err(tally.failure(e)),
        }
    }
    if declared.is_some_and(|d| (buf.len() as u64) < d) {
        return Err(ApiError::new(Problem::bad_request(
            "The request body ended before its Content-Length; nothing of it was stored.",
        ))
        .with_cause("truncated chunk"));
    }
    Ok(Bytes::from(buf))
}
