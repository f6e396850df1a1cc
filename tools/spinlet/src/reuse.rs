//! Instance reuse, as Spin 4 does it for WASI P3 HTTP components: an instance serves up to
//! `max_instance_reuse_count` requests in all, at most `max_instance_concurrent_reuse_count` at a time,
//! and is dropped once idle for `idle_instance_timeout`. Spin's defaults are 128, 16 and 1 s; `1`, `1`
//! gives a fresh instance per request (WASI P2 semantics). A component can refuse concurrent requests
//! for a while with the component model's backpressure (`backpressure_inc`/`_dec`): the runner then
//! sends new requests to another instance.
//!
//! Each setting is a value or a half-open range `a..b`; with a range, every new instance draws its own
//! value, so one run exercises components both fresh and reused (what Spin's docs suggest for testing).

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

/// A setting: one value, or a half-open range `start..end` drawn from per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting<T> {
    Value(T),
    Range(T, T),
}

impl<T> Setting<T>
where
    T: Copy + PartialOrd + rand::distr::uniform::SampleUniform,
{
    /// The value for a new instance.
    pub fn draw(&self) -> T {
        match *self {
            Self::Value(v) => v,
            Self::Range(start, end) => rand::random_range(start..end),
        }
    }
}

fn parse_setting<T: FromStr + PartialOrd>(s: &str) -> Result<Setting<T>, String>
where
    T::Err: Display,
{
    let value = |v: &str| {
        v.trim()
            .parse::<T>()
            .map_err(|e| format!("`{s}`: {e} (expected a value or a range `a..b`)"))
    };
    match s.split_once("..") {
        Some((start, end)) => {
            let (start, end) = (value(start)?, value(end)?);
            if start < end {
                Ok(Setting::Range(start, end))
            } else {
                Err(format!("`{s}`: empty range (the end is excluded)"))
            }
        }
        None => Ok(Setting::Value(value(s)?)),
    }
}

/// `N` or `a..b`, each at least 1.
pub fn parse_count(s: &str) -> Result<Setting<usize>, String> {
    let setting = parse_setting::<usize>(s)?;
    match setting {
        Setting::Value(0) | Setting::Range(0, _) => Err(format!("`{s}`: must be at least 1")),
        ok => Ok(ok),
    }
}

/// A duration (`250ms`, `2s`, `1500us`, `10ns`; a bare number is seconds) or a range of them.
pub fn parse_duration(s: &str) -> Result<Setting<Duration>, String> {
    parse_setting::<Dur>(s).map(|setting| match setting {
        Setting::Value(Dur(d)) => Setting::Value(d),
        Setting::Range(Dur(a), Dur(b)) => Setting::Range(a, b),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
struct Dur(Duration);

impl FromStr for Dur {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let number = |n: &str| {
            n.parse::<u64>()
                .map_err(|_| "expected a number with `s`, `ms`, `us` or `ns`".to_string())
        };
        let d = if let Some(n) = s.strip_suffix("ms") {
            Duration::from_millis(number(n)?)
        } else if let Some(n) = s.strip_suffix("us").or_else(|| s.strip_suffix("μs")) {
            Duration::from_micros(number(n)?)
        } else if let Some(n) = s.strip_suffix("ns") {
            Duration::from_nanos(number(n)?)
        } else {
            Duration::from_secs(number(s.strip_suffix('s').unwrap_or(s))?)
        };
        Ok(Self(d))
    }
}

/// How instances of every route are reused (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct ReusePolicy {
    pub max_requests: Setting<usize>,
    pub max_concurrent: Setting<usize>,
    pub idle_timeout: Setting<Duration>,
}

impl Default for ReusePolicy {
    /// Spin 4.1's defaults for WASI P3 components.
    fn default() -> Self {
        Self {
            max_requests: Setting::Value(128),
            max_concurrent: Setting::Value(16),
            idle_timeout: Setting::Value(Duration::from_secs(1)),
        }
    }
}

/// What one instance drew from a [`ReusePolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceReuse {
    pub max_requests: usize,
    pub max_concurrent: usize,
    pub idle_timeout: Duration,
}

