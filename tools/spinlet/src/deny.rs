//! Generates a "deny" component: it exports the given interfaces and every function traps. The runner plugs
//! a middleware's non-inherited capability imports with it, so calling them fails the way it does on Spin.
//! Built from the middleware's own decoded WIT with wit-component's dummy module, so it always matches the
//! exact interface versions the middleware imports.

use anyhow::{Context, Result};
use wit_component::{ComponentEncoder, StringEncoding, dummy_module, embed_component_metadata};
use wit_parser::{LiftLowerAbi, ManglingAndAbi, Resolve};

pub fn deny_component(resolve: &Resolve, interfaces: &[String]) -> Result<Vec<u8>> {
    let mut resolve = resolve.clone();
    let exports: String = interfaces
        .iter()
        .map(|i| format!("  export {i};\n"))
        .collect();
    let source = format!("package spinlet:deny;\nworld deny {{\n{exports}}}\n");
    let package = resolve
        .push_str("deny.wit", &source)
        .context("building the deny world")?;
    let world = resolve.select_world(&[package], Some("deny"))?;
    let mut module = dummy_module(&resolve, world, ManglingAndAbi::Legacy(LiftLowerAbi::Sync));
    embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)?;
    ComponentEncoder::default()
        .module(&module)?
        .validate(true)
        .encode()
        .context("encoding the deny component")
}
