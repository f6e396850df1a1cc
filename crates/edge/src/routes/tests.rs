use std::collections::BTreeSet;
use std::path::PathBuf;

use http::Method;

use super::*;

const ID: &str = "6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn resolve_finds_the_endpoint_and_its_id() {
    let m = resolve(
        "ingest",
        &Method::POST,
        &format!("/api/v1/emails/{ID}/attachments"),
    )
    .unwrap();
    assert_eq!(m.endpoint, Endpoint::Upload);
    assert_eq!(m.id.unwrap().to_string(), ID);
    let m = resolve(
        "ingest",
        &Method::GET,
        &format!("/api/v1/emails/{ID}/attachments"),
    )
    .unwrap();
    assert_eq!(m.endpoint, Endpoint::ListAttachments);
    let m = resolve("download", &Method::HEAD, "/api/v1/files/x").unwrap();
    assert_eq!((m.endpoint, m.id), (Endpoint::File, None));
    let m = resolve("auth", &Method::GET, "/api/v1/audit-log").unwrap();
    assert_eq!(m.endpoint.access(), Access::Role(Role::Admin));
}

#[test]
fn resolve_refuses_unknown_paths_other_methods_and_odd_ids() {
    let e = resolve("ingest", &Method::GET, "/api/v1/email").unwrap_err();
    assert_eq!(e.status(), 404);
    // The caller's messages: a path without an id.
    let m = resolve("ingest", &Method::GET, "/api/v1/emails").unwrap();
    assert_eq!(m.endpoint, Endpoint::ListMessages);
    assert_eq!(m.id, None);
    let e = resolve("ingest", &Method::POST, "/api/v1/emails").unwrap_err();
    assert_eq!(e.status(), 405);
    // Another component's route is not this component's to answer.
    let e = resolve(
        "ingest",
        &Method::POST,
        &format!("/api/v1/attachments/{ID}/download-url"),
    )
    .unwrap_err();
    assert_eq!(e.status(), 404);
    let e = resolve("ingest", &Method::PUT, &format!("/api/v1/attachments/{ID}")).unwrap_err();
    assert_eq!(e.status(), 405);
    assert!(
        e.headers()
            .contains(&("Allow", "GET, DELETE, OPTIONS".to_owned())),
        "{:?}",
        e.headers()
    );
    for bad in [
        "x",
        "6f1c2a8e3b4d4e5f8a9b0c1d2e3f4a5b",
        "{6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5}",
    ] {
        let e = resolve(
            "download",
            &Method::POST,
            &format!("/api/v1/attachments/{bad}/download-url"),
        )
        .unwrap_err();
        assert_eq!(e.problem().code(), Code::InvalidId, "{bad}");
    }
    // An empty segment is no id: the path is unknown.
    let e = resolve(
        "scan-callback",
        &Method::GET,
        "/api/v1/attachments//scan-status",
    )
    .unwrap_err();
    assert_eq!(e.status(), 404);
    assert_eq!(
        resolve("download", &Method::GET, "/api/v1/filesx")
            .unwrap_err()
            .status(),
        404
    );
}

#[test]
fn every_endpoint_has_exactly_one_row() {
    for r in ROUTES {
        assert_eq!(
            ROUTES.iter().filter(|o| o.endpoint == r.endpoint).count(),
            1,
            "{:?}",
            r.endpoint
        );
        assert_eq!(r.endpoint.route(), r);
    }
}

