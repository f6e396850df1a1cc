//! Middleware chains (`dependencies.middleware`), composed into one component the way Spin 4.1 does it:
//! each middleware imports `wasi:http/handler@0.3.0` (the next handler) and exports it; the innermost
//! component is the route's primary. The composed component runs with the primary's configuration.
//!
//! A middleware only reaches the host capabilities its `inherit_configuration` grants; every other
//! capability import of it is plugged with a generated component whose functions trap (Spin's deny adapter
//! behaviour). The deny component is generated here from the middleware's own WIT, never copied.

use anyhow::{Context, Result, bail};
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions};

pub const HANDLER: &str = "wasi:http/handler@0.3.0";

/// Which capability interface prefixes each `inherit_configuration` name opens, by interface name prefix.
fn capability_prefixes(name: &str) -> &'static [&'static str] {
    match name {
        "allowed_outbound_hosts" => &[
            "wasi:http/client@",
            "wasi:http/outgoing-handler@",
            "spin:postgres/postgres@",
            "spin:redis/redis@",
            "spin:mysql/mysql@",
            "spin:mqtt/mqtt@",
            "fermyon:spin/postgres",
            "fermyon:spin/redis",
            "fermyon:spin/mysql",
            "wasi:sockets/",
        ],
        "variables" => &[
            "spin:variables/variables@",
            "fermyon:spin/variables",
            "wasi:config/store@",
        ],
        "key_value_stores" => &[
            "spin:key-value/",
            "fermyon:spin/key-value",
            "wasi:keyvalue/",
        ],
        "sqlite_databases" => &["spin:sqlite/", "fermyon:spin/sqlite"],
        "ai_models" => &["fermyon:spin/llm"],
        "environment" => &["wasi:cli/environment@"],
        "files" => &["wasi:filesystem/preopens@"],
        _ => &[],
    }
}

const ALL_CAPABILITIES: &[&str] = &[
    "allowed_outbound_hosts",
    "variables",
    "key_value_stores",
    "sqlite_databases",
    "ai_models",
    "environment",
    "files",
];

#[derive(Debug, Clone)]
pub enum Inherit {
    All,
    Some(Vec<String>),
}

impl Inherit {
    fn denies(&self, import: &str) -> bool {
        let granted: Vec<&str> = match self {
            Inherit::All => return false,
            Inherit::Some(names) => names.iter().map(String::as_str).collect(),
        };
        ALL_CAPABILITIES.iter().any(|cap| {
            !granted.contains(cap)
                && capability_prefixes(cap)
                    .iter()
                    .any(|p| import.starts_with(p))
        })
    }
}

pub struct Middleware {
    pub name: String,
    pub bytes: Vec<u8>,
    pub inherit: Inherit,
}

/// Composes `middlewares` (outermost first) around `primary` and returns the composed component's bytes.
pub fn compose(primary: &[u8], middlewares: &[Middleware]) -> Result<Vec<u8>> {
    if middlewares.is_empty() {
        return Ok(primary.to_vec());
    }
    let mut graph = CompositionGraph::new();
    // Register outermost → innermost, then the primary last.
    let mut packages = Vec::new();
    for (i, mw) in middlewares.iter().enumerate() {
        let bytes = deny_uninherited(&mw.bytes, &mw.inherit).with_context(|| {
            format!(
                "restricting middleware `{}` to its inherited configuration",
                mw.name
            )
        })?;
        let package =
            Package::from_bytes(&format!("middleware{i}"), None, bytes, graph.types_mut())
                .with_context(|| format!("parsing middleware `{}`", mw.name))?;
        let ty = &graph.types()[package.ty()];
        if !ty.imports.contains_key(HANDLER) {
            bail!(
                "middleware `{}` does not import {HANDLER}: it cannot call the next handler",
                mw.name
            );
        }
        if !ty.exports.contains_key(HANDLER) {
            bail!("middleware `{}` does not export {HANDLER}", mw.name);
        }
        packages.push(graph.register_package(package)?);
    }
    let package = Package::from_bytes("primary", None, primary.to_vec(), graph.types_mut())
        .context("parsing primary")?;
    packages.push(graph.register_package(package)?);

    // Instantiate from the inside out, feeding each handler export into the next middleware's import.
    let mut iter = packages.iter().rev();
    let innermost = graph.instantiate(*iter.next().expect("primary registered"));
    let mut next_handler = graph
        .alias_instance_export(innermost, HANDLER)
        .context("primary does not export wasi:http/handler@0.3.0")?;
    for &package in iter {
        let instance = graph.instantiate(package);
        graph.set_instantiation_argument(instance, HANDLER, next_handler)?;
        next_handler = graph.alias_instance_export(instance, HANDLER)?;
    }
    graph.export(next_handler, HANDLER)?;
    Ok(graph.encode(EncodeOptions::default())?)
}

/// Plugs every capability import the middleware does not inherit with trapping stubs.
fn deny_uninherited(bytes: &[u8], inherit: &Inherit) -> Result<Vec<u8>> {
    let decoded = wit_component::decode(bytes).context("decoding the middleware's WIT")?;
    let resolve = decoded.resolve();
    let world = &resolve.worlds[decoded.package_world()?];
    let denied: Vec<String> = world
        .imports
        .keys()
        .map(|key| resolve.name_world_key(key))
        .filter(|name| inherit.denies(name))
        .collect();
    if denied.is_empty() {
        return Ok(bytes.to_vec());
    }
    let deny = crate::deny::deny_component(resolve, &denied)?;
    let mut graph = CompositionGraph::new();
    let socket = Package::from_bytes("middleware", None, bytes.to_vec(), graph.types_mut())?;
    let socket_exports: Vec<String> = graph.types()[socket.ty()].exports.keys().cloned().collect();
    let socket = graph.register_package(socket)?;
    let plug = Package::from_bytes("deny", None, deny, graph.types_mut())?;
    let plug = graph.register_package(plug)?;
    let socket_instance = graph.instantiate(socket);
    let plug_instance = graph.instantiate(plug);
    for name in &denied {
        let export = graph.alias_instance_export(plug_instance, name)?;
        graph.set_instantiation_argument(socket_instance, name, export)?;
    }
    for name in socket_exports {
        let export = graph.alias_instance_export(socket_instance, &name)?;
        graph.export(export, &name)?;
    }
    Ok(graph.encode(EncodeOptions::default())?)
}

trait DecodedExt {
    fn package_world(&self) -> Result<wit_parser::WorldId>;
}

impl DecodedExt for wit_component::DecodedWasm {
    fn package_world(&self) -> Result<wit_parser::WorldId> {
        match self {
            wit_component::DecodedWasm::Component(_, world) => Ok(*world),
            wit_component::DecodedWasm::WitPackage(..) => {
                bail!("expected a component, found a WIT package")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inherit_configuration_maps_capabilities() {
        let none = Inherit::Some(vec![]);
        assert!(none.denies("spin:postgres/postgres@4.2.0"));
        assert!(none.denies("wasi:http/client@0.3.0"));
        assert!(none.denies("spin:variables/variables@3.0.0"));
        assert!(!none.denies("wasi:http/handler@0.3.0"));
        assert!(!none.denies("wasi:clocks/monotonic-clock@0.3.0"));
        let vars = Inherit::Some(vec!["variables".into()]);
        assert!(!vars.denies("spin:variables/variables@3.0.0"));
        assert!(vars.denies("spin:redis/redis@3.0.0"));
        assert!(!Inherit::All.denies("spin:redis/redis@3.0.0"));
    }
}
