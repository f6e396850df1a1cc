//! The client's network address as the Spin host reports it in `spin-client-addr` (the host
//! removes client-sent `spin-*` headers, so this one cannot be forged). Used for the per-address
//! login limit and for audit rows.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

/// The header Spin sets on every inbound request: `ip:port` (`[v6]:port` for IPv6).
pub const CLIENT_ADDR_HEADER: &str = "spin-client-addr";

/// The client's IP (without the port), or `None` when the host did not say or said nonsense.
pub fn client_ip(headers: &HeaderMap) -> Option<IpAddr> {
    let raw = headers.get(CLIENT_ADDR_HEADER)?.to_str().ok()?.trim();
    raw.parse::<SocketAddr>()
        .map(|s| s.ip())
        .or_else(|_| raw.parse::<IpAddr>())
        .ok()
        .map(|ip| match ip {
            // `::ffff:a.b.c.d` is an IPv4 client on a dual-stack socket: count it as that address.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(CLIENT_ADDR_HEADER, v.parse().unwrap());
        m
    }

    #[test]
    fn parses_host_formats() {
        assert_eq!(
            client_ip(&h("127.0.0.5:54321")).unwrap().to_string(),
            "127.0.0.5"
        );
        assert_eq!(client_ip(&h("[::1]:8080")).unwrap().to_string(), "::1");
        assert_eq!(client_ip(&h("10.1.2.3")).unwrap().to_string(), "10.1.2.3");
        assert_eq!(
            client_ip(&h("[::ffff:10.0.0.1]:1")).unwrap().to_string(),
            "10.0.0.1"
        );
        assert!(client_ip(&h("localhost:80")).is_none());
        assert!(client_ip(&HeaderMap::new()).is_none());
    }
}
