//! HTTP route matching with Spin's semantics: exact paths, `:name` segments, a trailing `/...` wildcard, and
//! precedence by specificity (compared segment by segment: a literal beats a `:param`, which beats the
//! wildcard; a longer literal prefix beats a shorter one). Duplicate routes: the later one wins, as in Spin.

use anyhow::{Result, bail};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Debug, Clone)]
pub struct Route {
    /// The route with the application base applied, as Spin reports it in `spin-matched-route`.
    pub based: String,
    /// The route exactly as written in the manifest (`spin-raw-component-route`).
    pub raw: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

#[derive(Debug)]
pub struct RouteMatch<'a, T> {
    pub route: &'a Route,
    pub target: &'a T,
    pub params: Vec<(String, String)>,
    /// The part of the path the trailing wildcard consumed (`spin-path-info`), e.g. `/a/b`, or empty.
    pub path_info: String,
}

#[derive(Debug)]
pub struct Router<T> {
    routes: Vec<(Route, T)>,
}

impl Route {
    pub fn parse(base: &str, raw: &str) -> Result<Self> {
        if !raw.starts_with('/') {
            bail!("route {raw:?} must start with `/`");
        }
        let base = base.trim_end_matches('/');
        let based = format!("{base}{raw}");
        let (body, wildcard) = match based.strip_suffix("/...") {
            Some(prefix) => (prefix.to_string(), true),
            None if based == "/..." => (String::new(), true),
            None => (based.clone(), false),
        };
        if body.contains("...") {
            bail!("route {raw:?}: `...` is only allowed as the last segment");
        }
        let mut segments = Vec::new();
        for seg in body.split('/').filter(|s| !s.is_empty()) {
            match seg.strip_prefix(':') {
                Some("") => bail!("route {raw:?}: a `:` segment needs a name"),
                Some(name) => segments.push(Segment::Param(name.to_string())),
                None => segments.push(Segment::Literal(seg.to_string())),
            }
        }
        Ok(Self {
            based,
            raw: raw.to_string(),
            segments,
            wildcard,
        })
    }

    /// Spin's `spin-component-route`: the raw route without its trailing wildcard.
    pub fn component_route(&self) -> &str {
        self.raw.strip_suffix("/...").unwrap_or(&self.raw)
    }

    /// Per-segment ranks used to order competing matches (higher is more specific).
    fn rank(&self) -> Vec<u8> {
        let mut rank: Vec<u8> = self
            .segments
            .iter()
            .map(|s| {
                if matches!(s, Segment::Literal(_)) {
                    3
                } else {
                    2
                }
            })
            .collect();
        if self.wildcard {
            rank.push(1);
        }
        rank
    }

    fn matches(&self, path_segments: &[&str]) -> Option<(Vec<(String, String)>, String)> {
        if path_segments.len() < self.segments.len() {
            return None;
        }
        if !self.wildcard && path_segments.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (seg, got) in self.segments.iter().zip(path_segments) {
            match seg {
                Segment::Literal(lit) if lit == got => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.clone(), (*got).to_string())),
            }
        }
        let rest = &path_segments[self.segments.len()..];
        let path_info = if rest.is_empty() {
            String::new()
        } else {
            format!("/{}", rest.join("/"))
        };
        Some((params, path_info))
    }
}

impl<T> Router<T> {
    pub fn new() -> Self {
        Self { routes: Vec::new() }
    }

    /// Adds a route; a route identical to an earlier one replaces it (Spin warns and the later one wins).
    pub fn add(&mut self, route: Route, target: T) -> Option<String> {
        if let Some(existing) = self.routes.iter_mut().find(|(r, _)| r.based == route.based) {
            let replaced = existing.0.raw.clone();
            *existing = (route, target);
            return Some(replaced);
        }
        self.routes.push((route, target));
        None
    }

    pub fn route(&self, path: &str) -> Option<RouteMatch<'_, T>> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut best: Option<(Vec<u8>, RouteMatch<'_, T>)> = None;
        for (route, target) in &self.routes {
            if let Some((params, path_info)) = route.matches(&segments) {
                let rank = route.rank();
                if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                    best = Some((
                        rank,
                        RouteMatch {
                            route,
                            target,
                            params,
                            path_info,
                        },
                    ));
                }
            }
        }
        best.map(|(_, m)| m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[&str]) -> Router<String> {
        let mut r = Router::new();
        for raw in routes {
            r.add(Route::parse("/", raw).unwrap(), raw.to_string());
        }
        r
    }

    fn hit(r: &Router<String>, path: &str) -> Option<String> {
        r.route(path).map(|m| m.target.clone())
    }

    #[test]
    fn precedence_literal_param_wildcard() {
        let r = router(&[
            "/...",
            "/api/...",
            "/api/v1/attachments/:id",
            "/api/v1/attachments/special",
            "/api/v1/:x/list",
        ]);
        assert_eq!(
            hit(&r, "/api/v1/attachments/special").unwrap(),
            "/api/v1/attachments/special"
        );
        assert_eq!(
            hit(&r, "/api/v1/attachments/123").unwrap(),
            "/api/v1/attachments/:id"
        );
        assert_eq!(
            hit(&r, "/api/v1/attachments/123/extra").unwrap(),
            "/api/..."
        );
        assert_eq!(hit(&r, "/api/v1/things/list").unwrap(), "/api/v1/:x/list");
        assert_eq!(hit(&r, "/other").unwrap(), "/...");
        assert_eq!(hit(&r, "/").unwrap(), "/...");
    }

    #[test]
    fn exact_routes_do_not_match_longer_paths_and_params_are_captured() {
        let r = router(&["/a/:one/b/:two"]);
        assert!(hit(&r, "/a/1/b").is_none());
        assert!(hit(&r, "/a/1/b/2/3").is_none());
        let m = r.route("/a/1/b/2").unwrap();
        assert_eq!(
            m.params,
            vec![("one".into(), "1".into()), ("two".into(), "2".into())]
        );
        assert_eq!(m.path_info, "");
    }

    #[test]
    fn wildcard_path_info_and_longer_prefix_wins() {
        let r = router(&["/static/...", "/static/img/..."]);
        let m = r.route("/static/img/a/b.png").unwrap();
        assert_eq!(m.target, "/static/img/...");
        assert_eq!(m.path_info, "/a/b.png");
        assert_eq!(r.route("/static").unwrap().path_info, "");
    }

    #[test]
    fn later_duplicate_wins_and_base_applies() {
        let mut r = Router::new();
        r.add(Route::parse("/", "/x").unwrap(), 1);
        assert_eq!(
            r.add(Route::parse("/", "/x").unwrap(), 2),
            Some("/x".into())
        );
        assert_eq!(*r.route("/x").unwrap().target, 2);
        let based = Route::parse("/base/", "/y/...").unwrap();
        assert_eq!(based.based, "/base/y/...");
        assert_eq!(based.component_route(), "/y");
        assert!(Route::parse("/", "no-slash").is_err());
        assert!(Route::parse("/", "/a/.../b").is_err());
    }
}
