//! Rate limiting, the pure part: policy, Redis key names, the atomic Lua script, the decision
//! from its reply, and the response headers.
//!
//! # Algorithm: fixed window, started by the first request
//!
//! One Redis counter per (policy, subject). The first request of a window creates it with a TTL of
//! the window length; each request increments it; the window ends when the key expires. Chosen
//! over a sliding log or GCRA because:
//! * it is exactly the contract's wording ("50 requests per minute", "the window resets") and the
//!   `RateLimit` header values are exact: `r` = requests left, `t` = the key's remaining TTL;
//! * it costs one key and one round trip (an `EVAL`) per request, atomic under concurrency (Redis
//!   runs a script without interleaving) and survives runner restarts (state lives in Redis);
//! * it needs no clock in the component or the script: the TTL is the clock, so component clock
//!   skew cannot matter.
//!
//! The known cost: a client may get up to `2 × limit` through in a span straddling two windows.
//! For per-user API throttling that is acceptable; login brute-force is bounded separately by the
//! login failure budgets ([`login_budgets`]: per email and client address, per client address, per
//! email), which use the same mechanism: a login attempt is counted before its password is checked
//! (so parallel guesses cannot all pass a check made before any of them was counted), and a
//! successful one is given back ([`GIVE_BACK_SCRIPT`]) or clears its counter.
//!
//! # Using it from a component (spin:redis)
//!
//! ```text
//! let args = ratelimit::hit_args(&key, &policy);        // ["<script>", "1", key, window_ms, "1"]
//! let reply = redis.execute("EVAL", args)?;             // two integers: [count, pttl_ms]
//! let d = Decision::after_hit(&policy, count, pttl_ms); // allowed? + headers
//! ```
//! On a Redis error the configured [`FailMode`] decides; never answer 500 for it.

use std::fmt;
use std::str::FromStr;

use problem::Problem;
use sha2::{Digest, Sha256};

use crate::{Email, Error, UserId};

/// Default per-user limit.
pub const DEFAULT_LIMIT: u64 = 50;
/// Default window, seconds.
pub const DEFAULT_WINDOW_SECS: u64 = 60;
/// Prefix of every rate-limit key (versioned so a change of scheme never reads old counters).
pub const KEY_PREFIX: &str = "rl:v1";

/// The Lua of one hit, setting `n` (the count) and `ttl` (its PTTL in ms) for the counter at `$key`
/// (a window of `$window_ms`, a cost of `$cost`: Lua expressions such as `KEYS[1]`): the body of
/// [`HIT_SCRIPT`], and of the scripts that hit after other checks in the same round trip
/// (`crate::revocation::CHECK_THEN_HIT_SCRIPT`).
macro_rules! hit_lua {
    ($key:literal, $window_ms:literal, $cost:literal) => {
        concat!(
            "local n = redis.call('INCRBY', ",
            $key,
            ", ",
            $cost,
            ")\n",
            "local ttl = redis.call('PTTL', ",
            $key,
            ")\n",
            "if ttl < 0 then\n",
            "  redis.call('PEXPIRE', ",
            $key,
            ", ",
            $window_ms,
            ")\n",
            "  ttl = tonumber(",
            $window_ms,
            ")\n",
            "end\n"
        )
    };
}
pub(crate) use hit_lua;

/// Increments the counter, starting the window if it is new, and returns `{count, pttl_ms}`.
/// `KEYS[1]` = counter key, `ARGV[1]` = window in milliseconds, `ARGV[2]` = cost (normally 1).
/// A key without a TTL (only possible if something else wrote it) gets one, so a counter can
/// never live forever.
pub const HIT_SCRIPT: &str = concat!(
    hit_lua!("KEYS[1]", "ARGV[1]", "ARGV[2]"),
    "return {n, ttl}\n"
);

/// Gives back one request counted by [`HIT_SCRIPT`] (a login attempt that succeeded), while the counter's
/// window lasts; never below 0, never creating a counter. `{count, pttl_ms}` after it.
pub const GIVE_BACK_SCRIPT: &str = "\
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  n = redis.call('DECR', KEYS[1])
end
return {n, redis.call('PTTL', KEYS[1])}
";

