//! Application variables as Spin resolves them: a `SPIN_VARIABLE_<NAME>` environment value overrides the
//! manifest default; a required variable with neither is a startup error. Component variables and
//! `allowed_outbound_hosts` entries are templates over application variables (`{{ name }}`).

use crate::manifest::{Manifest, check_variable_name};
use anyhow::{Result, bail};
use std::collections::BTreeMap;

/// Resolved application variables. Values are never logged (secret or not), so `secret` needs no tracking.
#[derive(Default, Clone)]
pub struct AppVariables {
    values: BTreeMap<String, String>,
}

impl AppVariables {
    pub fn resolve(manifest: &Manifest, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, decl) in &manifest.variables {
            let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            match env(&env_name).or_else(|| decl.default.clone()) {
                Some(v) => {
                    values.insert(name.clone(), v);
                }
                None => missing.push(format!("`{name}` (set {env_name})")),
            }
        }
        if !missing.is_empty() {
            bail!(
                "required application variables are not set: {}",
                missing.join(", ")
            );
        }
        Ok(Self { values })
    }

    /// Expands `{{ name }}` references. Unknown names are an error (Spin refuses them at load time).
    pub fn expand(&self, template: &str) -> Result<String> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                bail!("unterminated `{{{{` in template {template:?}");
            };
            let name = after[..end].trim();
            check_variable_name(name)?;
            match self.values.get(name) {
                Some(v) => out.push_str(v),
                None => bail!(
                    "template {template:?} references undefined application variable `{name}`"
                ),
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The variables one component may read through `spin:variables`, already expanded.
#[derive(Default, Clone)]
pub struct ComponentVariables(BTreeMap<String, String>);

impl ComponentVariables {
    pub fn resolve(app: &AppVariables, decls: &BTreeMap<String, String>) -> Result<Self> {
        let mut map = BTreeMap::new();
        for (name, template) in decls {
            map.insert(name.clone(), app.expand(template)?);
        }
        Ok(Self(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        toml::from_str(
            r#"
spin_manifest_version = 2
[application]
name = "x"
[variables]
host = { default = "127.0.0.1:5432" }
token = { required = true, secret = true }
"#,
        )
        .unwrap()
    }

    #[test]
    fn env_overrides_default_and_required_must_be_set() {
        let m = manifest();
        let err = AppVariables::resolve(&m, |_| None)
            .err()
            .expect("a missing required variable is an error")
            .to_string();
        assert!(
            err.contains("token") && err.contains("SPIN_VARIABLE_TOKEN"),
            "{err}"
        );
        let vars = AppVariables::resolve(&m, |k| match k {
            "SPIN_VARIABLE_TOKEN" => Some("s3cret".into()),
            "SPIN_VARIABLE_HOST" => Some("db:1".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            vars.expand("postgres://{{ host }}/x").unwrap(),
            "postgres://db:1/x"
        );
    }

    #[test]
    fn templates_refuse_unknown_names() {
        let vars = AppVariables::resolve(&manifest(), |_| Some("v".into())).unwrap();
        assert!(vars.expand("{{ nope }}").is_err());
        assert!(vars.expand("{{ host").is_err());
        assert_eq!(vars.expand("plain").unwrap(), "plain");
    }
}
