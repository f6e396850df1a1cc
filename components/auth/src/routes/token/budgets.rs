//! A login attempt's failure budgets in Redis (`auth_core::ratelimit::login_budgets`: per email and
//! client address, per client address, per email). Every attempt is counted before its password is
//! checked, atomically per budget, so parallel guesses cannot all pass a check made before any of
//! them was counted; a success clears the email's counts and gives its attempt back to the
//! per-address one. Unknown emails are counted too, so the limit cannot be used to probe. Redis
//! down: `login_rate_limit_fail_mode` (closed by default).

use auth_core::Email;
use auth_core::ratelimit::{self, AfterLogin, LoginBudget};
use edge::app::Component;
use edge::log::{self, RequestLog};
use edge::spin::RateLimiter;
use edge::{ApiError, limits};
use serde_json::json;

use crate::{Auth, Config};

/// The budgets of one attempt and the Redis connection they are counted on.
pub(crate) struct Budgets<'c> {
    budgets: Vec<LoginBudget<'c>>,
    limiter: RateLimiter,
}

impl<'c> Budgets<'c> {
    /// `client` is the rate-limit subject of the client's address (`Call::client_subject`).
    pub(crate) fn new(cfg: &'c Config, email: Option<&Email>, client: &str) -> Self {
        Self {
            budgets: ratelimit::login_budgets(&cfg.login_limits, email, client),
            limiter: RateLimiter::new(cfg.redis_url.as_str(), cfg.outbound_timeout),
        }
    }

    /// Counts this attempt against every budget. `Err(429)` when one is spent (the refused attempt
    /// counts too); a down Redis follows the login fail mode.
    pub(crate) async fn take_attempt(
        &mut self,
        cfg: &Config,
        log: &mut RequestLog,
    ) -> Result<(), ApiError> {
        for b in &self.budgets {
            match self.limiter.hit(b.policy, &b.key).await {
                Ok(d) if !d.allowed => {
                    log.outcome = "rate_limited".into();
                    log.reason = Some(b.policy.name().to_owned());
                    return Err(limits::refused(b.policy, &d));
                }
                Ok(_) => {}
                Err(cause) => {
                    log.reason = Some("ratelimit_backend_down".into());
                    return limits::backend_down(Auth::NAME, cfg.login_fail_mode, b.policy, &cause);
                }
            }
        }
        Ok(())
    }

    /// After a success. Best effort: the login already succeeded.
    pub(crate) async fn succeeded(&mut self) {
        for b in &self.budgets {
            let done = match b.after_success {
                AfterLogin::Clear => self.limiter.clear(&b.key).await,
                AfterLogin::GiveBack => self.limiter.give_back(&b.key).await,
            };
            if let Err(cause) = done {
                log::event(
                    Auth::NAME,
                    "ratelimit_backend_down",
                    json!({ "policy": b.policy.name(), "cause": cause }),
                );
                return;
            }
        }
    }
}
