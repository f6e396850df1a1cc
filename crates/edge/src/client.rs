//! The client's network address: which header to believe ([`ClientIpSource`], the
//! `client_ip_source` setting), reading it, and the subject a rate limit counts it as
//! ([`rate_limit_subject`]). Used for the login failure budgets and for audit rows; the shell
//! (`edge::app`) resolves it once per request, the auth middleware for its own audit rows.
//!
//! What can be believed depends on what stands in front of Spin:
//!
//! * `spin` (the default): the address Spin saw the connection come from. Spin puts it in
//!   `spin-client-addr`, but it does not remove a `spin-client-addr` the client sent: it keeps the
//!   client's headers and appends its own after them. So only the LAST value is Spin's; the first
//!   may be anything a client wrote.
//! * `true-client-ip`: behind an edge that sets `True-Client-IP` (Fermyon Cloud, Akamai) and
//!   overwrites a client-sent one; Spin's own address is the edge's there, the same for everyone.
//! * `x-forwarded-for:N`: behind `N` proxies that each append the address they were called from to
//!   `X-Forwarded-For` (an ingress: `N = 1`). Everything left of the `N`th entry from the right was
//!   written by whoever called the outermost proxy, i.e. possibly the client, so the `N`th entry from
//!   the right is the client; a shorter list means the request did not come through those proxies.
//!
//! The chosen source is the only one read: when it says nothing usable (header missing, value not
//! an address, too few `X-Forwarded-For` entries) the address is unknown (`None`) rather than taken
//! from a header a client could have written. Rate limits then count the request under one shared
//! `unknown` subject, so an unknown address never escapes a per-address budget.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use http::HeaderMap;

/// The header Spin sets on every inbound request: `ip:port` (`[v6]:port` for IPv6).
pub const SPIN_CLIENT_ADDR: &str = "spin-client-addr";
/// The header an edge such as Akamai (Fermyon Cloud) sets to the client's address.
pub const TRUE_CLIENT_IP: &str = "true-client-ip";
/// The header proxies append the address of their caller to.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The most `X-Forwarded-For` hops that can be trusted (a longer chain is a configuration error).
pub const MAX_TRUSTED_HOPS: u8 = 16;

/// The rate-limit subject of a request whose address is unknown.
pub const UNKNOWN_SUBJECT: &str = "unknown";

/// Where the client's address is read from (the `client_ip_source` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientIpSource {
    /// The last `spin-client-addr` value: the peer Spin accepted the connection from.
    #[default]
    Spin,
    /// The last `True-Client-IP` value, set by a trusted edge.
    TrueClientIp,
    /// The `trusted_hops`th `X-Forwarded-For` entry from the right (1..=[`MAX_TRUSTED_HOPS`]).
    XForwardedFor {
        /// Trusted proxies in front of Spin, each appending one entry.
        trusted_hops: u8,
    },
}

/// A `client_ip_source` value that is none of `spin`, `true-client-ip`, `x-forwarded-for:N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSource;

impl fmt::Display for BadSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client_ip_source must be spin, true-client-ip or x-forwarded-for:N (N = 1..={MAX_TRUSTED_HOPS})"
        )
    }
}

impl std::error::Error for BadSource {}

impl FromStr for ClientIpSource {
    type Err = BadSource;

    /// `spin`, `true-client-ip` or `x-forwarded-for:N`; any case, surrounding spaces ignored; an
    /// empty value is the default (`spin`).
    fn from_str(s: &str) -> Result<Self, BadSource> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "" | "spin" => return Ok(Self::Spin),
            "true-client-ip" => return Ok(Self::TrueClientIp),
            _ => {}
        }
        let hops = s.strip_prefix("x-forwarded-for:").ok_or(BadSource)?.trim();
        // Digits only: no sign, no spaces inside, no leading `+`.
        if hops.is_empty() || hops.len() > 2 || !hops.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadSource);
        }
        let trusted_hops: u8 = hops.parse().map_err(|_| BadSource)?;
        if !(1..=MAX_TRUSTED_HOPS).contains(&trusted_hops) {
            return Err(BadSource);
        }
        Ok(Self::XForwardedFor { trusted_hops })
    }
}

