//! The access-token revocation list: Redis keys that the auth middleware reads on every request,
//! so that logout, deactivation and a role change end a token's life before its `exp`.
//!
//! Two kinds of entry, each set to expire when the last token it could match would have expired
//! anyway, so the list never outgrows the tokens in circulation:
//!
//! * a token: `rv:v1:j:<hash of jti>` (logout of that session's access token);
//! * a user: `rv:v1:u:<user id>` = Unix seconds `t`, revoking every token of that user issued at
//!   or before `t` (deactivation, a role change, "log out everywhere"). A token minted in the same
//!   second as the change is revoked too: the client refreshes and gets one that carries the new
//!   state. Writing a later `t` never moves the mark backwards ([`MARK_USER_SCRIPT`]).
//!
//! The auth middleware checks every request, and counts it against the per-user rate limit, in one
//! round trip: [`CHECK_THEN_HIT_SCRIPT`] reads both keys, and counts only a request whose token is
//! not revoked (a revoked token cannot spend its user's quota). The decision from its reply is
//! [`is_revoked`], pure and tested here.

use sha2::{Digest, Sha256};

use crate::{Error, UserId};

/// Prefix of every revocation key (versioned like the rate-limit keys).
pub const KEY_PREFIX: &str = "rv:v1";

/// Seconds an entry outlives the token it revokes: covers the verifier's leeway on `exp`.
pub const EXPIRY_MARGIN_SECS: i64 = 300;

/// The revocation check (token key exists? the user's mark) and then, unless the token is revoked, [`crate::ratelimit::HIT_SCRIPT`]'s hit, in one
/// `EVAL`. `KEYS[1]` = token key, `KEYS[2]` = user key, `KEYS[3]` = rate-limit counter; `ARGV[1]` = the
/// token's `iat`, `ARGV[2]` = window in milliseconds, `ARGV[3]` = cost. Replies `{token_revoked,
/// user_mark (-1 if none), count, pttl_ms}`, count and pttl `-1` when nothing was counted. Whether to
/// count is the Lua twin of [`is_revoked`]; [`parse_check_then_hit_reply`] holds the two to agreeing.
pub const CHECK_THEN_HIT_SCRIPT: &str = concat!(
    "local t = redis.call('EXISTS', KEYS[1])\n",
    "local u = tonumber(redis.call('GET', KEYS[2]) or '-1')\n",
    "if t == 1 or (u >= 0 and tonumber(ARGV[1]) <= u) then return {t, u, -1, -1} end\n",
    crate::ratelimit::hit_lua!("KEYS[3]", "ARGV[2]", "ARGV[3]"),
    "return {t, u, n, ttl}"
);

/// `KEYS[1]` = user key, `ARGV[1]` = mark (Unix seconds), `ARGV[2]` = lifetime in seconds. Keeps the
/// later of the stored and the new mark; the lifetime is renewed. Replies with the mark kept.
pub const MARK_USER_SCRIPT: &str = "\
local old = tonumber(redis.call('GET', KEYS[1]) or '-1')
local new = tonumber(ARGV[1])
if old > new then new = old end
redis.call('SET', KEYS[1], tostring(new), 'EX', ARGV[2])
return new";

/// The key that revokes the access token whose `jti` this is. The id is hashed: it is short and
/// free of protocol characters whatever the token carried.
pub fn token_key(jti: &str) -> String {
    let digest = Sha256::digest(jti.as_bytes());
    format!("{KEY_PREFIX}:j:{}", hex::encode(&digest[..16]))
}

/// The key that holds `user`'s revocation mark.
pub fn user_key(user: &UserId) -> String {
    format!("{KEY_PREFIX}:u:{user}")
}

/// Arguments of `EVAL` for [`CHECK_THEN_HIT_SCRIPT`]: the token `jti` of `user`, issued at `issued_at`,
/// and the hit on `rate_key` under `policy`.
pub fn check_then_hit_args(
    jti: &str,
    user: &UserId,
    issued_at: i64,
    rate_key: &str,
    policy: &crate::ratelimit::Policy,
) -> Vec<String> {
    vec![
        CHECK_THEN_HIT_SCRIPT.to_owned(),
        "3".to_owned(),
        token_key(jti),
        user_key(user),
        rate_key.to_owned(),
        issued_at.to_string(),
        (policy.window_secs() * 1000).to_string(),
        "1".to_owned(),
    ]
}