/// A limit: `limit` requests per `window_secs`, named for the headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    name: String,
    limit: u64,
    window_secs: u64,
}

impl Policy {
    /// A policy. `name` is 1..=32 chars of `[a-z0-9_-]` (it appears in keys and headers), `limit`
    /// at least 1, `window_secs` 1..=86400.
    pub fn new(name: &str, limit: u64, window_secs: u64) -> Result<Self, Error> {
        let name_ok = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(Error::Config(
                "rate limit policy name must be 1..=32 of [a-z0-9_-]".into(),
            ));
        }
        if limit == 0 || !(1..=86_400).contains(&window_secs) {
            return Err(Error::Config(
                "rate limit must be at least 1 per 1..=86400 seconds".into(),
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            limit,
            window_secs,
        })
    }

    /// The per-user API policy: 50 per 60 s.
    pub fn per_user_default() -> Self {
        Self {
            name: "user".into(),
            limit: DEFAULT_LIMIT,
            window_secs: DEFAULT_WINDOW_SECS,
        }
    }

    /// Failed logins per email from one client address: 5 per 15 minutes. The tight bound on
    /// guessing one account's password: it is one attacker's budget only, so spending it locks
    /// nobody else out.
    pub fn login_email_address_default() -> Self {
        Self {
            name: "login-email-addr".into(),
            limit: 5,
            window_secs: 900,
        }
    }

    /// Failed logins per email from all addresses together: 50 per 15 minutes. The loose bound on
    /// guessing one account from many addresses; an attacker needs 10 addresses to spend it.
    pub fn login_email_default() -> Self {
        Self {
            name: "login-email".into(),
            limit: 50,
            window_secs: 900,
        }
    }

    /// Requests per signed content URL: 120 per 60 s (a browser fetching one file in ranges, a
    /// media player seeking, a mail client retrying all fit; a URL pasted into a public page and
    /// hammered does not).
    pub fn per_url_default() -> Self {
        Self {
            name: "file".into(),
            limit: 120,
            window_secs: 60,
        }
    }

    /// Failed logins per client address: 100 per 15 minutes (high enough for many users behind
    /// one NAT; it stops spraying, the per-email limit stops guessing).
    pub fn login_address_default() -> Self {
        Self {
            name: "login-addr".into(),
            limit: 100,
            window_secs: 900,
        }
    }

    /// Parses `"<limit>/<window>"` for a policy called `name`; the window is seconds with an
    /// optional unit `s`, `m` or `h` (`"50/60"`, `"50/60s"`, `"50/1m"`, `"1000/1h"`).
    pub fn parse(name: &str, spec: &str) -> Result<Self, Error> {
        let bad = || Error::Config("rate limit must look like 50/60s, 50/1m or 1000/1h".into());
        let (limit, window) = spec.trim().split_once('/').ok_or_else(bad)?;
        let limit: u64 = limit.trim().parse().map_err(|_| bad())?;
        let window = window.trim();
        let (digits, mult) = match window.as_bytes().last() {
            Some(b's') => (&window[..window.len() - 1], 1),
            Some(b'm') => (&window[..window.len() - 1], 60),
            Some(b'h') => (&window[..window.len() - 1], 3600),
            _ => (window, 1),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        Self::new(name, limit, n.checked_mul(mult).ok_or_else(bad)?)
    }

    /// The policy name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Requests per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Window length, seconds.
    pub fn window_secs(&self) -> u64 {
        self.window_secs
    }

    /// The `RateLimit-Policy` value, e.g. `"user";q=50;w=60`.
    pub fn header_value(&self) -> String {
        format!("\"{}\";q={};w={}", self.name, self.limit, self.window_secs)
    }
}

/// Who a counter is for.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// An authenticated user (per-user API limit).
    User(&'a UserId),
    /// Failed logins for an email (hashed in the key: no addresses in Redis key names).
    LoginEmail(&'a Email),
    /// Failed logins for an email from one client address (hashed together in the key).
    LoginEmailAddress(&'a Email, &'a str),
    /// Failed logins from a client address (the rate-limit subject of an address:
    /// `edge::client::rate_limit_subject`, e.g. `192.0.2.7`, `2001:db8::/64`, `unknown`).
    LoginAddress(&'a str),
    /// Requests to one signed content URL, by its opaque id (`signed_url::url_id`; anything else is
    /// hashed, never kept: the URL itself is a credential).
    SignedUrl(&'a str),
}

fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..16])
}

/// The Redis key of `subject`'s counter under `policy`:
/// `rl:v1:<policy>:<window>:<kind>:<id>`. The window length is part of the key so that changing
/// the configuration starts fresh counters. User ids are UUIDs; emails (alone or with an address)
/// are hashed; addresses are kept when they are plain IPv4/IPv6 text (or a `/64` prefix) and hashed
/// otherwise, so a key is always short and free of spaces, newlines and other protocol characters.
pub fn key(policy: &Policy, subject: Subject<'_>) -> String {
    let (kind, id) = match subject {
        Subject::User(u) => ("u", u.to_string()),
        Subject::LoginEmail(e) => ("e", short_hash(e.as_str())),
        // A newline cannot be part of an email or an address: the pair hashes unambiguously.
        Subject::LoginEmailAddress(e, a) => ("ea", short_hash(&format!("{}\n{a}", e.as_str()))),
        Subject::LoginAddress(a) => {
            let plain = !a.is_empty()
                && a.len() <= 45
                && a.bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':' || b == b'/');
            (
                "a",
                if plain {
                    a.to_ascii_lowercase()
                } else {
                    short_hash(a)
                },
            )
        }
        Subject::SignedUrl(u) => {
            let opaque = u.len() == 32
                && u.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            ("s", if opaque { u.to_owned() } else { short_hash(u) })
        }
    };
    format!(
        "{KEY_PREFIX}:{}:{}:{kind}:{id}",
        policy.name, policy.window_secs
    )
}