impl fmt::Display for ClientIpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spin => f.write_str("spin"),
            Self::TrueClientIp => f.write_str("true-client-ip"),
            Self::XForwardedFor { trusted_hops } => write!(f, "x-forwarded-for:{trusted_hops}"),
        }
    }
}

impl ClientIpSource {
    /// The client's IP (without a port) per this source, or `None` when the source says nothing
    /// usable. Never falls back to another header.
    pub fn client_ip(&self, headers: &HeaderMap) -> Option<IpAddr> {
        match self {
            Self::Spin => last_value(headers, SPIN_CLIENT_ADDR).and_then(parse_addr),
            Self::TrueClientIp => last_value(headers, TRUE_CLIENT_IP).and_then(parse_addr),
            Self::XForwardedFor { trusted_hops } => {
                forwarded_entry(headers, usize::from(*trusted_hops)).and_then(parse_addr)
            }
        }
    }
}

/// The last value of header `name` (header lines in the order received), as text.
fn last_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get_all(name).iter().next_back()?.to_str().ok()
}

/// The `n`th `X-Forwarded-For` entry from the right (1 = the rightmost) over all its header lines,
/// read as one comma-separated list. A line that is not text makes the whole list unusable.
fn forwarded_entry(headers: &HeaderMap, n: usize) -> Option<&str> {
    let mut seen = 0;
    for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        let line = line.to_str().ok()?;
        for entry in line.rsplit(',') {
            seen += 1;
            if seen == n {
                return Some(entry);
            }
        }
    }
    None
}

/// One address as hosts and proxies write it: `ip`, `ip:port`, `[v6]` or `[v6]:port`, with
/// surrounding spaces. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, an IPv4 client on a
/// dual-stack socket) is that IPv4 address. Anything else (`unknown`, obfuscated identifiers,
/// host names) is `None`.
pub fn parse_addr(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 64 {
        return None;
    }
    let ip = raw
        .parse::<IpAddr>()
        .ok()
        .or_else(|| raw.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            raw.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<Ipv6Addr>()
                .ok()
                .map(IpAddr::V6)
        })?;
    Some(canonical(ip))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// What a per-address rate limit counts `ip` as: an IPv4 address itself; an IPv6 address by its
