//! `POST /api/v1/scan/callback`: a scanner reports a verdict.
//!
//! In this order (the first failure answers):
//! 1. the body, at most [`MAX_BODY`] bytes (`413 payload_too_large`);
//! 2. `X-Scan-Signature` over the exact bytes (`401 signature_invalid`, one answer for every refusal:
//!    the log says which); nothing about targets is revealed before this passes. The secret that
//!    matched names the scanner (`scan_callback_secrets` is `name:secret,...`), for the log and the
//!    audit row;
//! 3. the scanner's clock: a signature time more than 5 s ahead of ours is `400 clock_skew`;
//! 4. JSON media type (`415`) and the body ([`scan_core::Callback::parse`], `400 bad_request`, or
//!    `400 clock_skew` for a `scannedAt` more than 5 s ahead);
//! 5. the verdict, in one tenant transaction ([`verdict`]; `404 not_found` for an unknown target);
//! 6. for `infected`/`suspicious` content, the object's quarantine ([`quarantine`]), resumed on every
//!    callback for that content until it is complete (so a retry finishes an interrupted one).
//!
//! A verdict the state machine ignores (replay, release of quarantine, failed rescan of clean
//! content) is `204` like an applied one. Storage trouble after the verdict committed is `503`: the
//! scanner retries, the verdict is then a replay, and the quarantine resumes.

pub(crate) mod quarantine;
pub(crate) mod verdict;

use edge::app::{Call, Reply};
use edge::{ApiError, Code, Problem, body, response};
use http::StatusCode;
use scan_core::callback::check_signed_at;
use scan_core::signature::{self, HEADER, SignatureError};
use scan_core::{BodyError, Callback};
use spin_sdk::http::Request;
use store::spin::Db;

use crate::Config;

/// Largest callback body. A valid one is under 8 KiB (bounded fields); the cap leaves room for
/// JSON escapes and members we ignore.
pub(crate) const MAX_BODY: usize = 64 * 1024;

pub(crate) async fn handle(
    req: Request,
    call: &mut Call,
    cfg: &'static Config,
) -> Result<Reply, ApiError> {
    let (parts, b) = req.into_parts();
    let bytes = body::read_limited(&parts.headers, b, MAX_BODY).await?;
    let scanner = verify_scanner(cfg, &parts.headers, &bytes, call)?;
    let now_ms = auth_core::unix_now().saturating_mul(1000);
    body::require_json(&parts.headers)?;
    let cb = Callback::parse(&bytes, now_ms).map_err(refused)?;

    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let client_addr = call.client_addr();
    let decided = verdict::apply(&db, &cb, scanner, client_addr, call).await?;
    // The verdict is in force (downloads refuse quarantine content from here on); now the object.
    quarantine::ensure(cfg, &db, &decided, call).await?;
    Ok(response::empty(StatusCode::NO_CONTENT, &call.request_id).into())
}

/// Steps 2 and 3, for every scanner route: `X-Scan-Signature` over the exact `bytes` (`401` for
/// any refusal), then the scanner's clock (`400 clock_skew`); the name of the scanner whose secret
/// signed (also in the request's log line).
pub(crate) fn verify_scanner<'c>(
    cfg: &'c Config,
    headers: &http::HeaderMap,
    bytes: &[u8],
    call: &mut Call,
) -> Result<&'c str, ApiError> {
    let now = auth_core::unix_now();
    let header = signature::single_header(headers.get_all(HEADER).iter().map(|v| v.as_bytes()));
    let signed = match cfg.secrets.verify(header, bytes, now) {
        Ok(signed) => signed,
        Err(e) => return Err(refused_signature(&e, call)),
    };
    call.log.reason = Some(format!("scanner {}", signed.scanner));
    check_signed_at(signed.t, now.saturating_mul(1000)).map_err(refused)?;
    Ok(signed.scanner)
}

/// A signed body the callback will not take: `400`, `clock_skew` when the scanner's clock is ahead.
fn refused(e: BodyError) -> ApiError {
    let code = match e {
        BodyError::ClockSkew => Code::ClockSkew,
        _ => Code::BadRequest,
    };
    ApiError::new(Problem::new(code).detail(e.to_string()))
}

/// `401` for any refused `X-Scan-Signature` (the log says which refusal).
fn refused_signature(e: &SignatureError, call: &mut Call) -> ApiError {
    call.log.reason = Some(e.reason().to_owned());
    ApiError::new(Problem::with_status(Code::SignatureInvalid, 401).detail(
        "X-Scan-Signature is missing, malformed, outside the allowed time window, or does not match.",
    ))
    .with_header("WWW-Authenticate", "X-Scan-Signature realm=\"scan-callback\"")
}