/// Arguments of `EVAL` for one hit: `[script, "1", key, window_ms, cost]`.
pub fn hit_args(key: &str, policy: &Policy) -> Vec<String> {
    vec![
        HIT_SCRIPT.to_owned(),
        "1".to_owned(),
        key.to_owned(),
        (policy.window_secs * 1000).to_string(),
        "1".to_owned(),
    ]
}

/// Arguments of `EVAL` to give one request back: `[script, "1", key]`.
pub fn give_back_args(key: &str) -> Vec<String> {
    vec![GIVE_BACK_SCRIPT.to_owned(), "1".to_owned(), key.to_owned()]
}

/// Arguments of `DEL` to clear a counter (e.g. the per-email failure counter after a successful
/// login).
pub fn clear_args(key: &str) -> Vec<String> {
    vec![key.to_owned()]
}

/// Reads a script reply (already converted to integers) into `(count, pttl_ms)`.
pub fn parse_reply(values: &[i64]) -> Result<(i64, i64), Error> {
    match values {
        [count, pttl] => Ok((*count, *pttl)),
        _ => Err(Error::Config("unexpected rate limit script reply".into())),
    }
}

/// The outcome for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether to serve the request.
    pub allowed: bool,
    /// Requests left in the window (`r`).
    pub remaining: u64,
    /// Seconds until the window resets (`t`), at least 1 while a window is open.
    pub reset_secs: u64,
}

fn reset_from_pttl(policy: &Policy, pttl_ms: i64) -> u64 {
    if pttl_ms < 0 {
        return policy.window_secs;
    }
    let secs = (pttl_ms as u64).div_ceil(1000);
    secs.clamp(1, policy.window_secs)
}

impl Decision {
    /// After [`HIT_SCRIPT`] returned `count` (including this request): allowed while
    /// `count <= limit`.
    pub fn after_hit(policy: &Policy, count: i64, pttl_ms: i64) -> Self {
        let count = count.max(0) as u64;
        Self {
            allowed: count <= policy.limit,
            remaining: policy.limit.saturating_sub(count),
            reset_secs: reset_from_pttl(policy, pttl_ms),
        }
    }

    /// `RateLimit-Policy`, `RateLimit` and, when refused, `Retry-After` (never earlier than the
    /// reset, as the draft asks). Set them on every response the policy covered, 429 or not.
    pub fn headers(&self, policy: &Policy) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("RateLimit-Policy", policy.header_value()),
            (
                "RateLimit",
                format!(
                    "\"{}\";r={};t={}",
                    policy.name, self.remaining, self.reset_secs
                ),
            ),
        ];
        if !self.allowed {
            h.push(("Retry-After", self.reset_secs.max(1).to_string()));
        }
        h
    }

    /// The `429 rate_limited` problem for a refused request.
    pub fn problem(&self) -> Problem {
        Problem::rate_limited()
    }
}

