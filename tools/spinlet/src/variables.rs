//! Application variables as `spin up` resolves them, first found wins: a `--variable` value, a
//! `SPIN_VARIABLE_<NAME>` environment value, the same key in a `.env` file of the working directory, the
//! manifest default; a required variable with none is a startup error. Component variables and
//! `allowed_outbound_hosts` entries are templates over application variables (`{{ name }}`).

use crate::manifest::{Manifest, check_variable_name};
use anyhow::{Context, Result, bail};
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

/// Where variable values come from besides the manifest: `--variable` flags, then the environment, then
/// `.env`; all keyed by their environment name (`SPIN_VARIABLE_<NAME>`).
#[derive(Default)]
pub struct Sources {
    flags: BTreeMap<String, String>,
    dotenv: BTreeMap<String, String>,
}

impl Sources {
    /// The `--variable` arguments as `spin up` takes them: `key=value`, `key=@file` (the file's text),
    /// `@file.json` or `@file.toml` (an object of key-value pairs); later ones win. And `dotenv`, the
    /// `.env` file (absent: none).
    pub fn new(variables: &[String], dotenv: &std::path::Path) -> Result<Self> {
        let mut flags = BTreeMap::new();
        for arg in variables {
            for (k, v) in parse_variable_arg(arg)? {
                flags.insert(env_key(&k), v);
            }
        }
        let mut env_file = BTreeMap::new();
        if dotenv.exists() {
            for item in dotenvy::from_path_iter(dotenv)
                .with_context(|| format!("reading {}", dotenv.display()))?
            {
                let (k, v) = item.with_context(|| format!("parsing {}", dotenv.display()))?;
                env_file.insert(k, v);
            }
        }
        Ok(Self {
            flags,
            dotenv: env_file,
        })
    }

    /// The value for environment name `key` (`SPIN_VARIABLE_<NAME>`), if any source has one.
    pub fn lookup(&self, key: &str) -> Option<String> {
        self.flags
            .get(key)
            .cloned()
            .or_else(|| std::env::var(key).ok())
            .or_else(|| self.dotenv.get(key).cloned())
    }
}

fn env_key(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())
}

fn parse_variable_arg(arg: &str) -> Result<Vec<(String, String)>> {
    if let Some(path) = arg.strip_prefix('@') {
        let text = std::fs::read_to_string(path).with_context(|| format!("--variable {arg}"))?;
        let table: BTreeMap<String, String> = if path.ends_with(".json") {
            serde_json::from_str(&text).with_context(|| format!("--variable {arg}"))?
        } else if path.ends_with(".toml") {
            toml::from_str(&text).with_context(|| format!("--variable {arg}"))?
        } else {
            bail!("--variable {arg}: a file of variables must be .json or .toml");
        };
        return Ok(table.into_iter().collect());
    }
    let Some((k, v)) = arg.split_once('=') else {
        bail!("--variable {arg:?}: expected key=value, key=@file, @file.json or @file.toml");
    };
    check_variable_name(k)?;
    let value = match v.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("--variable {k}=@{path}"))?
        }
        None => v.to_owned(),
    };
    Ok(vec![(k.to_owned(), value)])
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
    fn flags_win_over_the_environment_and_dotenv() {
        let dir = std::env::temp_dir().join(format!("spinlet-vars-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dotenv = dir.join(".env");
        std::fs::write(
            &dotenv,
            "SPIN_VARIABLE_HOST=from-dotenv:1\nSPIN_VARIABLE_TOKEN='quoted value'\n",
        )
        .unwrap();
        let file = dir.join("secret.txt");
        std::fs::write(&file, "from-file").unwrap();
        let toml_file = dir.join("vars.toml");
        std::fs::write(&toml_file, "host = \"from-toml:2\"\n").unwrap();

        let only_dotenv = Sources::new(&[], &dotenv).unwrap();
        let vars = AppVariables::resolve(&manifest(), |k| only_dotenv.lookup(k)).unwrap();
        assert_eq!(
            vars.expand("{{ host }}|{{ token }}").unwrap(),
            "from-dotenv:1|quoted value"
        );

        let flags = Sources::new(
            &[
                format!("@{}", toml_file.display()),
                format!("token=@{}", file.display()),
            ],
            &dotenv,
        )
        .unwrap();
        let vars = AppVariables::resolve(&manifest(), |k| flags.lookup(k)).unwrap();
        assert_eq!(
            vars.expand("{{ host }}|{{ token }}").unwrap(),
            "from-toml:2|from-file"
        );

        let later_wins =
            Sources::new(&["host=a:1".into(), "host=b:2".into()], &dir.join("none")).unwrap();
        assert_eq!(
            later_wins.lookup("SPIN_VARIABLE_HOST").as_deref(),
            Some("b:2")
        );
        assert!(Sources::new(&["no-equals".into()], &dotenv).is_err());
        assert!(Sources::new(&["Bad-Name=x".into()], &dotenv).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn templates_refuse_unknown_names() {
        let vars = AppVariables::resolve(&manifest(), |_| Some("v".into())).unwrap();
        assert!(vars.expand("{{ nope }}").is_err());
        assert!(vars.expand("{{ host").is_err());
        assert_eq!(vars.expand("plain").unwrap(), "plain");
    }
}
