//! CORS for the configured browser origins only.
//!
//! Configuration string: origins separated by commas and/or whitespace, each exactly
//! `http(s)://host[:port]` (a trailing `/` is dropped), e.g.
//! `"https://mail.example.com, http://localhost:5173"`. `*` and `null` are refused: the API takes
//! bearer tokens from scripts, so only known front ends may call it. An empty string allows no
//! cross-origin calls. No `Access-Control-Allow-Credentials`: no cookies are used.
//!
//! The middleware answers a preflight ([`CorsPolicy::preflight`]) itself and adds
//! [`CorsPolicy::response_headers`] to every other response, including 401/403/429 problems, so a
//! browser lets the page read them.

use problem::{Code, Problem};

use crate::Error;

/// Default `Access-Control-Max-Age`, seconds.
pub const DEFAULT_MAX_AGE_SECS: u64 = 600;
/// Methods a cross-origin caller may use (the API's methods).
pub const ALLOWED_METHODS: &[&str] = &["GET", "HEAD", "POST", "PATCH", "DELETE"];
/// Request headers a cross-origin caller may send (lower case).
pub const ALLOWED_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "content-disposition",
    "repr-digest",
    "x-request-id",
    "if-none-match",
    "if-match",
    "range",
    // tus 1.0.0 (resumable uploads): what tus-js-client and Uppy send.
    "tus-resumable",
    "upload-offset",
    "upload-length",
    "upload-metadata",
    "upload-checksum",
    "upload-defer-length",
    "upload-concat",
    "x-http-method-override",
    // CORS-safelisted anyway; listed so echoing them in a preflight is harmless.
    "accept",
    "accept-language",
    "content-language",
];
/// Response headers a page may read beyond the CORS-safelisted ones.
pub const EXPOSED_HEADERS: &[&str] = &[
    "ETag",
    "Content-Disposition",
    "Content-Range",
    "Accept-Ranges",
    "RateLimit",
    "RateLimit-Policy",
    "Retry-After",
    "WWW-Authenticate",
    "x-request-id",
    // tus: the created upload's URL, where it stands, and discovery.
    "Location",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Expires",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Checksum-Algorithm",
];
/// `Vary` of a preflight answer.
pub const PREFLIGHT_VARY: &str =
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";
/// Most origins in a configuration.
pub const MAX_ORIGINS: usize = 64;

/// The result of looking at an `OPTIONS` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preflight {
    /// Not a CORS preflight (no `Origin` or no `Access-Control-Request-Method`): route it normally.
    NotPreflight,
    /// Answer `204` with these headers.
    Allowed(Vec<(&'static str, String)>),
    /// Answer with [`Preflight::problem`] (`403 origin_not_allowed`) and these headers (only
    /// `Vary`: no `Access-Control-Allow-*`, so the browser blocks the call).
    Denied(Vec<(&'static str, String)>),
}

impl Preflight {
    /// The problem for a denied preflight.
    pub fn problem() -> Problem {
        Problem::new(Code::OriginNotAllowed)
    }
}

/// The configured origins and preflight cache time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    origins: Vec<String>,
    max_age_secs: u64,
}

fn normalize_origin(raw: &str) -> Option<String> {
    let s = raw.strip_suffix('/').unwrap_or(raw).to_ascii_lowercase();
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))?;
    let (host_ok, port) = if let Some(v6) = rest.strip_prefix('[') {
        // `[v6]` or `[v6]:port`
        let (addr, after) = v6.split_once(']')?;
        let port = if after.is_empty() {
            None
        } else {
            Some(after.strip_prefix(':')?)
        };
        let ok = !addr.is_empty() && addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        (ok, port)
    } else {
        let (host, port) = match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        let ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        (ok, port)
    };
    let port_ok = port.is_none_or(|p| {
        p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok_and(|n| n > 0)
    });
    (host_ok && port_ok).then_some(s)
}