/// /64 (`2001:db8:1:2::/64`: one subscriber or host usually holds a whole /64, so counting single
/// IPv6 addresses would give one client 2^64 budgets); [`UNKNOWN_SUBJECT`] when unknown. Always
/// short ASCII of `[0-9a-z.:/]`.
pub fn rate_limit_subject(ip: Option<IpAddr>) -> String {
    match ip.map(canonical) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            let prefix = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{prefix}/64")
        }
        None => UNKNOWN_SUBJECT.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(*n, HeaderValue::from_str(v).unwrap());
        }
        m
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn sources_parse_and_print() {
        for (text, source) in [
            ("spin", ClientIpSource::Spin),
            ("", ClientIpSource::Spin),
            (" Spin ", ClientIpSource::Spin),
            ("true-client-ip", ClientIpSource::TrueClientIp),
            ("True-Client-IP", ClientIpSource::TrueClientIp),
            (
                "x-forwarded-for:1",
                ClientIpSource::XForwardedFor { trusted_hops: 1 },
            ),
            (
                "X-Forwarded-For: 16",
                ClientIpSource::XForwardedFor { trusted_hops: 16 },
            ),
        ] {
            assert_eq!(text.parse::<ClientIpSource>(), Ok(source), "{text:?}");
            assert_eq!(source.to_string().parse::<ClientIpSource>(), Ok(source));
        }
        for bad in [
            "x-forwarded-for",
            "x-forwarded-for:",
            "x-forwarded-for:0",
            "x-forwarded-for:17",
            "x-forwarded-for:-1",
            "x-forwarded-for:+1",
            "x-forwarded-for:1 1",
            "x-forwarded-for:001",
            "forwarded",
            "x-real-ip",
            "spin,true-client-ip",
        ] {
            assert_eq!(bad.parse::<ClientIpSource>(), Err(BadSource), "{bad:?}");
        }
        assert_eq!(ClientIpSource::default(), ClientIpSource::Spin);
    }

    #[test]
    fn addresses_in_the_forms_hosts_and_proxies_write() {
        assert_eq!(parse_addr("127.0.0.5:54321"), ip("127.0.0.5"));
        assert_eq!(parse_addr("[::1]:8080"), ip("::1"));
        assert_eq!(parse_addr(" 10.1.2.3 "), ip("10.1.2.3"));
        assert_eq!(parse_addr("2001:db8::7"), ip("2001:db8::7"));
        assert_eq!(parse_addr("[2001:db8::7]"), ip("2001:db8::7"));
        assert_eq!(parse_addr("[::ffff:10.0.0.1]:1"), ip("10.0.0.1"));
        for bad in [
            "localhost:80",
            "unknown",
            "_hidden",
            "",
            "1.2.3",
            "[1.2.3.4]",
        ] {
            assert_eq!(parse_addr(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn spin_source_believes_only_the_value_spin_appended() {
        let s = ClientIpSource::Spin;
        // Spin keeps a client-sent copy and appends its own: the last one is Spin's.
        let forged = h(&[
            (SPIN_CLIENT_ADDR, "10.0.0.1:1"),
            (SPIN_CLIENT_ADDR, "192.0.2.7:40000"),
        ]);
        assert_eq!(s.client_ip(&forged), ip("192.0.2.7"));
        assert_eq!(
            s.client_ip(&h(&[(SPIN_CLIENT_ADDR, "192.0.2.7:1")])),
            ip("192.0.2.7")
        );
        // The last value unusable: unknown, never the earlier (client-written) one.
        let broken = h(&[(SPIN_CLIENT_ADDR, "10.0.0.1:1"), (SPIN_CLIENT_ADDR, "junk")]);
        assert_eq!(s.client_ip(&broken), None);
        // Other headers mean nothing to it.
        let others = h(&[(TRUE_CLIENT_IP, "10.0.0.1"), (X_FORWARDED_FOR, "10.0.0.2")]);
        assert_eq!(s.client_ip(&others), None);
        assert_eq!(s.client_ip(&HeaderMap::new()), None);
    }

    #[test]
    fn true_client_ip_source_reads_the_edge_header_only() {
        let s = ClientIpSource::TrueClientIp;
        let m = h(&[
            (SPIN_CLIENT_ADDR, "198.51.100.1:443"),
            (TRUE_CLIENT_IP, "203.0.113.9"),
        ]);
        assert_eq!(s.client_ip(&m), ip("203.0.113.9"));
        assert_eq!(
            s.client_ip(&h(&[(SPIN_CLIENT_ADDR, "198.51.100.1:443")])),
            None
        );
        assert_eq!(
            s.client_ip(&h(&[(TRUE_CLIENT_IP, "2001:db8::5")])),
            ip("2001:db8::5")
        );
    }

    #[test]
    fn x_forwarded_for_counts_trusted_hops_from_the_right() {
        let one = ClientIpSource::XForwardedFor { trusted_hops: 1 };
        let two = ClientIpSource::XForwardedFor { trusted_hops: 2 };
        // The client wrote "6.6.6.6"; the ingress appended the client's real address.
        let m = h(&[(X_FORWARDED_FOR, "6.6.6.6, 203.0.113.9")]);
        assert_eq!(one.client_ip(&m), ip("203.0.113.9"));
        assert_eq!(
            two.client_ip(&m),
            ip("6.6.6.6"),
            "what two hops would trust"
        );
        // Several header lines are one list, in order.
        let m = h(&[
            (X_FORWARDED_FOR, "6.6.6.6"),
            (X_FORWARDED_FOR, "203.0.113.9, 10.0.0.2"),
        ]);
        assert_eq!(two.client_ip(&m), ip("203.0.113.9"));
        assert_eq!(one.client_ip(&m), ip("10.0.0.2"));
        // Too short a list: the request did not come through the proxies: unknown.
        assert_eq!(two.client_ip(&h(&[(X_FORWARDED_FOR, "203.0.113.9")])), None);
        assert_eq!(one.client_ip(&HeaderMap::new()), None);
        // The trusted entry not an address: unknown, not the next one.
        assert_eq!(
            one.client_ip(&h(&[(X_FORWARDED_FOR, "203.0.113.9, unknown")])),
            None
        );
        assert_eq!(
            one.client_ip(&h(&[(X_FORWARDED_FOR, "[2001:db8::1]:443")])),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn rate_limit_subjects_group_ipv6_by_64() {
        assert_eq!(rate_limit_subject(ip("192.0.2.7")), "192.0.2.7");
        assert_eq!(
            rate_limit_subject(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            rate_limit_subject(ip("2001:db8:1:2::1")),
            rate_limit_subject(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            rate_limit_subject(ip("2001:db8:1:2::1")),
            rate_limit_subject(ip("2001:db8:1:3::1"))
        );
        assert_eq!(rate_limit_subject(ip("::ffff:10.0.0.1")), "10.0.0.1");
        assert_eq!(rate_limit_subject(ip("::1")), "::/64");
        assert_eq!(rate_limit_subject(None), UNKNOWN_SUBJECT);
    }

    proptest! {
        /// Whatever a client adds before Spin's value, the spin source answers Spin's value.
        #[test]
        fn client_sent_values_never_win(
            forged in proptest::collection::vec("[ -~]{0,40}", 0..4),
            real in any::<std::net::SocketAddr>(),
        ) {
            let mut m = HeaderMap::new();
            for f in &forged {
                m.append(SPIN_CLIENT_ADDR, HeaderValue::from_str(f).unwrap());
            }
            m.append(SPIN_CLIENT_ADDR, HeaderValue::from_str(&real.to_string()).unwrap());
            prop_assert_eq!(ClientIpSource::Spin.client_ip(&m), Some(canonical(real.ip())));
        }

        /// Whatever a client puts in X-Forwarded-For, `N` trusted proxies appending their callers
        /// make the answer the address the outermost one saw.
        #[test]
        fn forwarded_chain_yields_what_the_outermost_proxy_saw(
            forged in "[ -~&&[^,]]{0,30}(,[ -~&&[^,]]{0,30}){0,3}",
            client in any::<IpAddr>(),
            proxies in proptest::collection::vec(any::<std::net::Ipv4Addr>(), 0..4),
            split in any::<bool>(),
        ) {
            let mut entries = vec![client.to_string()];
            entries.extend(proxies.iter().map(|p| p.to_string()));
            let appended = entries.join(", ");
            let mut m = HeaderMap::new();
            if split {
                m.append(X_FORWARDED_FOR, HeaderValue::from_str(&forged).unwrap());
                m.append(X_FORWARDED_FOR, HeaderValue::from_str(&appended).unwrap());
            } else {
                let line = format!("{forged}, {appended}");
                m.append(X_FORWARDED_FOR, HeaderValue::from_str(&line).unwrap());
            }
            let hops = u8::try_from(proxies.len() + 1).unwrap();
            let s = ClientIpSource::XForwardedFor { trusted_hops: hops };
            prop_assert_eq!(s.client_ip(&m), Some(canonical(client)));
        }

        /// Subjects are short and safe in a Redis key, and one /64 is one subject.
        #[test]
        fn subjects_are_safe(a in any::<Ipv6Addr>(), low in any::<u64>()) {
            let s = rate_limit_subject(Some(IpAddr::V6(a)));
            prop_assert!(s.len() <= 45 && s.bytes().all(|b| b.is_ascii_hexdigit() || b".:/".contains(&b)), "{}", s);
            let seg = a.segments();
            let sibling = Ipv6Addr::new(
                seg[0], seg[1], seg[2], seg[3],
                (low >> 48) as u16, (low >> 32) as u16, (low >> 16) as u16, low as u16,
            );
            if a.to_ipv4_mapped().is_none() && sibling.to_ipv4_mapped().is_none() {
                prop_assert_eq!(s, rate_limit_subject(Some(IpAddr::V6(sibling))));
            }
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,80}") {
            let _ = s.parse::<ClientIpSource>();
            let _ = parse_addr(&s);
        }
    }
}