/// What [`CHECK_THEN_HIT_SCRIPT`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckThenHit {
    /// The token is revoked; nothing was counted.
    Revoked,
    /// Not revoked, and counted: the counter's value (this request included) and its `PTTL`.
    Counted { count: i64, pttl_ms: i64 },
}

/// Reads [`CHECK_THEN_HIT_SCRIPT`]'s reply for a token issued at `issued_at`. The revocation decision
/// is [`is_revoked`]'s; a reply whose counting disagrees with it is an error, never a guess.
pub fn parse_check_then_hit_reply(values: &[i64], issued_at: i64) -> Result<CheckThenHit, Error> {
    let bad = || Error::Config("unexpected revocation and rate limit script reply".into());
    let [t, u, count, pttl] = values else {
        return Err(bad());
    };
    let (token, mark) = parse_check_reply(&[*t, *u]).map_err(|_| bad())?;
    match (is_revoked(token, mark, issued_at), *count) {
        (true, -1) => Ok(CheckThenHit::Revoked),
        (false, count) if count >= 1 => Ok(CheckThenHit::Counted {
            count,
            pttl_ms: *pttl,
        }),
        _ => Err(bad()),
    }
}

/// Arguments of `EVAL` that revoke every token of `user` issued at or before `now`, for as long
/// as an access token can live (`max_token_ttl_secs`).
pub fn mark_user_args(user: &UserId, now: i64, max_token_ttl_secs: i64) -> Vec<String> {
    vec![
        MARK_USER_SCRIPT.to_owned(),
        "1".to_owned(),
        user_key(user),
        now.to_string(),
        entry_lifetime(max_token_ttl_secs).to_string(),
    ]
}

/// Arguments of `SET` that revoke one token until it would have expired (`token_expires_at`).
/// `None` when the token has expired already (nothing to revoke).
pub fn token_set_args(jti: &str, token_expires_at: i64, now: i64) -> Option<Vec<String>> {
    let left = token_expires_at.checked_sub(now)?;
    (left > -EXPIRY_MARGIN_SECS).then(|| {
        vec![
            token_key(jti),
            "1".to_owned(),
            "EX".to_owned(),
            entry_lifetime(left).to_string(),
        ]
    })
}

fn entry_lifetime(token_secs_left: i64) -> i64 {
    token_secs_left.max(0).saturating_add(EXPIRY_MARGIN_SECS)
}

/// Reads the revocation part of a reply (`{token_revoked (0|1), user_mark (-1 if none)}`) into
/// `(token_revoked, user_mark)`.
pub fn parse_check_reply(values: &[i64]) -> Result<(bool, Option<i64>), Error> {
    match values {
        [t, u] if (*t == 0 || *t == 1) && *u >= -1 => Ok((*t == 1, (*u >= 0).then_some(*u))),
        _ => Err(Error::Config("unexpected revocation script reply".into())),
    }
}

