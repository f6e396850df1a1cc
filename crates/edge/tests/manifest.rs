//! `spin.toml` against the code: each component is given exactly the variables its code reads, and
//! may reach exactly the hosts those variables name. A variable the code reads but the manifest
//! does not map fails at the first request in production; one the manifest maps but nobody reads is
//! a setting an operator changes to no effect; a host allowed without need widens what a
//! compromised component can reach.
//!
//! The code's reads are found as `variable("name")` calls with a string literal, the one way the
//! components read configuration (`edge::spin::variable`). A composed auth middleware runs with the
//! configuration of the component it guards, so its reads count for every component behind it, and
//! the service shell's (`edge::app`) count for every component with a route behind the middleware.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `variable("x")` literals in the Rust files under `dir`.
fn reads_under(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.extend(reads_in(&std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out
}

fn reads_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("variable(\"") {
        rest = &rest[i + "variable(\"".len()..];
        if let Some(end) = rest.find("\")") {
            let name = &rest[..end];
            if !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                out.insert(name.to_owned());
            }
        }
    }
    // The shared readers of `edge::spin`: calling one reads its variable.
    if text.contains("outbound_timeout()") {
        out.insert("outbound_timeout_secs".to_owned());
    }
    if text.contains("spin::quota_limits()") {
        for name in [
            "quota_tenant_bytes",
            "quota_tenant_attachments",
            "quota_user_bytes",
            "quota_user_attachments",
            "quota_user_download_bytes_per_day",
        ] {
            out.insert(name.to_owned());
        }
    }
    if text.contains("spin::database()") {
        out.insert("database_url".to_owned());
        out.insert("db_ca_root".to_owned());
    }
    out
}

struct Manifest {
    app_variables: BTreeSet<String>,
    components: BTreeMap<String, toml::Table>,
    /// component → whether some route puts the auth middleware in front of it
    guarded: BTreeMap<String, bool>,
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(repo().join("spin.toml")).expect("spin.toml");
    let m: toml::Table = toml::from_str(&text).expect("spin.toml parses");
    let app_variables = m["variables"]
        .as_table()
        .expect("[variables]")
        .keys()
        .cloned()
        .collect();
    let components = m["component"]
        .as_table()
        .expect("[component]")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_table().expect("component table").clone()))
        .collect();
    let mut guarded = BTreeMap::new();
    for t in m["trigger"]["http"].as_array().expect("[[trigger.http]]") {
        let c = t["component"].as_str().expect("component").to_owned();
        let mw = t
            .get("dependencies")
            .and_then(|d| d.get("middleware"))
            .is_some();
        *guarded.entry(c).or_insert(false) |= mw;
    }
    Manifest {
        app_variables,
        components,
        guarded,
    }
}

fn source_dir(c: &toml::Table) -> Option<PathBuf> {
    let workdir = c.get("build")?.get("workdir")?.as_str()?;
    Some(repo().join(workdir).join("src"))
}

/// What each component that serves routes should be given: its own reads, the middleware's and the
/// shell's where they apply.
fn expected_reads(m: &Manifest) -> BTreeMap<String, BTreeSet<String>> {
    let middleware =
        reads_under(&source_dir(&m.components["auth-middleware"]).expect("auth-middleware source"));
    let shell = reads_in(&std::fs::read_to_string(repo().join("crates/edge/src/app.rs")).unwrap());
    let mut out = BTreeMap::new();
    for (name, c) in &m.components {
        let Some(&guarded) = m.guarded.get(name) else {
            continue;
        };
        let mut reads =
            reads_under(&source_dir(c).unwrap_or_else(|| panic!("{name}: no build.workdir")));
        if guarded {
            reads.extend(middleware.iter().cloned());
        }
        let has_role_routes = edge::routes::ROUTES
            .iter()
            .any(|r| r.component == name && r.access.behind_middleware());
        if has_role_routes {
            reads.extend(shell.iter().cloned());
        }
        out.insert(name.clone(), reads);
    }
    out
}

#[test]
fn each_component_is_given_exactly_the_variables_it_reads() {
    let m = manifest();
    let expected = expected_reads(&m);
    assert!(
        expected.len() >= 4,
        "routed components: {:?}",
        expected.keys()
    );
    let mut problems = Vec::new();
    for (name, reads) in &expected {
        let given: BTreeSet<String> = m.components[name]
            .get("variables")
            .and_then(|v| v.as_table())
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        for missing in reads.difference(&given) {
            problems.push(format!(
                "[component.{name}.variables] lacks {missing}, which its code reads"
            ));
        }
        for unused in given.difference(reads) {
            problems.push(format!(
                "[component.{name}.variables] sets {unused}, which nothing in it reads"
            ));
        }
        // Each mapping names application variables that exist.
        if let Some(vars) = m.components[name]
            .get("variables")
            .and_then(|v| v.as_table())
        {
            for (k, v) in vars {
                let template = v.as_str().unwrap_or_default();
                for part in template.split("{{").skip(1) {
                    let var = part.split("}}").next().unwrap_or_default().trim();
                    if !m.app_variables.contains(var) {
                        problems.push(format!("[component.{name}.variables] {k} uses {{{{ {var} }}}}, not an application variable"));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn each_component_may_reach_exactly_the_hosts_it_is_configured_for() {
    let m = manifest();
    let mut problems = Vec::new();
    for (name, reads) in expected_reads(&m) {
        let mut needed = BTreeSet::new();
        if reads.contains("database_url") {
            needed.insert("postgres://{{ db_host }}".to_owned());
        }
        if reads.contains("redis_url") {
            needed.insert("{{ redis_scheme }}://{{ redis_host }}".to_owned());
        }
        if reads.contains("s3_endpoint") {
            needed.insert("{{ s3_endpoint }}".to_owned());
        }
        let allowed: BTreeSet<String> = m.components[&name]
            .get("allowed_outbound_hosts")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|h| h.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if allowed != needed {
            problems.push(format!("[component.{name}] allowed_outbound_hosts = {allowed:?}, its variables need {needed:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_application_variable_is_used() {
    let m = manifest();
    let text = std::fs::read_to_string(repo().join("spin.toml")).unwrap();
    let components_part = &text[text.find("[component.").expect("components")..];
    let unused: Vec<_> = m
        .app_variables
        .iter()
        .filter(|v| !components_part.contains(&format!("{{{{ {v} }}}}")))
        .collect();
    assert!(
        unused.is_empty(),
        "application variables no component uses: {unused:?}"
    );
}

#[test]
fn the_scanner_finds_literal_reads_only() {
    let found =
        reads_in(r#"variable("a_b1").await?; variable(name); variable("Bad"); variable("")"#);
    assert_eq!(found, BTreeSet::from(["a_b1".to_owned()]));
}
