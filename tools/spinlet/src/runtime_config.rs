//! The part of Spin's runtime configuration file (`--runtime-config-file`) the runner can honour:
//! `[outbound_pg] max_connections`. Anything else in the file is refused at start with its name, so a
//! setting never silently does nothing here while doing something under `spin up`.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    #[serde(default)]
    outbound_pg: OutboundPg,
    /// Set from `outbound_pg.max_connections` once loaded.
    #[serde(skip)]
    pub pg_max_connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboundPg {
    max_connections: Option<usize>,
}

impl RuntimeConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading runtime config {}", path.display()))?;
        Self::parse(&text).with_context(|| {
            format!(
                "runtime config {} (the runner supports [outbound_pg] max_connections only)",
                path.display()
            )
        })
    }

    fn parse(text: &str) -> Result<Self> {
        let mut config: Self = toml::from_str(text)?;
        if config.outbound_pg.max_connections == Some(0) {
            bail!("[outbound_pg] max_connections must be at least 1");
        }
        config.pg_max_connections = config.outbound_pg.max_connections;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_pg_max_connections_is_read() {
        let c = RuntimeConfig::parse("[outbound_pg]\nmax_connections = 7\n").unwrap();
        assert_eq!(c.pg_max_connections, Some(7));
        assert_eq!(RuntimeConfig::parse("").unwrap().pg_max_connections, None);
    }

    #[test]
    fn what_the_runner_cannot_do_is_refused() {
        assert!(RuntimeConfig::parse("[key_value_store.default]\ntype = \"redis\"\n").is_err());
        assert!(RuntimeConfig::parse("[outbound_pg]\npool = 3\n").is_err());
        assert!(RuntimeConfig::parse("[outbound_pg]\nmax_connections = 0\n").is_err());
    }
}