/// `/api/v1/attachments/{id}` and `/api/v1/attachments/:id` alike: parameters as `*`.
fn shape(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if s.starts_with(':') || (s.starts_with('{') && s.ends_with('}')) {
                "*"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The table and `spin.toml` agree: every route goes to the component the table names, with the
/// auth middleware in front exactly where the table says a role is needed, and no trigger is
/// missing from the table.
#[test]
fn the_table_matches_spin_toml() {
    let text = std::fs::read_to_string(repo().join("spin.toml")).expect("spin.toml");
    let manifest: toml::Table = toml::from_str(&text).expect("spin.toml parses");
    let triggers = manifest["trigger"]["http"]
        .as_array()
        .expect("[[trigger.http]]");
    let mut seen = BTreeSet::new();
    for t in triggers {
        let route = t["route"].as_str().expect("route");
        let component = t["component"].as_str().expect("component");
        let middleware = t
            .get("dependencies")
            .and_then(|d| d.get("middleware"))
            .and_then(|m| m.as_array())
            .is_some_and(|m| {
                m.iter()
                    .any(|c| c.get("component").and_then(|c| c.as_str()) == Some("auth-middleware"))
            });
        let rows: Vec<&Route> = ROUTES
            .iter()
            .filter(|r| shape(r.path) == shape(route))
            .collect();
        assert!(
            !rows.is_empty(),
            "spin.toml routes {route} to {component}; the route table has no such path"
        );
        for r in rows {
            assert_eq!(
                r.component, component,
                "{route}: spin.toml and the table disagree on the component"
            );
            assert_eq!(
                r.access.behind_middleware(),
                middleware,
                "{route}: the table says {:?}, spin.toml {} the auth middleware",
                r.access,
                if middleware { "puts" } else { "does not put" }
            );
        }
        seen.insert(shape(route));
    }
    for r in ROUTES {
        assert!(
            seen.contains(&shape(r.path)),
            "{} {:?} is in the table but not in spin.toml",
            r.path,
            r.endpoint
        );
    }
}

/// The operations `openapi.yaml` documents: `(METHOD, path)` under `paths:`, and the signed content
/// URL's path item (`components.pathItems.SignedContentUrl`, a URL without a fixed path).
fn documented_operations() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(repo().join("openapi.yaml")).expect("openapi.yaml");
    let mut ops = BTreeSet::new();
    let mut section = "";
    let mut current: Option<String> = None;
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = if line == "paths:" {
                "paths"
            } else if line == "components:" {
                "components"
            } else {
                ""
            };
            current = None;
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let key = line.trim().trim_end_matches(':');
        match (section, indent) {
            ("paths", 2) if line.trim_end().ends_with(':') => {
                current = Some(key.trim_matches('\'').to_owned())
            }
            ("components", 4) if line.trim_end().ends_with(':') => {
                current = (key == "SignedContentUrl").then(|| "/api/v1/files/...".to_owned());
            }
            ("paths", 4) | ("components", 6) => {
                if let (Some(path), true) = (&current, line.trim_end().ends_with(':')) {
                    let method = key.to_ascii_uppercase();
                    if ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str())
                    {
                        ops.insert((method, path.clone()));
                    }
                }
            }
            _ => {}
        }
    }
    ops
}

/// The table and `openapi.yaml` agree: every operation of the table is documented, and every
/// documented operation is in the table, except the host's own health check.
#[test]
fn the_table_matches_openapi_yaml() {
    let documented = documented_operations();
    assert!(
        documented.len() > 10,
        "openapi.yaml read wrongly: {documented:?}"
    );
    let mut table = BTreeSet::new();
    for r in ROUTES {
        for m in r.methods {
            table.insert(((*m).to_owned(), r.path.to_owned()));
        }
    }
    let host_owned = BTreeSet::from([("GET".to_owned(), "/.well-known/spin/health".to_owned())]);
    let undocumented: Vec<_> = table.difference(&documented).collect();
    let unserved: Vec<_> = documented
        .difference(&table)
        .filter(|op| !host_owned.contains(*op))
        .collect();
    assert!(
        undocumented.is_empty(),
        "in the route table, not in openapi.yaml: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in openapi.yaml, not in the route table: {unserved:?}"
    );
}

