//! Serving a built single-page app (the attachment console) from assets compiled into a component.
//!
//! The page is one `index.html`, revalidated on every load (`Cache-Control: no-cache` + a strong
//! `ETag`, so a new deployment shows at once), and the scripts and styles it loads under `/assets/`,
//! whose file names carry a hash of their content: those never change under their name and are
//! cached for a year, `immutable`. Every answer carries `X-Content-Type-Options: nosniff`; the page
//! also a Content-Security-Policy that allows no inline script or style and connects only to its own
//! origin and the storage origins direct uploads go to.
//!
//! This crate decides; the component turns an [`Answer`] into an HTTP response.

use http::Method;
use problem::{Code, Problem};

/// One file of the built app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// The request path that names it (`/` for the index).
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// A strong entity tag, quoted (`"<hex>"`), of `body`.
    pub etag: &'static str,
}

/// The app: its page and its hashed assets.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    pub index: &'static Asset,
    pub assets: &'static [Asset],
}

/// What a request gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// `200` with the asset (no body for `HEAD`).
    Asset { asset: &'static Asset, head: bool },
    /// `304`: the client's copy (`If-None-Match`) is current.
    NotModified { asset: &'static Asset },
    /// A problem (`404 not_found`, `405 method_not_allowed` with `Allow`).
    Problem(Problem),
}

/// The methods every path here answers.
pub const ALLOW: &str = "GET, HEAD";

/// What `(method, path)` gets, given the request's `If-None-Match`.
pub fn answer(site: &Site, method: &Method, path: &str, if_none_match: Option<&str>) -> Answer {
    let asset = if path == "/" {
        Some(site.index)
    } else {
        site.assets.iter().find(|a| a.path == path)
    };
    let Some(asset) = asset else {
        return Answer::Problem(Problem::not_found());
    };
    let head = match *method {
        Method::GET => false,
        Method::HEAD => true,
        _ => return Answer::Problem(Problem::new(Code::MethodNotAllowed)),
    };
    if if_none_match.is_some_and(|v| etag_matches(v, asset.etag)) {
        return Answer::NotModified { asset };
    }
    Answer::Asset { asset, head }
}

/// `If-None-Match` (RFC 9110 13.1.2, weak comparison): `*`, or a list with this tag (`W/` ignored).
fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// The response headers of an asset (for `200` and `304` alike), the page's policy included.
pub fn headers(site: &Site, asset: &Asset, csp: &str) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("content-type", asset.content_type.to_owned()),
        ("etag", asset.etag.to_owned()),
        ("x-content-type-options", "nosniff".to_owned()),
    ];
    if std::ptr::eq(asset, site.index) {
        h.push(("cache-control", "no-cache".to_owned()));
        h.push(("content-security-policy", csp.to_owned()));
        h.push(("referrer-policy", "no-referrer".to_owned()));
        h.push(("x-frame-options", "DENY".to_owned()));
    } else {
        h.push((
            "cache-control",
            "public, max-age=31536000, immutable".to_owned(),
        ));
    }
    h
}