/// What to do when Redis cannot be reached. Either way, log it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Serve the request without rate limiting (the default: the limiter protects capacity,
    /// not secrets).
    #[default]
    Open,
    /// Refuse with `503 service_unavailable` and `Retry-After`.
    Closed,
}

/// `Retry-After` sent when failing closed.
pub const FAIL_CLOSED_RETRY_AFTER_SECS: u64 = 5;

impl FailMode {
    /// `None` to serve the request, or the refusal (problem and headers) to send.
    pub fn on_backend_error(self) -> Option<(Problem, Vec<(&'static str, String)>)> {
        match self {
            FailMode::Open => None,
            FailMode::Closed => Some((
                Problem::service_unavailable(),
                vec![("Retry-After", FAIL_CLOSED_RETRY_AFTER_SECS.to_string())],
            )),
        }
    }
}

impl FromStr for FailMode {
    type Err = Error;
    /// `open` or `closed` (any case, surrounding spaces ignored).
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(FailMode::Open),
            "closed" => Ok(FailMode::Closed),
            _ => Err(Error::Config(
                "rate limit fail mode must be open or closed".into(),
            )),
        }
    }
}

impl fmt::Display for FailMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailMode::Open => "open",
            FailMode::Closed => "closed",
        })
    }
}

/// What a successful login does to one of the budgets its attempt was counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterLogin {
    /// Delete the counter: the email's failures are forgiven once its password was given.
    Clear,
    /// Give the attempt back: the address's budget goes on counting others' failures behind it.
    GiveBack,
}

/// One failure budget of a login attempt: its policy, its counter, and what a success does to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginBudget<'p> {
    pub policy: &'p Policy,
    pub key: String,
    pub after_success: AfterLogin,
}

/// The login failure policies: per (email, client address), per client address, per email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginPolicies {
    /// Failures for one email from one address (`login_rate_limit_email_address`): the tight one.
    pub per_email_address: Policy,
    /// Failures from one address, whatever the email (`login_rate_limit_address`): stops spraying.
    pub per_address: Policy,
    /// Failures for one email from all addresses (`login_rate_limit_email`): the loose one.
    pub per_email: Policy,
}

impl Default for LoginPolicies {
    fn default() -> Self {
        Self {
            per_email_address: Policy::login_email_address_default(),
            per_address: Policy::login_address_default(),
            per_email: Policy::login_email_default(),
        }
    }
}

