//! `allowed_outbound_hosts`: which outbound connections a component may open. Entries are
//! `scheme://host[:port]` with `*` wildcards for the scheme, the host, a leading `*.` subdomain, or the port,
//! and port ranges `a..b` (exclusive end, as Spin writes them). Without a port the scheme's default port is
//! meant. Everything not allowed is denied (an empty list denies everything).

use anyhow::{Result, bail};

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`: any subdomain, not the apex.
    Subdomain(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    Default,
    Range(u16, u16),
}

#[derive(Debug, Clone)]
struct Allowed {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(Vec<Allowed>);

pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "postgres" => Some(5432),
        "redis" => Some(6379),
        "mysql" => Some(3306),
        _ => None,
    }
}

impl AllowedHosts {
    pub fn parse(entries: &[String]) -> Result<Self> {
        entries
            .iter()
            .map(|e| parse_entry(e))
            .collect::<Result<_>>()
            .map(Self)
    }

    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let Some(port) = port.or_else(|| default_port(scheme)) else {
            return false;
        };
        self.0.iter().any(|a| {
            let scheme_ok = a.scheme.as_deref().is_none_or(|s| s == scheme);
            let host_ok = match &a.host {
                HostPattern::Any => true,
                HostPattern::Exact(h) => *h == host,
                HostPattern::Subdomain(d) => host.ends_with(&format!(".{d}")),
            };
            let port_ok = match a.port {
                PortPattern::Any => true,
                PortPattern::Default => default_port(scheme) == Some(port),
                PortPattern::Range(lo, hi) => (lo..hi).contains(&port) || (lo == hi && lo == port),
            };
            scheme_ok && host_ok && port_ok
        })
    }

    /// Checks a URL such as `http://127.0.0.1:3900/bucket/key` or `redis://host:6379`.
    pub fn allows_url(&self, url: &str) -> bool {
        let Some((scheme, rest)) = url.split_once("://") else {
            return false;
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let authority = authority.rsplit('@').next().unwrap_or("");
        match split_host_port(authority) {
            Some((host, port)) => self.allows(&scheme.to_ascii_lowercase(), host, port),
            None => false,
        }
    }
}

fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if authority.is_empty() {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((host, Some(p.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((authority, None)),
    }
}

fn parse_entry(entry: &str) -> Result<Allowed> {
    let Some((scheme, rest)) = entry.split_once("://") else {
        bail!("allowed_outbound_hosts entry {entry:?} needs a scheme, e.g. `https://example.com`");
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        bail!("allowed_outbound_hosts entry {entry:?} must not contain a path");
    }
    let scheme = match scheme {
        "*" => None,
        s if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-') =>
        {
            Some(s.to_ascii_lowercase())
        }
        _ => bail!("allowed_outbound_hosts entry {entry:?} has an invalid scheme"),
    };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| anyhow::anyhow!("bad IPv6 host in {entry:?}"))?;
        (h.to_string(), after.strip_prefix(':').map(str::to_string))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => (rest.to_string(), None),
        }
    };
    let host = match host.as_str() {
        "*" => HostPattern::Any,
        h if h.starts_with("*.") => HostPattern::Subdomain(h[2..].to_ascii_lowercase()),
        h if h.contains('*') => bail!(
            "allowed_outbound_hosts entry {entry:?}: `*` must be the whole host or a `*.` prefix"
        ),
        "" => bail!("allowed_outbound_hosts entry {entry:?} has no host"),
        h => HostPattern::Exact(h.to_ascii_lowercase()),
    };
    let port = match port.as_deref() {
        None => {
            if scheme.as_deref().and_then(default_port).is_none() {
                bail!(
                    "allowed_outbound_hosts entry {entry:?} needs a port: its scheme has no default"
                );
            }
            PortPattern::Default
        }
        Some("*") => PortPattern::Any,
        Some(p) => match p.split_once("..") {
            Some((lo, hi)) => PortPattern::Range(lo.parse()?, hi.parse()?),
            None => {
                let p: u16 = p
                    .parse()
                    .map_err(|_| anyhow::anyhow!("bad port in {entry:?}"))?;
                PortPattern::Range(p, p)
            }
        },
    };
    Ok(Allowed { scheme, host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn exact_default_port_and_wildcards() {
        let h = hosts(&[
            "https://api.example.com",
            "http://127.0.0.1:3900",
            "*://*.internal:*",
            "postgres://db:5432",
        ]);
        assert!(h.allows_url("https://api.example.com/x"));
        assert!(!h.allows_url("https://api.example.com:8443/x"));
        assert!(!h.allows_url("http://api.example.com/x"));
        assert!(h.allows_url("http://127.0.0.1:3900/bucket/key?x=1"));
        assert!(!h.allows_url("http://127.0.0.1:3901/"));
        assert!(h.allows_url("redis://cache.internal:1234"));
        assert!(!h.allows_url("redis://internal:1234"));
        assert!(h.allows_url("postgres://user:pw@db:5432/app"));
        assert!(!h.allows_url("postgres://db:5433/app"));
    }

    #[test]
    fn empty_denies_and_bad_entries_refused() {
        assert!(!AllowedHosts::default().allows_url("http://localhost/"));
        for bad in [
            "example.com",
            "https://ex*ample.com",
            "custom://host",
            "https://h/path",
            "https://",
        ] {
            assert!(AllowedHosts::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
        let h = hosts(&["http://localhost:8000..8002"]);
        assert!(h.allows_url("http://localhost:8001/"));
        assert!(!h.allows_url("http://localhost:8002/"));
    }
}
