//! The client address headers (`edge::client`): the `client_ip_source` setting, `spin-client-addr`,
//! `True-Client-IP` and `X-Forwarded-For` as sent by anyone. On any input: never panics; the `spin`
//! source answers from the last `spin-client-addr` only (whatever came before it); an answer is always
//! one of the addresses written in the source's header; a rate-limit subject is short and key-safe.
#![no_main]

use edge::client::{
    self, ClientIpSource, SPIN_CLIENT_ADDR, TRUE_CLIENT_IP, X_FORWARDED_FOR, parse_addr,
};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 3] = [SPIN_CLIENT_ADDR, TRUE_CLIENT_IP, X_FORWARDED_FOR];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // The setting itself, parsed from the first line when the selector says so.
    let mut lines = rest.split(|&b| b == b'\n');
    let source = if selector & 0x80 != 0 {
        let Ok(text) = std::str::from_utf8(lines.next().unwrap_or_default()) else {
            return;
        };
        match text.parse::<ClientIpSource>() {
            Ok(s) => {
                assert_eq!(s.to_string().parse::<ClientIpSource>(), Ok(s), "{text:?}");
                s
            }
            Err(_) => return,
        }
    } else {
        match selector % 3 {
            0 => ClientIpSource::Spin,
            1 => ClientIpSource::TrueClientIp,
            _ => ClientIpSource::XForwardedFor {
                trusted_hops: 1 + (selector >> 2) % 4,
            },
        }
    };
    // Header lines: the first byte picks the name, the rest is the value.
    let mut headers = HeaderMap::new();
    for line in lines.take(16) {
        let Some((&which, value)) = line.split_first() else {
            continue;
        };
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(NAMES[usize::from(which) % 3], v);
        }
    }
    let found = source.client_ip(&headers);
    let subject = client::rate_limit_subject(found);
    assert!(
        subject.len() <= 45
            && subject
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:/".contains(&b)),
        "{subject:?}"
    );
    let Some(ip) = found else {
        return;
    };
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    };
    match source {
        ClientIpSource::Spin => {
            let last = values(SPIN_CLIENT_ADDR)
                .pop()
                .expect("an answer has a header");
            assert_eq!(
                parse_addr(&last),
                Some(ip),
                "not the last value: {headers:?}"
            );
        }
        ClientIpSource::TrueClientIp => {
            let last = values(TRUE_CLIENT_IP)
                .pop()
                .expect("an answer has a header");
            assert_eq!(parse_addr(&last), Some(ip));
        }
        ClientIpSource::XForwardedFor { .. } => {
            let entries: Vec<String> = values(X_FORWARDED_FOR)
                .iter()
                .flat_map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>())
                .collect();
            assert!(
                entries.iter().any(|e| parse_addr(e) == Some(ip)),
                "{ip} is in none of {entries:?}"
            );
        }
    }
});
