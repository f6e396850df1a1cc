//! A tiny command-line parser for the db-tools binaries: `--flag`, `--key value` and `--key=value`.
//! Three binaries with a handful of flags do not justify a CLI framework's build time on a 2-core machine.

use std::collections::{BTreeMap, BTreeSet};

/// Parsed arguments; anything not declared is an error so typos do not pass silently.
pub struct Args {
    values: BTreeMap<String, String>,
    flags: BTreeSet<String>,
}

impl Args {
    /// Parses `argv[1..]`. `valued` lists options that take a value, `switches` those that do not.
    pub fn parse(
        argv: impl IntoIterator<Item = String>,
        valued: &[&str],
        switches: &[&str],
    ) -> Result<Self, String> {
        let mut values = BTreeMap::new();
        let mut flags = BTreeSet::new();
        let mut it = argv.into_iter();
        while let Some(arg) = it.next() {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument `{arg}`"));
            };
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            };
            if valued.contains(&name.as_str()) {
                let value = match inline {
                    Some(v) => v,
                    None => it.next().ok_or_else(|| format!("--{name} needs a value"))?,
                };
                values.insert(name, value);
            } else if switches.contains(&name.as_str()) {
                if inline.is_some() {
                    return Err(format!("--{name} takes no value"));
                }
                flags.insert(name);
            } else {
                return Err(format!("unknown option --{name}"));
            }
        }
        Ok(Self { values, flags })
    }

    pub fn value(&self, name: &str) -> Option<String> {
        self.values.get(name).cloned()
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.contains(name)
    }

    /// A numeric option with a default.
    pub fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.values.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: `{v}` is not a valid number")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_both_value_forms_and_switches() {
        let a = Args::parse(
            argv(&["--database-url", "x", "--tenants=3", "--json"]),
            &["database-url", "tenants"],
            &["json"],
        )
        .unwrap();
        assert_eq!(a.value("database-url").as_deref(), Some("x"));
        assert_eq!(a.number("tenants", 2u32).unwrap(), 3);
        assert!(a.flag("json"));
        assert!(!a.flag("demo"));
    }

    #[test]
    fn rejects_unknown_and_missing_values() {
        assert!(Args::parse(argv(&["--nope"]), &[], &[]).is_err());
        assert!(Args::parse(argv(&["--database-url"]), &["database-url"], &[]).is_err());
        assert!(Args::parse(argv(&["stray"]), &[], &[]).is_err());
        assert!(Args::parse(argv(&["--json=1"]), &[], &["json"]).is_err());
    }
}