#[test]
fn the_middleware_requires_the_tables_role_and_user_for_unknown_routes() {
    assert_eq!(required_role("GET", "/api/v1/audit-log"), Some(Role::Admin));
    assert_eq!(
        required_role("HEAD", "/api/v1/audit-log"),
        Some(Role::Admin),
        "HEAD is judged as GET"
    );
    assert_eq!(required_role("get", "/api/v1/audit-log"), Some(Role::Admin));
    assert_eq!(
        required_role("GET", "/api/v1/audit-log/"),
        Some(Role::User),
        "another path"
    );
    for (m, p) in [
        ("GET", format!("/api/v1/attachments/{ID}")),
        ("DELETE", format!("/api/v1/attachments/{ID}")),
        ("POST", format!("/api/v1/emails/{ID}/attachments")),
        ("GET", format!("/api/v1/attachments/{ID}/scan-status")),
        ("POST", "/api/v1/auth/logout".to_owned()),
        ("GET", "/api/v1/auth/me".to_owned()),
    ] {
        assert_eq!(required_role(m, &p), Some(Role::User), "{m} {p}");
    }
    // Routes whose credential is not a token need no role.
    assert_eq!(required_role("POST", "/api/v1/auth/token"), None);
    assert_eq!(required_role("HEAD", "/.well-known/jwks.json"), None);
    assert_eq!(required_role("POST", "/api/v1/scan/callback"), None);
    assert_eq!(required_role("GET", "/api/v1/files/a/b"), None);
    // Unknown: a valid token is enough; the component behind answers 404 / 405.
    assert_eq!(required_role("GET", "/api/v1/nope"), Some(Role::User));
    assert_eq!(
        required_role("GET", "/api/v1/auth/token"),
        Some(Role::User),
        "the method matters"
    );
    assert_eq!(required_role("PUT", "/api/v1/audit-log"), Some(Role::User));
}

#[test]
fn public_methods_are_those_of_a_components_public_routes_on_the_path() {
    assert_eq!(public_methods("auth", "/api/v1/auth/token"), ["POST"]);
    assert_eq!(
        public_methods("auth", "/.well-known/jwks.json"),
        ["GET", "HEAD"]
    );
    assert!(
        public_methods("auth", "/api/v1/auth/me").is_empty(),
        "behind the middleware"
    );
    assert!(public_methods("auth", "/api/v1/auth/token/").is_empty());
    assert!(
        public_methods("ingest", "/api/v1/auth/token").is_empty(),
        "another component's route"
    );
    assert!(
        public_methods("scan-callback", "/api/v1/scan/callback").is_empty(),
        "a scanner's, not public"
    );
}

#[test]
fn methods_on_a_path_are_those_of_every_route_on_it() {
    assert_eq!(
        methods_on(&format!("/api/v1/attachments/{ID}")).unwrap(),
        ["GET", "DELETE"]
    );
    assert_eq!(
        methods_on(&format!("/api/v1/emails/{ID}/attachments")).unwrap(),
        ["POST", "GET"]
    );
    assert_eq!(methods_on("/api/v1/auth/me").unwrap(), ["GET"]);
    assert_eq!(
        methods_on("/.well-known/jwks.json").unwrap(),
        ["GET", "HEAD"]
    );
    assert!(methods_on("/api/v1/nope").unwrap().is_empty());
    assert!(methods_on("/api/v1/auth/me/").unwrap().is_empty());
    let e = methods_on("/api/v1/attachments/not-a-uuid/scan-status").unwrap_err();
    assert_eq!(e.problem().code(), Code::InvalidId);
}

#[test]
fn allow_names_options_where_a_plain_options_is_answered() {
    let allow = |component: &str, method: Method, path: &str| {
        let e = resolve(component, &method, path).unwrap_err();
        assert_eq!(e.status(), 405);
        e.headers()
            .iter()
            .find(|(n, _)| *n == "Allow")
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(
        allow("auth", Method::GET, "/api/v1/auth/token"),
        "POST, OPTIONS"
    );
    assert_eq!(
        allow("auth", Method::POST, "/.well-known/jwks.json"),
        "GET, HEAD, OPTIONS"
    );
    assert_eq!(
        allow("scan-callback", Method::OPTIONS, "/api/v1/scan/callback"),
        "POST"
    );
    assert_eq!(
        allow("download", Method::POST, "/api/v1/files/x"),
        "GET, HEAD"
    );
}
