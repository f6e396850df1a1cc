//! Spin host glue shared by the components (feature `spin`, wasm32-wasip2 only):
//!
//! * [`variable`]: a component variable, or a logged `500` when it is missing; [`outbound_timeout`]
//!   the deadline of outbound calls;
//! * [`RateLimiter`]: the Redis side of the fixed-window limiter of `auth_core::ratelimit`
//!   (`EVAL` of its script: one atomic round trip per decision) and of the access-token
//!   revocation list of `auth_core::revocation` (checked in the same `EVAL` as the per-user hit) and the concurrency slots of
//!   `auth_core::slots`, over `spin:redis`.
//!
//! Postgres is `crates/store`'s (`store::spin::Db`). Redis errors are returned as strings so the
//! caller applies its fail mode (see [`crate::limits::backend_down`]). Opening the connection and
//! each command have the outbound deadline (`outbound_timeout_secs`); a Redis that does not answer
//! in time counts as down, for the rest of the request too (a second command would wait again).

use auth_core::UserId;
use auth_core::ratelimit::{self, Decision, Policy};
use auth_core::revocation;
use auth_core::slots::{self, SlotPolicy};
use deadline::{OutboundTimeout, with_deadline};
use spin_sdk::redis::{self, RedisParameter, RedisResult};

use crate::ApiError;

/// A component variable. Missing or unreadable is a deployment error: `500`, cause logged (the
/// name, never a value).
pub async fn variable(name: &str) -> Result<String, ApiError> {
    spin_sdk::variables::get(name)
        .await
        .map_err(|e| ApiError::misconfigured(format!("variable {name}: {e:?}")))
}

/// The component's Postgres: `database_url` (its `sslmode` parameter decides TLS; the manifest fills
/// it from `db_sslmode`) and `db_ca_root`. An `sslmode` the host cannot honour is a deployment error.
pub async fn database() -> Result<store::spin::Database, ApiError> {
    let url = variable("database_url").await?;
    crate::settings::check_database_url(&url)
        .map_err(|e| ApiError::bad_setting("db_sslmode", e))?;
    Ok(store::spin::Database::new(
        url,
        &variable("db_ca_root").await?,
    ))
}

/// The default quota limits: `quota_tenant_bytes`, `quota_tenant_attachments`, `quota_user_bytes`,
/// `quota_user_attachments`, `quota_user_download_bytes_per_day` (`0` or empty: unlimited). A
/// negative, fractional or absurd value is a deployment error (`500 misconfigured`, logged).
pub async fn quota_limits() -> Result<::quota::Limits, ApiError> {
    ::quota::Limits::from_config(
        &variable("quota_tenant_bytes").await?,
        &variable("quota_tenant_attachments").await?,
        &variable("quota_user_bytes").await?,
        &variable("quota_user_attachments").await?,
        &variable("quota_user_download_bytes_per_day").await?,
    )
    .map_err(|e| ApiError::bad_setting(e.name, e.reason))
}

/// `outbound_timeout_secs`: the deadline of every outbound call (storage, Postgres, Redis). Invalid
/// is a deployment error (`500`, logged).
pub async fn outbound_timeout() -> Result<OutboundTimeout, ApiError> {
    OutboundTimeout::from_config(&variable("outbound_timeout_secs").await?)
        .map_err(|e| ApiError::bad_setting("outbound_timeout_secs", e))
}

/// The Redis side of the rate limiter. Connecting is deferred to the first call and a failure
/// is remembered, so a down Redis costs one attempt per request.
pub struct RateLimiter {
    url: String,
    conn: Option<Result<redis::Connection, String>>,
    timeout: OutboundTimeout,
}

impl RateLimiter {
    /// A limiter for `url` (`redis://host:port`) whose calls wait at most `timeout`; nothing is
    /// contacted yet.
    pub fn new(url: impl Into<String>, timeout: OutboundTimeout) -> Self {
        Self {
            url: url.into(),
            conn: None,
            timeout,
        }
    }

    async fn conn(&mut self) -> Result<&redis::Connection, String> {
        if self.conn.is_none() {
            let opened = match with_deadline(self.timeout, redis::Connection::open(&self.url)).await
            {
                Ok(Err(redis::Error::InvalidAddress)) => Err(format!(
                    "redis open: invalid address, or {}",
                    crate::limits::HOST_REFUSED
                )),
                Ok(r) => r.map_err(|e| format!("redis open: {e:?}")),
                Err(e) => Err(format!("redis open: {e}")),
            };
            self.conn = Some(opened);
        }
        match self.conn.as_ref() {
            Some(Ok(c)) => Ok(c),
            Some(Err(e)) => Err(e.clone()),
            None => Err("redis: no connection".into()),
        }
    }

    async fn eval(&mut self, args: Vec<String>) -> Result<(i64, i64), String> {
        let ints = self.eval_ints(args).await?;
        ratelimit::parse_reply(&ints).map_err(|e| format!("redis EVAL: {e}"))
    }

