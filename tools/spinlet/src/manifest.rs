//! The subset of Spin's manifest v2 (`spin.toml`) that the runner honours, parsed strictly: anything we would
//! silently ignore but Spin would act on is an error, so the local run never differs quietly from production.
//! Descriptive fields (`description`, `authors`, `build`, ...) are parsed so valid manifests load, and unused.
#![allow(dead_code)]

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub spin_manifest_version: u32,
    pub application: Application,
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    pub trigger: Triggers,
    #[serde(default)]
    pub component: BTreeMap<String, ComponentDecl>,
}

#[derive(Debug, Deserialize)]
pub struct Application {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub trigger: Option<ApplicationTriggers>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ApplicationTriggers {
    #[serde(default)]
    pub http: Option<HttpAppConfig>,
}

#[derive(Debug, Default, Deserialize)]
pub struct HttpAppConfig {
    #[serde(default)]
    pub base: Option<String>,
}

/// `[variables]` entries: exactly one of `default` or `required = true`; `secret` keeps values out of logs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Triggers {
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    #[serde(default)]
    pub id: Option<String>,
    pub route: RouteDecl,
    pub component: String,
    #[serde(default)]
    pub executor: Option<toml::Value>,
    #[serde(default)]
    pub dependencies: TriggerDependencies,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RouteDecl {
    Route(String),
    Private { private: bool },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerDependencies {
    #[serde(default)]
    pub middleware: Vec<MiddlewareDecl>,
}

/// One middleware of a chain, outermost first: a component of this app, or a Wasm file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiddlewareDecl {
    #[serde(default)]
    pub component: Option<String>,
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub inherit_configuration: Option<InheritDecl>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum InheritDecl {
    All(bool),
    Some(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentDecl {
    pub source: SourceDecl,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub files: Vec<toml::Value>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    #[serde(default)]
    pub ai_models: Vec<String>,
    #[serde(default)]
    pub build: Option<toml::Value>,
    #[serde(default)]
    pub dependencies: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SourceDecl {
    Path(PathBuf),
    Remote { url: String, digest: String },
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        let manifest: Manifest = toml::from_str(&text)
            .with_context(|| format!("parsing manifest {}", path.display()))?;
        manifest.check()?;
        Ok(manifest)
    }

    fn check(&self) -> Result<()> {
        if self.spin_manifest_version != 2 {
            bail!("only spin_manifest_version = 2 is supported");
        }
        for (name, decl) in &self.variables {
            check_variable_name(name)?;
            if decl.required && decl.default.is_some() {
                bail!("variable `{name}`: `required` and `default` are mutually exclusive");
            }
            if !decl.required && decl.default.is_none() {
                bail!("variable `{name}`: needs a `default` or `required = true`");
            }
        }
        for (id, c) in &self.component {
            if !c.files.is_empty()
                || !c.key_value_stores.is_empty()
                || !c.sqlite_databases.is_empty()
            {
                bail!(
                    "component `{id}`: files, key_value_stores and sqlite_databases are not supported by this runner"
                );
            }
            if !c.ai_models.is_empty() {
                bail!("component `{id}`: ai_models are not supported by this runner");
            }
            if c.dependencies.is_some() {
                bail!("component `{id}`: component dependencies are not supported by this runner");
            }
            for name in c.variables.keys() {
                check_variable_name(name).with_context(|| format!("component `{id}`"))?;
            }
        }
        for t in &self.trigger.http {
            if !self.component.contains_key(&t.component) {
                bail!(
                    "trigger route {:?} names unknown component `{}`",
                    t.route,
                    t.component
                );
            }
            for mw in &t.dependencies.middleware {
                match (&mw.component, &mw.path) {
                    (Some(c), None) if self.component.contains_key(c) => {}
                    (Some(c), None) => bail!("middleware names unknown component `{c}`"),
                    (None, Some(_)) => {}
                    _ => bail!("a middleware needs exactly one of `component` or `path`"),
                }
            }
            if let Some(exec) = &t.executor {
                let ty = exec.get("type").and_then(|v| v.as_str());
                if ty != Some("spin") {
                    bail!("only the default `spin` executor is supported (got {exec})");
                }
            }
        }
        Ok(())
    }

    pub fn base(&self) -> &str {
        self.application
            .trigger
            .as_ref()
            .and_then(|t| t.http.as_ref())
            .and_then(|h| h.base.as_deref())
            .unwrap_or("/")
    }
}

/// Spin's rule: lower-case ASCII letters, digits and underscores, starting with a letter.
pub fn check_variable_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.ends_with('_')
        && !name.contains("__");
    if !ok {
        bail!(
            "invalid variable name `{name}`: use lower-case letters, digits and single underscores"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest> {
        let m: Manifest = toml::from_str(text)?;
        m.check()?;
        Ok(m)
    }

    #[test]
    fn parses_middleware_chain_and_variables() {
        let m = parse(
            r#"
spin_manifest_version = 2
[application]
name = "x"
[variables]
a = { default = "1" }
b = { required = true, secret = true }
[[trigger.http]]
route = "/api/..."
component = "primary"
dependencies.middleware = [{ component = "mw", inherit_configuration = true }, { component = "mw2", inherit_configuration = ["variables"] }]
[component.primary]
source = "p.wasm"
variables = { x = "{{ a }}" }
[component.mw]
source = "m.wasm"
[component.mw2]
source = "m2.wasm"
"#,
        )
        .unwrap();
        assert_eq!(m.trigger.http[0].dependencies.middleware.len(), 2);
        assert!(m.variables["b"].secret);
    }

    #[test]
    fn refuses_unknown_component_and_bad_variables() {
        let unknown = r#"
spin_manifest_version = 2
[application]
name = "x"
[[trigger.http]]
route = "/"
component = "nope"
"#;
        assert!(parse(unknown).is_err());
        let both = r#"
spin_manifest_version = 2
[application]
name = "x"
[variables]
a = { default = "1", required = true }
"#;
        assert!(parse(both).is_err());
        assert!(check_variable_name("Upper").is_err());
        assert!(check_variable_name("ok_name1").is_ok());
    }
}