/// The budgets one login attempt is counted against, before its password is checked, in this
/// order: per (email, address), per address, per email (the email ones only when the email
/// parses). `address` is the rate-limit subject of the client's address (`unknown` when not
/// known: an unknown address shares one budget rather than escaping it).
///
/// The order is what keeps one attacker from locking a user out: counting stops at the first spent
/// budget, so an address adds at most its per-(email, address) allowance to the email's shared
/// count, and the victim, from another address, has a budget of their own.
pub fn login_budgets<'p>(
    policies: &'p LoginPolicies,
    email: Option<&Email>,
    address: &str,
) -> Vec<LoginBudget<'p>> {
    let mut budgets = Vec::with_capacity(3);
    if let Some(e) = email {
        budgets.push(LoginBudget {
            policy: &policies.per_email_address,
            key: key(
                &policies.per_email_address,
                Subject::LoginEmailAddress(e, address),
            ),
            after_success: AfterLogin::Clear,
        });
    }
    budgets.push(LoginBudget {
        policy: &policies.per_address,
        key: key(&policies.per_address, Subject::LoginAddress(address)),
        after_success: AfterLogin::GiveBack,
    });
    if let Some(e) = email {
        budgets.push(LoginBudget {
            policy: &policies.per_email,
            key: key(&policies.per_email, Subject::LoginEmail(e)),
            after_success: AfterLogin::Clear,
        });
    }
    budgets
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A model of the two scripts' semantics (Redis executes them atomically), to test the
    /// sequence a component runs: 50 allowed, the 51st refused, a fresh window after expiry.
    #[derive(Default)]
    struct FakeRedis {
        now_ms: i64,
        keys: HashMap<String, (i64, Option<i64>)>,
    }

    impl FakeRedis {
        fn expire(&mut self) {
            let now = self.now_ms;
            self.keys.retain(|_, (_, exp)| exp.is_none_or(|e| e > now));
        }
        fn hit(&mut self, key: &str, window_ms: i64) -> (i64, i64) {
            self.expire();
            let now = self.now_ms;
            let e = self.keys.entry(key.to_owned()).or_insert((0, None));
            e.0 += 1;
            let ttl = match e.1 {
                Some(exp) => exp - now,
                None => {
                    e.1 = Some(now + window_ms);
                    window_ms
                }
            };
            (e.0, ttl)
        }
        fn give_back(&mut self, key: &str) -> (i64, i64) {
            self.expire();
            let now = self.now_ms;
            match self.keys.get_mut(key) {
                Some((n, exp)) => {
                    *n = (*n - 1).max(0);
                    (*n, exp.map_or(-1, |e| e - now))
                }
                None => (0, -2),
            }
        }
    }

    fn user() -> UserId {
        UserId::parse("6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b").unwrap()
    }

    #[test]
    fn fifty_first_request_is_refused_and_window_resets() {
        let p = Policy::per_user_default();
        let k = key(&p, Subject::User(&user()));
        let mut r = FakeRedis::default();
        for i in 1..=50 {
            r.now_ms += 100;
            let (n, ttl) = r.hit(&k, 60_000);
            let d = Decision::after_hit(&p, n, ttl);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 50 - i);
        }
        let (n, ttl) = r.hit(&k, 60_000);
        let d = Decision::after_hit(&p, n, ttl);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(
            d.reset_secs, 56,
            "window opened 4.9 s ago: 55.1 s left, rounded up"
        );
        let h = d.headers(&p);
        assert_eq!(h[0], ("RateLimit-Policy", "\"user\";q=50;w=60".to_owned()));
        assert_eq!(h[1], ("RateLimit", "\"user\";r=0;t=56".to_owned()));
        assert_eq!(h[2], ("Retry-After", "56".to_owned()));
        assert_eq!(d.problem().status(), 429);
        assert_eq!(d.problem().code(), problem::Code::RateLimited);
        // After Retry-After the window is new.
        r.now_ms += 56_000;
        let (n, ttl) = r.hit(&k, 60_000);
        let d = Decision::after_hit(&p, n, ttl);
        assert!(d.allowed);
        assert_eq!(d.remaining, 49);
        assert_eq!(d.reset_secs, 60);
        assert_eq!(d.headers(&p).len(), 2, "no Retry-After when allowed");
    }

    #[test]
    fn login_attempts_are_counted_first_and_successes_given_back() {
        let p = Policy::new("login-email", 5, 900).unwrap();
        let email = Email::parse("Alice@Example.com").unwrap();
        let k = key(&p, Subject::LoginEmail(&email));
        let mut r = FakeRedis::default();
        // Five attempts taken at once (parallel guesses): all counted before any password check.
        for _ in 0..5 {
            let (n, ttl) = r.hit(&k, 900_000);
            assert!(Decision::after_hit(&p, n, ttl).allowed);
        }
        let (n, ttl) = r.hit(&k, 900_000);
        let d = Decision::after_hit(&p, n, ttl);
        assert!(!d.allowed, "the sixth is refused");
        assert_eq!(d.reset_secs, 900);
        // Attempts that succeeded give their count back; never below zero, never a new counter.
        r.give_back(&k);
        r.give_back(&k);
        let (n, ttl) = r.hit(&k, 900_000);
        assert!(Decision::after_hit(&p, n, ttl).allowed, "5 of 5 again");
        assert_eq!(r.give_back("rl:v1:other"), (0, -2));
        assert!(!r.keys.contains_key("rl:v1:other"));
        r.now_ms += 900_000;
        assert_eq!(r.give_back(&k), (0, -2), "the window is over");
    }

    #[test]
    fn keys_are_safe_and_distinct() {
        let p = Policy::per_user_default();
        assert_eq!(
            key(&p, Subject::User(&user())),
            "rl:v1:user:60:u:6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
        );
        let e = Email::parse("a@b.c").unwrap();
        let ek = key(&p, Subject::LoginEmail(&e));
        assert!(!ek.contains("a@b.c"));
        assert_eq!(
            key(&p, Subject::LoginAddress("127.0.0.1")),
            "rl:v1:user:60:a:127.0.0.1"
        );
        assert_eq!(key(&p, Subject::LoginAddress("::1")), "rl:v1:user:60:a:::1");
        let weird = key(&p, Subject::LoginAddress("1.2.3.4\r\nFLUSHALL"));
        assert!(weird.bytes().all(|b| b.is_ascii_graphic()), "{weird}");
        let url_id = "0123456789abcdef0123456789abcdef";
        let f = Policy::per_url_default();
        assert_eq!(
            key(&f, Subject::SignedUrl(url_id)),
            format!("rl:v1:file:60:s:{url_id}")
        );
        let raw = key(&f, Subject::SignedUrl("/api/v1/files/x?s=SECRET"));
        assert!(!raw.contains("SECRET") && !raw.contains('?'), "{raw}");
        let other_window = Policy::new("user", 50, 120).unwrap();
        assert_ne!(
            key(&p, Subject::User(&user())),
            key(&other_window, Subject::User(&user()))
        );
    }

    #[test]
    fn reset_rounding_and_bounds() {
        let p = Policy::per_user_default();
        assert_eq!(Decision::after_hit(&p, 1, 60_000).reset_secs, 60);
        assert_eq!(Decision::after_hit(&p, 1, 59_001).reset_secs, 60);
        assert_eq!(Decision::after_hit(&p, 1, 1).reset_secs, 1);
        assert_eq!(Decision::after_hit(&p, 1, 0).reset_secs, 1);
        assert_eq!(Decision::after_hit(&p, 1, -1).reset_secs, 60);
        assert_eq!(Decision::after_hit(&p, 1, 10_000_000).reset_secs, 60);
        assert_eq!(Decision::after_hit(&p, -5, 1000).remaining, 50);
        assert_eq!(Decision::after_hit(&p, 1000, 1000).remaining, 0);
    }

    #[test]
    fn policy_parsing() {
        assert_eq!(
            Policy::parse("user", "50/60").unwrap(),
            Policy::per_user_default()
        );
        assert_eq!(
            Policy::parse("user", "50/60s").unwrap(),
            Policy::per_user_default()
        );
        assert_eq!(
            Policy::parse("user", " 50 / 1m ").unwrap(),
            Policy::per_user_default()
        );
        assert_eq!(
            Policy::parse("user", "1000/1h").unwrap().window_secs(),
            3600
        );
        for bad in [
            "",
            "50",
            "0/60",
            "50/0",
            "x/60",
            "50/2d",
            "50/-1",
            "50/100000",
        ] {
            assert!(Policy::parse("user", bad).is_err(), "{bad}");
        }
        assert!(Policy::new("User", 1, 1).is_err());
        for p in [
            Policy::per_user_default(),
            Policy::login_email_address_default(),
            Policy::login_email_default(),
            Policy::login_address_default(),
            Policy::per_url_default(),
        ] {
            assert_eq!(
                Policy::new(p.name(), p.limit(), p.window_secs()).unwrap(),
                p
            );
        }
        assert!(Policy::new("a\"b", 1, 1).is_err());
    }

    #[test]
    fn scripts_and_args() {
        let p = Policy::per_user_default();
        let a = hit_args("k", &p);
        assert_eq!(a[0], HIT_SCRIPT);
        assert_eq!(&a[1..], ["1", "k", "60000", "1"]);
        assert_eq!(give_back_args("k")[1..], ["1", "k"]);
        assert!(GIVE_BACK_SCRIPT.contains("DECR") && !GIVE_BACK_SCRIPT.contains("KEYS[2]"));
        assert_eq!(parse_reply(&[3, 1500]).unwrap(), (3, 1500));
        assert!(parse_reply(&[3]).is_err());
        // The script only touches KEYS[1] (cluster-safe) and sets a TTL on every path.
        assert!(HIT_SCRIPT.contains("PEXPIRE"));
        assert!(!HIT_SCRIPT.contains("KEYS[2]"));
    }

    #[test]
    fn fail_modes() {
        assert_eq!("open".parse::<FailMode>().unwrap(), FailMode::Open);
        assert_eq!(" Closed ".parse::<FailMode>().unwrap(), FailMode::Closed);
        assert!("maybe".parse::<FailMode>().is_err());
        assert_eq!(FailMode::default(), FailMode::Open);
        assert!(FailMode::Open.on_backend_error().is_none());
        let (p, h) = FailMode::Closed.on_backend_error().unwrap();
        assert_eq!(p.status(), 503);
        assert_eq!(h, vec![("Retry-After", "5".to_owned())]);
    }

    #[test]
    fn a_login_counts_against_its_email_and_address_then_address_then_email() {
        let p = LoginPolicies::default();
        let email = Email::parse("Alice@Example.test").unwrap();
        let all = login_budgets(&p, Some(&email), "192.0.2.7");
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].policy, &p.per_email_address);
        assert_eq!(
            all[0].key,
            key(
                &p.per_email_address,
                Subject::LoginEmailAddress(&email, "192.0.2.7")
            )
        );
        assert_eq!(all[0].after_success, AfterLogin::Clear);
        assert_eq!(all[1].policy, &p.per_address);
        assert_eq!(
            all[1].key,
            key(&p.per_address, Subject::LoginAddress("192.0.2.7"))
        );
        assert_eq!(all[1].after_success, AfterLogin::GiveBack);
        assert_eq!(all[2].policy, &p.per_email);
        assert_eq!(all[2].key, key(&p.per_email, Subject::LoginEmail(&email)));
        assert_eq!(all[2].after_success, AfterLogin::Clear);
        // An email that does not parse is still counted per address.
        assert_eq!(login_budgets(&p, None, "192.0.2.7"), all[1..2]);
        // Another address: its own (email, address) budget, the same shared email budget.
        let other = login_budgets(&p, Some(&email), "198.51.100.1");
        assert_ne!(other[0].key, all[0].key);
        assert_eq!(other[2].key, all[2].key);
        // The pair key names neither the email nor the address, and pairs do not collide.
        assert!(!all[0].key.contains("alice") && !all[0].key.contains("192.0.2.7"));
        let a = Email::parse("a@b.c").unwrap();
        assert_ne!(
            key(
                &p.per_email_address,
                Subject::LoginEmailAddress(&a, "1.2.3.4")
            ),
            key(
                &p.per_email_address,
                Subject::LoginEmailAddress(&a, "1.2.3.5")
            )
        );
        // A /64 prefix is kept readable, like an address.
        assert!(
            key(&p.per_address, Subject::LoginAddress("2001:db8:1:2::/64"))
                .ends_with(":a:2001:db8:1:2::/64")
        );
    }

    /// One attacker address spending its (email, address) budget leaves the victim's own intact,
    /// and adds at most that budget to the shared per-email count.
    #[test]
    fn an_attacker_address_cannot_lock_the_victim_out() {
        let p = LoginPolicies::default();
        let email = Email::parse("victim@example.test").unwrap();
        let mut r = FakeRedis::default();
        let attempt = |r: &mut FakeRedis, addr: &str| -> Option<String> {
            for b in login_budgets(&p, Some(&email), addr) {
                let (n, ttl) = r.hit(&b.key, b.policy.window_secs() as i64 * 1000);
                if !Decision::after_hit(b.policy, n, ttl).allowed {
                    return Some(b.policy.name().to_owned());
                }
            }
            None
        };
        for _ in 0..5 {
            assert_eq!(attempt(&mut r, "203.0.113.66"), None);
        }
        for _ in 0..20 {
            assert_eq!(
                attempt(&mut r, "203.0.113.66").as_deref(),
                Some("login-email-addr")
            );
        }
        assert_eq!(attempt(&mut r, "192.0.2.7"), None, "the victim's address");
        let shared = key(&p.per_email, Subject::LoginEmail(&email));
        assert_eq!(
            r.keys[&shared].0, 6,
            "5 from the attacker, 1 from the victim"
        );
    }
}