    /// Runs `command` on the connection within the deadline. A command that timed out leaves the
    /// connection in an unknown state and Redis evidently unwell: later calls fail at once.
    async fn bounded<T, E: std::fmt::Debug>(
        &mut self,
        what: &str,
        command: impl AsyncFnOnce(&redis::Connection) -> Result<T, E>,
    ) -> Result<T, String> {
        let timeout = self.timeout;
        let conn = self.conn().await?;
        match with_deadline(timeout, command(conn)).await {
            Ok(r) => r.map_err(|e| format!("redis {what}: {e:?}")),
            Err(e) => {
                let cause = format!("redis {what}: {e}");
                self.conn = Some(Err(cause.clone()));
                Err(cause)
            }
        }
    }

    /// `EVAL` whose reply is integers (or integer strings).
    async fn eval_ints(&mut self, args: Vec<String>) -> Result<Vec<i64>, String> {
        let reply = self
            .bounded("EVAL", async |conn| {
                conn.execute(
                    "EVAL",
                    args.into_iter()
                        .map(|a| RedisParameter::Binary(a.into_bytes())),
                )
                .await
            })
            .await?;
        let ints: Vec<i64> = reply
            .iter()
            .map(|r| match r {
                RedisResult::Int64(n) => Some(*n),
                RedisResult::Binary(b) => std::str::from_utf8(b).ok()?.parse().ok(),
                _ => None,
            })
            .collect::<Option<_>>()
            .ok_or_else(|| "redis EVAL: non-integer reply".to_owned())?;
        Ok(ints)
    }

    /// `PING`: whether Redis answers (readiness).
    pub async fn ping(&mut self) -> Result<(), String> {
        self.bounded("PING", async |conn| {
            conn.execute("PING", std::iter::empty::<RedisParameter>())
                .await
        })
        .await
        .map(|_| ())
    }

    /// Counts one request against `key` and decides it.
    pub async fn hit(&mut self, policy: &Policy, key: &str) -> Result<Decision, String> {
        let (count, pttl) = self.eval(ratelimit::hit_args(key, policy)).await?;
        Ok(Decision::after_hit(policy, count, pttl))
    }

    /// Gives back one request counted against `key` (a login attempt that succeeded).
    pub async fn give_back(&mut self, key: &str) -> Result<(), String> {
        self.eval(ratelimit::give_back_args(key)).await.map(|_| ())
    }

    /// Deletes a counter (e.g. the per-email failure count after a successful login).
    pub async fn clear(&mut self, key: &str) -> Result<(), String> {
        self.bounded("DEL", async |conn| {
            conn.del(ratelimit::clear_args(key)).await
        })
        .await
        .map(|_| ())
    }

    /// Whether the access token `jti` of `user`, issued at `issued_at`, is on the revocation list and,
    /// unless it is, [`Self::hit`] on `rate_key`, in one round trip: `Ok(None)` for a revoked token
    /// (nothing counted), else the hit's decision.
    pub async fn check_then_hit(
        &mut self,
        jti: &str,
        user: &UserId,
        issued_at: i64,
        policy: &Policy,
        rate_key: &str,
    ) -> Result<Option<Decision>, String> {
        let args = revocation::check_then_hit_args(jti, user, issued_at, rate_key, policy);
        let ints = self.eval_ints(args).await?;
        match revocation::parse_check_then_hit_reply(&ints, issued_at)
            .map_err(|e| format!("redis EVAL: {e}"))?
        {
            revocation::CheckThenHit::Revoked => Ok(None),
            revocation::CheckThenHit::Counted { count, pttl_ms } => {
                Ok(Some(Decision::after_hit(policy, count, pttl_ms)))
            }
        }
    }

    /// Puts one access token on the revocation list until it would have expired.
    pub async fn revoke_token(
        &mut self,
        jti: &str,
        token_expires_at: i64,
        now: i64,
    ) -> Result<(), String> {
        let Some(args) = revocation::token_set_args(jti, token_expires_at, now) else {
            return Ok(());
        };
        self.bounded("SET", async |conn| {
            conn.execute(
                "SET",
                args.into_iter()
                    .map(|a| RedisParameter::Binary(a.into_bytes())),
            )
            .await
        })
        .await
        .map(|_| ())
    }

    /// Revokes every access token of `user` issued at or before `now`.
    pub async fn revoke_user(
        &mut self,
        user: &UserId,
        now: i64,
        max_token_ttl_secs: i64,
    ) -> Result<(), String> {
        self.eval_ints(revocation::mark_user_args(user, now, max_token_ttl_secs))
            .await
            .map(|_| ())
    }

    /// Takes one of `user`'s slots under `policy` for `member`: `Ok(held)`, or `Err(held)` when all
    /// `policy.cap()` are held.
    pub async fn take_slot(
        &mut self,
        policy: &SlotPolicy,
        user: &UserId,
        member: &str,
        now_ms: i64,
    ) -> Result<Result<u32, u32>, String> {
        let ints = self
            .eval_ints(policy.take_args(user, member, now_ms))
            .await?;
        slots::parse_take_reply(&ints).map_err(|e| format!("redis EVAL: {e}"))
    }

    /// Gives `member`'s slot back.
    pub async fn give_back_slot(
        &mut self,
        policy: &SlotPolicy,
        user: &UserId,
        member: &str,
    ) -> Result<(), String> {
        let args = policy.give_back_args(user, member);
        self.bounded("ZREM", async |conn| {
            conn.execute(
                "ZREM",
                args.into_iter()
                    .map(|a| RedisParameter::Binary(a.into_bytes())),
            )
            .await
        })
        .await
        .map(|_| ())
    }
}