impl CorsPolicy {
    /// Parses the configuration string (see the module docs).
    pub fn from_config(list: &str) -> Result<Self, Error> {
        let mut origins = Vec::new();
        for raw in list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let o = normalize_origin(raw).ok_or_else(|| {
                Error::Config(format!(
                    "CORS origin {raw:?} is not of the form http(s)://host[:port]"
                ))
            })?;
            if !origins.contains(&o) {
                origins.push(o);
            }
        }
        if origins.len() > MAX_ORIGINS {
            return Err(Error::Config(format!("at most {MAX_ORIGINS} CORS origins")));
        }
        Ok(Self {
            origins,
            max_age_secs: DEFAULT_MAX_AGE_SECS,
        })
    }

    /// Sets the preflight cache time (capped at 86400 s).
    #[must_use]
    pub fn with_max_age(mut self, secs: u64) -> Self {
        self.max_age_secs = secs.min(86_400);
        self
    }

    /// The normalized origins.
    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// Whether a request's `Origin` value is configured (exact match, ASCII case-insensitive).
    pub fn is_allowed_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// Decides an `OPTIONS` request from its `Origin`, `Access-Control-Request-Method` and
    /// `Access-Control-Request-Headers` values.
    pub fn preflight(
        &self,
        origin: Option<&str>,
        request_method: Option<&str>,
        request_headers: Option<&str>,
    ) -> Preflight {
        let (Some(origin), Some(method)) = (origin, request_method) else {
            return Preflight::NotPreflight;
        };
        let vary = ("Vary", PREFLIGHT_VARY.to_owned());
        let method = method.trim();
        let headers: Vec<String> = request_headers
            .unwrap_or("")
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        let allowed = self.is_allowed_origin(origin)
            && ALLOWED_METHODS.contains(&method)
            && headers
                .iter()
                .all(|h| ALLOWED_HEADERS.contains(&h.as_str()));
        if !allowed {
            return Preflight::Denied(vec![vary]);
        }
        let mut out = vec![
            ("Access-Control-Allow-Origin", origin.to_owned()),
            ("Access-Control-Allow-Methods", ALLOWED_METHODS.join(", ")),
        ];
        if !headers.is_empty() {
            out.push(("Access-Control-Allow-Headers", headers.join(", ")));
        }
        out.push(("Access-Control-Max-Age", self.max_age_secs.to_string()));
        out.push(vary);
        Preflight::Allowed(out)
    }

    /// Headers for any non-preflight response: always `Vary: Origin` (the answer depends on it,
    /// caches must know); for a configured origin also `Access-Control-Allow-Origin` and
    /// `Access-Control-Expose-Headers`.
    pub fn response_headers(&self, origin: Option<&str>) -> Vec<(&'static str, String)> {
        let mut out = vec![("Vary", "Origin".to_owned())];
        if let Some(origin) = origin.filter(|o| self.is_allowed_origin(o)) {
            out.push(("Access-Control-Allow-Origin", origin.to_owned()));
            out.push(("Access-Control-Expose-Headers", EXPOSED_HEADERS.join(", ")));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CorsPolicy {
        CorsPolicy::from_config(
            "https://mail.example.com, http://localhost:5173/\nhttp://[::1]:8080",
        )
        .unwrap()
    }

    fn get<'a>(h: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        h.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_tus_client_may_patch_with_its_headers() {
        let p = policy();
        let Preflight::Allowed(h) = p.preflight(
            Some("https://mail.example.com"),
            Some("PATCH"),
            Some("authorization, tus-resumable, upload-offset, upload-checksum, content-type"),
        ) else {
            panic!("a tus PATCH preflight is allowed");
        };
        assert!(
            get(&h, "Access-Control-Allow-Methods")
                .unwrap()
                .contains("PATCH")
        );
        let creation = p.preflight(
            Some("https://mail.example.com"),
            Some("POST"),
            Some("authorization, tus-resumable, upload-length, upload-metadata"),
        );
        assert!(matches!(creation, Preflight::Allowed(_)));
    }

    #[test]
    fn config_parsing() {
        assert_eq!(
            policy().origins(),
            [
                "https://mail.example.com",
                "http://localhost:5173",
                "http://[::1]:8080"
            ]
        );
        assert!(CorsPolicy::from_config("").unwrap().origins().is_empty());
        assert_eq!(
            CorsPolicy::from_config("HTTPS://Mail.Example.com")
                .unwrap()
                .origins(),
            ["https://mail.example.com"]
        );
        for bad in [
            "*",
            "null",
            "mail.example.com",
            "ftp://x.com",
            "https://x.com/path",
            "https://",
            "https://x.com:0",
            "https://x.com:99999",
            "https://a b.com",
            "https://x.com:port",
            "https://user@x.com",
        ] {
            assert!(CorsPolicy::from_config(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn preflight_from_allowed_origin() {
        let p = policy();
        let Preflight::Allowed(h) = p.preflight(
            Some("https://mail.example.com"),
            Some("POST"),
            Some("Authorization, Content-Type, x-request-id"),
        ) else {
            panic!("expected allowed");
        };
        assert_eq!(
            get(&h, "Access-Control-Allow-Origin"),
            Some("https://mail.example.com")
        );
        assert_eq!(
            get(&h, "Access-Control-Allow-Methods"),
            Some("GET, HEAD, POST, PATCH, DELETE")
        );
        assert_eq!(
            get(&h, "Access-Control-Allow-Headers"),
            Some("authorization, content-type, x-request-id")
        );
        assert_eq!(get(&h, "Access-Control-Max-Age"), Some("600"));
        assert!(get(&h, "Vary").unwrap().contains("Origin"));
        assert!(get(&h, "Access-Control-Allow-Credentials").is_none());
    }

    #[test]
    fn preflight_denials() {
        let p = policy();
        for (origin, method, headers) in [
            ("https://evil.example.com", "GET", None),
            ("https://mail.example.com.evil.com", "GET", None),
            ("http://mail.example.com", "GET", None),
            ("null", "GET", None),
            ("https://mail.example.com", "PUT", None),
            ("https://mail.example.com", "get", None),
            ("https://mail.example.com", "GET", Some("x-auth-context")),
            (
                "https://mail.example.com",
                "GET",
                Some("authorization, cookie"),
            ),
        ] {
            match p.preflight(Some(origin), Some(method), headers) {
                Preflight::Denied(h) => {
                    assert!(get(&h, "Access-Control-Allow-Origin").is_none());
                    assert!(get(&h, "Vary").is_some());
                }
                other => panic!("{origin} {method} {headers:?}: {other:?}"),
            }
        }
        assert_eq!(Preflight::problem().status(), 403);
        assert_eq!(
            p.preflight(None, Some("GET"), None),
            Preflight::NotPreflight
        );
        assert_eq!(
            p.preflight(Some("https://mail.example.com"), None, None),
            Preflight::NotPreflight
        );
    }

    #[test]
    fn response_headers() {
        let p = policy();
        let h = p.response_headers(Some("https://mail.example.com"));
        assert_eq!(get(&h, "Vary"), Some("Origin"));
        assert_eq!(
            get(&h, "Access-Control-Allow-Origin"),
            Some("https://mail.example.com")
        );
        let exposed = get(&h, "Access-Control-Expose-Headers").unwrap();
        for name in [
            "ETag",
            "Content-Disposition",
            "RateLimit",
            "RateLimit-Policy",
            "Retry-After",
            "x-request-id",
            // tus-js-client reads these from the creation and PATCH/HEAD answers.
            "Location",
            "Upload-Offset",
            "Upload-Length",
            "Tus-Resumable",
        ] {
            assert!(exposed.split(", ").any(|e| e == name), "{name}");
        }
        let h = p.response_headers(Some("https://evil.example.com"));
        assert_eq!(h, vec![("Vary", "Origin".to_owned())]);
        assert_eq!(
            p.response_headers(None),
            vec![("Vary", "Origin".to_owned())]
        );
    }
}
