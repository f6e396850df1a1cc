//! Concurrency slots: at most `cap` requests of one kind in flight per user, across every instance
//! of every component (a Redis sorted set per user, one `EVAL` to take a slot, one `ZREM` to give
//! it back).
//!
//! A fixed-window rate limit counts requests that start; it cannot stop one user from holding forty
//! slow uploads open at once, each within its own limits, and with them the instance's upload memory
//! and pooled connections. A slot is held for as long as the request runs.
//!
//! Each holder is a member named by a random id, scored with the time it took the slot. A request
//! that dies without giving its slot back (an instance killed mid-upload) cannot hold it forever:
//! members older than `stale_ms` (the longest such a request may run) are dropped before counting,
//! and the whole set expires `stale_ms` after the last slot was taken.

use crate::{Error, UserId};

/// Prefix of every slot key (versioned like the rate-limit keys).
pub const KEY_PREFIX: &str = "cs:v1";

/// `KEYS[1]` = the user's set; `ARGV[1]` = member, `ARGV[2]` = now (ms), `ARGV[3]` = stale after
/// (ms), `ARGV[4]` = cap. Drops stale members, then takes a slot if fewer than `cap` are held.
/// Replies `{taken (0|1), held after the call}`.
pub const TAKE_SCRIPT: &str = "\
local now = tonumber(ARGV[2])
local stale = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - stale)
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[4]) then return {0, n} end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], stale)
return {1, n + 1}";

/// How many requests of one kind a user may have in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotPolicy {
    name: String,
    cap: u32,
    stale_ms: u64,
}

impl SlotPolicy {
    /// `cap` (1..=1000) slots named `name` (1..=32 chars of `[a-z0-9_-]`, it is part of the key), a
    /// slot not given back within `stale_secs` (1..=86400) counted as given back.
    pub fn new(name: &str, cap: u32, stale_secs: u64) -> Result<Self, Error> {
        let name_ok = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(Error::Config(format!(
                "slot name {name:?} is not [a-z0-9_-]{{1,32}}"
            )));
        }
        if !(1..=1000).contains(&cap) {
            return Err(Error::Config(format!("{name}: the cap must be 1..=1000")));
        }
        if !(1..=86_400).contains(&stale_secs) {
            return Err(Error::Config(format!(
                "{name}: stale after 1..=86400 seconds"
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            cap,
            stale_ms: stale_secs * 1000,
        })
    }

    /// A cap read from configuration (`value`, a number), with `stale_secs` as [`SlotPolicy::new`].
    pub fn parse(name: &str, value: &str, stale_secs: u64) -> Result<Self, Error> {
        let cap = value
            .trim()
            .parse::<u32>()
            .map_err(|_| Error::Config(format!("{name} must be a number of requests 1..=1000")))?;
        Self::new(name, cap, stale_secs)
    }

    /// The number of slots.
    pub fn cap(&self) -> u32 {
        self.cap
    }

    /// The Redis key of `user`'s slots: `cs:v1:<name>:<user>`.
    pub fn key(&self, user: &UserId) -> String {
        format!("{KEY_PREFIX}:{}:{user}", self.name)
    }

    /// Arguments of `EVAL` to take a slot for `member` at `now_ms`.
    pub fn take_args(&self, user: &UserId, member: &str, now_ms: i64) -> Vec<String> {
        vec![
            TAKE_SCRIPT.to_owned(),
            "1".to_owned(),
            self.key(user),
            member.to_owned(),
            now_ms.to_string(),
            self.stale_ms.to_string(),
            self.cap.to_string(),
        ]
    }

    /// Arguments of `ZREM` to give `member`'s slot back.
    pub fn give_back_args(&self, user: &UserId, member: &str) -> Vec<String> {
        vec![self.key(user), member.to_owned()]
    }
}

/// The answer of [`TAKE_SCRIPT`]: `Ok(held)` when the slot was taken, `Err(held)` when all were.
pub fn parse_take_reply(values: &[i64]) -> Result<Result<u32, u32>, Error> {
    let held = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
    match values {
        [1, n] => Ok(Ok(held(*n))),
        [0, n] => Ok(Err(held(*n))),
        _ => Err(Error::Config("unexpected slot script reply".into())),
    }
}

/// A fresh member id for one request's slot (128 random bits, hex).
pub fn new_member() -> Result<String, Error> {
    let mut b = [0u8; 16];
    crate::random_bytes(&mut b)?;
    Ok(hex::encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn user() -> UserId {
        UserId::from(Uuid::from_u128(0x1234))
    }

    #[test]
    fn policies_check_their_configuration() {
        assert!(SlotPolicy::new("uploads", 4, 900).is_ok());
        assert!(SlotPolicy::new("", 4, 900).is_err());
        assert!(SlotPolicy::new("Up loads", 4, 900).is_err());
        assert!(SlotPolicy::new("uploads", 0, 900).is_err());
        assert!(SlotPolicy::new("uploads", 1001, 900).is_err());
        assert!(SlotPolicy::new("uploads", 4, 0).is_err());
        assert_eq!(SlotPolicy::parse("uploads", " 8 ", 60).unwrap().cap(), 8);
        assert!(SlotPolicy::parse("uploads", "eight", 60).is_err());
        assert!(SlotPolicy::parse("uploads", "-1", 60).is_err());
    }

    #[test]
    fn arguments_name_the_users_set_and_the_policy() {
        let p = SlotPolicy::new("uploads", 3, 900).unwrap();
        let key = format!("cs:v1:uploads:{}", user());
        assert_eq!(p.key(&user()), key);
        assert_eq!(
            p.take_args(&user(), "m1", 1_000)[1..],
            ["1", key.as_str(), "m1", "1000", "900000", "3"].map(str::to_owned)
        );
        assert_eq!(p.give_back_args(&user(), "m1"), [key, "m1".to_owned()]);
    }

    #[test]
    fn replies_are_read_strictly() {
        assert_eq!(parse_take_reply(&[1, 3]).unwrap(), Ok(3));
        assert_eq!(parse_take_reply(&[0, 4]).unwrap(), Err(4));
        assert!(parse_take_reply(&[2, 4]).is_err());
        assert!(parse_take_reply(&[1]).is_err());
    }

    #[test]
    fn members_are_fresh() {
        let (a, b) = (new_member().unwrap(), new_member().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
    }
}