/// Whether an instance takes another request (mirrors wasmtime-wasi-http's `ShouldAccept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    Yes,
    /// Not now: it is busy with as many requests as it may run at once.
    NotNow,
    /// Never again: it has served its share; it ends once its requests are done.
    Never,
}

impl ReusePolicy {
    pub fn draw(&self) -> InstanceReuse {
        InstanceReuse {
            max_requests: self.max_requests.draw(),
            max_concurrent: self.max_concurrent.draw(),
            idle_timeout: self.idle_timeout.draw(),
        }
    }
}

impl InstanceReuse {
    /// `running` requests now, `served` accepted since the instance started.
    pub fn accept(&self, running: usize, served: usize) -> Accept {
        if served >= self.max_requests {
            Accept::Never
        } else if running >= self.max_concurrent {
            Accept::NotNow
        } else {
            Accept::Yes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_values_or_half_open_ranges_of_at_least_one() {
        assert_eq!(parse_count("128"), Ok(Setting::Value(128)));
        assert_eq!(parse_count("1..8"), Ok(Setting::Range(1, 8)));
        assert!(parse_count("0").is_err());
        assert!(parse_count("0..4").is_err());
        assert!(parse_count("4..4").is_err(), "empty: the end is excluded");
        assert!(parse_count("8..2").is_err());
        assert!(parse_count("x").is_err());
        assert!(parse_count("1..").is_err());
    }

    #[test]
    fn durations_take_spin_suffixes() {
        assert_eq!(
            parse_duration("1"),
            Ok(Setting::Value(Duration::from_secs(1)))
        );
        assert_eq!(
            parse_duration("2s"),
            Ok(Setting::Value(Duration::from_secs(2)))
        );
        assert_eq!(
            parse_duration("250ms"),
            Ok(Setting::Value(Duration::from_millis(250)))
        );
        assert_eq!(
            parse_duration("15us"),
            Ok(Setting::Value(Duration::from_micros(15)))
        );
        assert_eq!(
            parse_duration("15μs"),
            Ok(Setting::Value(Duration::from_micros(15)))
        );
        assert_eq!(
            parse_duration("7ns"),
            Ok(Setting::Value(Duration::from_nanos(7)))
        );
        assert_eq!(
            parse_duration("100ms..2s"),
            Ok(Setting::Range(
                Duration::from_millis(100),
                Duration::from_secs(2)
            ))
        );
        assert!(parse_duration("2s..100ms").is_err());
        assert!(parse_duration("1m").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn a_range_is_drawn_per_instance_within_its_bounds() {
        let policy = ReusePolicy {
            max_requests: Setting::Range(1, 4),
            max_concurrent: Setting::Value(2),
            idle_timeout: Setting::Range(Duration::from_millis(10), Duration::from_millis(20)),
        };
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let r = policy.draw();
            assert!((1..4).contains(&r.max_requests));
            assert_eq!(r.max_concurrent, 2);
            assert!(r.idle_timeout >= Duration::from_millis(10));
            assert!(r.idle_timeout < Duration::from_millis(20));
            seen.insert(r.max_requests);
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    #[test]
    fn an_instance_accepts_until_its_share_is_served() {
        let r = InstanceReuse {
            max_requests: 3,
            max_concurrent: 2,
            idle_timeout: Duration::from_secs(1),
        };
        assert_eq!(r.accept(0, 0), Accept::Yes);
        assert_eq!(r.accept(1, 1), Accept::Yes);
        assert_eq!(r.accept(2, 2), Accept::NotNow, "two at once at most");
        assert_eq!(r.accept(1, 3), Accept::Never, "served three");
        assert_eq!(r.accept(0, 3), Accept::Never);
        let fresh = InstanceReuse {
            max_requests: 1,
            max_concurrent: 1,
            idle_timeout: Duration::from_secs(1),
        };
        assert_eq!(fresh.accept(0, 0), Accept::Yes);
        assert_eq!(
            fresh.accept(0, 1),
            Accept::Never,
            "a fresh instance per request"
        );
    }

    #[test]
    fn spin_defaults() {
        let d = ReusePolicy::default().draw();
        assert_eq!(
            (d.max_requests, d.max_concurrent, d.idle_timeout),
            (128, 16, Duration::from_secs(1))
        );
    }
}