/// The page's Content-Security-Policy: scripts, styles and everything else from this origin only
/// (no inline code, no eval), requests to this origin and `connect_origins` (the storage that
/// direct-upload parts are sent to), no framing, no plugins, forms posting nowhere else.
pub fn content_security_policy(connect_origins: &[String]) -> String {
    let mut connect = String::from("'self'");
    for o in connect_origins {
        connect.push(' ');
        connect.push_str(o);
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src {connect}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// The origins of a list of URLs (comma or space separated): `scheme://host[:port]`, which is what a
/// CSP source may name. Anything else (no scheme or host, a character a policy cannot carry) is an
/// error naming it.
pub fn origins(urls: &str) -> Result<Vec<String>, String> {
    urls.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let uri: http::Uri = s.parse().map_err(|_| format!("not a URL: {s:?}"))?;
            match (uri.scheme_str(), uri.authority()) {
                (Some(scheme @ ("http" | "https")), Some(auth))
                    if !auth.as_str().contains('@')
                        && auth
                            .as_str()
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)) =>
                {
                    Ok(format!("{scheme}://{}", auth.as_str().to_ascii_lowercase()))
                }
                _ => Err(format!("not an http(s) origin: {s:?}")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    static INDEX: Asset = Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: b"<!doctype html>",
        etag: "\"abc\"",
    };
    static ASSETS: [Asset; 1] = [Asset {
        path: "/assets/index-Ab12.js",
        content_type: "text/javascript; charset=utf-8",
        body: b"console.log(1)",
        etag: "\"def\"",
    }];
    const SITE: Site = Site {
        index: &INDEX,
        assets: &ASSETS,
    };

    #[test]
    fn the_index_and_hashed_assets_are_found_and_nothing_else() {
        assert_eq!(
            answer(&SITE, &Method::GET, "/", None),
            Answer::Asset {
                asset: &INDEX,
                head: false
            }
        );
        assert_eq!(
            answer(&SITE, &Method::HEAD, "/assets/index-Ab12.js", None),
            Answer::Asset {
                asset: &ASSETS[0],
                head: true
            }
        );
        for path in [
            "/assets/",
            "/assets/index-Ab12.js/",
            "/index.html",
            "/assets/../index.html",
            "/nope",
            "/assets/index-ab12.js",
        ] {
            let Answer::Problem(p) = answer(&SITE, &Method::GET, path, None) else {
                panic!("{path} was found");
            };
            assert_eq!(p.code(), Code::NotFound, "{path}");
        }
    }

    #[test]
    fn other_methods_are_405() {
        let Answer::Problem(p) = answer(&SITE, &Method::POST, "/", None) else {
            panic!("POST answered");
        };
        assert_eq!((p.status(), p.code()), (405, Code::MethodNotAllowed));
    }

    #[test]
    fn a_current_copy_is_304_and_a_stale_one_is_served() {
        for inm in ["\"abc\"", "W/\"abc\"", "\"x\", \"abc\"", "*"] {
            assert_eq!(
                answer(&SITE, &Method::GET, "/", Some(inm)),
                Answer::NotModified { asset: &INDEX },
                "{inm}"
            );
        }
        assert_eq!(
            answer(&SITE, &Method::GET, "/", Some("\"old\"")),
            Answer::Asset {
                asset: &INDEX,
                head: false
            }
        );
    }

    #[test]
    fn the_index_is_revalidated_with_its_policy_and_assets_are_immutable() {
        let csp = content_security_policy(&[]);
        let get = |a: &Asset, name: &str| {
            headers(&SITE, a, &csp)
                .into_iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v)
        };
        assert_eq!(get(&INDEX, "cache-control").as_deref(), Some("no-cache"));
        assert_eq!(get(&INDEX, "etag").as_deref(), Some("\"abc\""));
        assert_eq!(get(&INDEX, "content-security-policy"), Some(csp.clone()));
        assert_eq!(
            get(&ASSETS[0], "cache-control").as_deref(),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(get(&ASSETS[0], "content-security-policy"), None);
        assert_eq!(
            get(&ASSETS[0], "x-content-type-options").as_deref(),
            Some("nosniff")
        );
    }

    #[test]
    fn the_policy_allows_no_inline_code_and_names_the_storage_origin() {
        let csp = content_security_policy(&origins("http://127.0.0.1:3900/").unwrap());
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(
            csp.contains("connect-src 'self' http://127.0.0.1:3900;"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    }

    #[test]
    fn origins_are_scheme_and_authority_only() {
        assert_eq!(
            origins("https://S3.Example.com/bucket?x=1, http://[::1]:9000").unwrap(),
            vec![
                "https://s3.example.com".to_owned(),
                "http://[::1]:9000".to_owned()
            ]
        );
        assert_eq!(origins("").unwrap(), Vec::<String>::new());
        for bad in [
            "s3.example.com",
            "ftp://x",
            "https://user@x",
            "https://x;y",
            "'self'",
        ] {
            assert!(origins(bad).is_err(), "{bad}");
        }
    }
}