/// Whether a token issued at `issued_at` is revoked, given the check's reply.
pub fn is_revoked(token_revoked: bool, user_mark: Option<i64>, issued_at: i64) -> bool {
    token_revoked || user_mark.is_some_and(|mark| issued_at <= mark)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn user() -> UserId {
        UserId::parse("0b5f1a4e-8f1e-4a57-9d53-2c1f3c1e0b7a").unwrap()
    }

    #[test]
    fn check_then_hit_counts_only_what_is_not_revoked_and_agrees_with_is_revoked() {
        let p = crate::ratelimit::Policy::per_user_default();
        let a = check_then_hit_args("jti-1", &user(), 100, "rl:v1:user:x", &p);
        assert_eq!(a[0], CHECK_THEN_HIT_SCRIPT);
        assert_eq!(
            &a[1..5],
            ["3", &token_key("jti-1"), &user_key(&user()), "rl:v1:user:x"]
        );
        assert_eq!(&a[5..], ["100", "60000", "1"]);
        assert_eq!(
            parse_check_then_hit_reply(&[0, -1, 3, 5000], 100).unwrap(),
            CheckThenHit::Counted {
                count: 3,
                pttl_ms: 5000
            }
        );
        assert_eq!(
            parse_check_then_hit_reply(&[1, -1, -1, -1], 100).unwrap(),
            CheckThenHit::Revoked
        );
        assert_eq!(
            parse_check_then_hit_reply(&[0, 100, -1, -1], 100).unwrap(),
            CheckThenHit::Revoked
        );
        assert_eq!(
            parse_check_then_hit_reply(&[0, 99, 1, 60000], 100).unwrap(),
            CheckThenHit::Counted {
                count: 1,
                pttl_ms: 60000
            }
        );
        // The script and is_revoked disagreeing, or a reply of another shape: an error.
        assert!(parse_check_then_hit_reply(&[0, 100, 2, 100], 100).is_err());
        assert!(parse_check_then_hit_reply(&[1, -1, 4, 100], 100).is_err());
        assert!(parse_check_then_hit_reply(&[0, -1, -1, -1], 100).is_err());
        assert!(parse_check_then_hit_reply(&[0, -1, 3], 100).is_err());
    }

    #[test]
    fn a_user_mark_revokes_tokens_issued_up_to_it_and_not_after() {
        assert!(is_revoked(false, Some(100), 99));
        assert!(is_revoked(false, Some(100), 100));
        assert!(!is_revoked(false, Some(100), 101));
        assert!(!is_revoked(false, None, 0));
        assert!(is_revoked(true, None, 1_000));
    }

    #[test]
    fn keys_are_short_and_plain_whatever_the_jti() {
        for jti in ["", "a b\r\nc", &"x".repeat(10_000), "ünïcode"] {
            let k = token_key(jti);
            assert!(k.starts_with("rv:v1:j:"));
            assert_eq!(k.len(), "rv:v1:j:".len() + 32);
            assert!(k.bytes().all(|b| b.is_ascii_graphic()));
        }
        assert_eq!(token_key("a"), token_key("a"));
        assert_ne!(token_key("a"), token_key("b"));
        assert_eq!(user_key(&user()), format!("rv:v1:u:{}", user()));
    }

    #[test]
    fn a_token_entry_lives_as_long_as_the_token_plus_the_margin() {
        let args = token_set_args("j", 1_900, 1_000).unwrap();
        assert_eq!(args[1..], ["1", "EX", "1200"]);
        // Expired within the verifier's leeway: still revoked, for the margin.
        let args = token_set_args("j", 990, 1_000).unwrap();
        assert_eq!(args[3], "300");
        assert!(token_set_args("j", 0, 1_000).is_none());
    }

    #[test]
    fn replies_parse_and_odd_ones_are_refused() {
        assert_eq!(parse_check_reply(&[0, -1]).unwrap(), (false, None));
        assert_eq!(parse_check_reply(&[1, 42]).unwrap(), (true, Some(42)));
        assert!(parse_check_reply(&[2, 0]).is_err());
        assert!(parse_check_reply(&[0]).is_err());
        assert!(parse_check_reply(&[0, -2]).is_err());
    }

    #[test]
    fn mark_args_name_the_user_and_outlive_every_token() {
        let args = mark_user_args(&user(), 5_000, 900);
        assert_eq!(args[1], "1");
        assert_eq!(args[2], user_key(&user()));
        assert_eq!(args[3], "5000");
        assert_eq!(args[4], "1200");
    }

    proptest! {
        #[test]
        fn revoked_exactly_when_a_mark_covers_the_token(t in any::<bool>(), mark in proptest::option::of(0i64..1_000_000), iat in 0i64..1_000_000) {
            let expected = t || mark.is_some_and(|m| iat <= m);
            prop_assert_eq!(is_revoked(t, mark, iat), expected);
            // A later mark never un-revokes.
            if is_revoked(t, mark, iat) {
                prop_assert!(is_revoked(t, mark.map(|m| m + 1), iat));
            }
        }
    }
}
