//! The upload's slot: a user has at most `max_concurrent_uploads` uploads in progress, over every
//! instance (`auth_core::slots` in Redis). The slot is taken after the message check and before the
//! body is read, and given back when the upload has ended, however it ended; one not given back (an
//! instance stopped mid-upload) lapses after the longest an upload may run. Beyond the cap: `429
//! too_many_uploads` with `Retry-After`. A down Redis follows `rate_limit_fail_mode`.

use auth_core::UserId;
use auth_core::slots;
use edge::log::RequestLog;
use edge::spin::RateLimiter;
use edge::{ApiError, Code, Problem};

use crate::Config;

/// Seconds a client is asked to wait before retrying: uploads in progress end within seconds to
/// minutes; the client learns nothing better.
const RETRY_AFTER_SECS: u64 = 5;

/// A slot this request holds (or `None` inside when Redis was down and the mode is open).
pub(crate) struct Slot {
    held: Option<(RateLimiter, UserId, String)>,
}

/// Takes a slot for `user`, or the `429`/`503` to answer.
pub(crate) async fn take(
    cfg: &Config,
    user: &UserId,
    log: &mut RequestLog,
) -> Result<Slot, ApiError> {
    let member = slots::new_member().map_err(ApiError::internal)?;
    let mut limiter = RateLimiter::new(cfg.redis_url.as_str(), cfg.outbound_timeout);
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
    )
    .unwrap_or(i64::MAX);
    match limiter
        .take_slot(&cfg.upload_slots, user, &member, now_ms)
        .await
    {
        Ok(Ok(_)) => Ok(Slot {
            held: Some((limiter, *user, member)),
        }),
        Ok(Err(held)) => {
            log.reason = Some("too_many_uploads".into());
            Err(
                ApiError::new(Problem::new(Code::TooManyUploads).detail(format!(
                    "{held} uploads of yours are in progress, the most allowed at once; \
                     retry when one has finished."
                )))
                .with_headers(vec![("Retry-After", RETRY_AFTER_SECS.to_string())]),
            )
        }
        Err(cause) => {
            log.reason = Some("ratelimit_backend_down".into());
            edge::limits::limit_backend_down("ingest", cfg.fail_mode, "uploads", &cause)?;
            Ok(Slot { held: None })
        }
    }
}

impl Slot {
    /// Gives the slot back. A failure is only logged: the slot lapses on its own.
    pub(crate) async fn give_back(self, cfg: &Config) {
        let Some((mut limiter, user, member)) = self.held else {
            return;
        };
        if let Err(cause) = limiter
            .give_back_slot(&cfg.upload_slots, &user, &member)
            .await
        {
            edge::log::event(
                "ingest",
                "upload_slot_not_given_back",
                serde_json::json!({ "cause": cause }),
            );
        }
    }
}
