//! Per-request store state and the host interfaces Spin gives components: WASI (p2 + p3), `wasi:http`
//! (inbound handler, outbound client restricted to `allowed_outbound_hosts`), `spin:variables@3.0.0`,
//! `spin:postgres@4.2.0` and `spin:redis@3.0.0`. Bindings are generated from the WIT the `spin-sdk` crate
//! ships (see build.rs), never from a copy.

pub mod memory;
pub mod pg;
pub mod redis;

use crate::allowed_hosts::AllowedHosts;
use crate::variables::ComponentVariables;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use std::sync::Arc;
use wasmtime::component::{Accessor, HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p3::{RequestOptions, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

#[allow(clippy::all, missing_docs)]
pub mod bindings {
    include!(concat!(env!("OUT_DIR"), "/spin_bindings.rs"));
}

use bindings::spin::variables::variables as vars;

/// What a component instance is allowed to do: fixed at startup from the manifest.
pub struct ComponentConfig {
    pub id: String,
    pub allowed_hosts: AllowedHosts,
    pub variables: ComponentVariables,
    pub environment: Vec<(String, String)>,
    /// The most linear memory any instance of this component (with its middleware) has held.
    pub memory_high_water: memory::HighWater,
}

/// Connections shared by every instance (pools), created once.
#[derive(Default)]
pub struct Services {
    pub pg: Arc<pg::PgPools>,
    pub redis: Arc<redis::RedisClients>,
}

/// The data of one store: one request's instance.
pub struct State {
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub outbound: OutboundHttp,
    pub limits: memory::MemoryLimiter,
    pub component: Arc<ComponentConfig>,
    pub services: Arc<Services>,
}

impl State {
    pub fn new(
        component: Arc<ComponentConfig>,
        services: Arc<Services>,
        max_memory: usize,
    ) -> Self {
        let mut wasi = WasiCtxBuilder::new();
        // Guest output goes to the runner's stderr: stdout carries the runner's structured request log.
        wasi.stdout(wasmtime_wasi::cli::stderr()).inherit_stderr();
        for (k, v) in &component.environment {
            wasi.env(k, v);
        }
        Self {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            outbound: OutboundHttp {
                component: component.clone(),
            },
            limits: memory::MemoryLimiter::new(max_memory, component.clone()),
            component,
            services,
        }
    }

    pub fn http_view(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.outbound,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.http_view()
    }
}

/// Outbound `wasi:http`: only to hosts the component's `allowed_outbound_hosts` names.
pub struct OutboundHttp {
    component: Arc<ComponentConfig>,
}

type SendResult = Result<
    (
        http::Response<UnsyncBoxBody<Bytes, ErrorCode>>,
        Box<dyn Future<Output = Result<(), ErrorCode>> + Send>,
    ),
    wasmtime_wasi::TrappableError<ErrorCode>,
>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<UnsyncBoxBody<Bytes, ErrorCode>>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), ErrorCode>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let allowed = uri.host().is_some_and(|host| {
            self.component
                .allowed_hosts
                .allows(&scheme, host, uri.port_u16())
        });
        if !allowed {
            let target = format!(
                "{scheme}://{}",
                uri.authority().map(|a| a.as_str()).unwrap_or("")
            );
            eprintln!(
                "spinlet: component `{}` denied outbound request to {target}: not in allowed_outbound_hosts",
                self.component.id
            );
            return Box::new(async { Err(ErrorCode::HttpRequestDenied.into()) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) =
                wasmtime_wasi_http::p3::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

impl vars::Host for State {}

impl<T: Send> vars::HostWithStore<T> for HasSelf<State> {
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, vars::Error>> {
        if crate::manifest::check_variable_name(&name).is_err() {
            return Ok(Err(vars::Error::InvalidName(name)));
        }
        Ok(accessor.with(
            |mut access| match access.get().component.variables.get(&name) {
                Some(v) => Ok(v.to_string()),
                None => Err(vars::Error::Undefined(format!(
                    "no variable named `{name}` for this component"
                ))),
            },
        ))
    }
}

pub fn add_to_linker(linker: &mut Linker<State>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi::p3::add_to_linker(linker)?;
    wasmtime_wasi_http::p3::add_to_linker(linker)?;
    bindings::Host_::add_to_linker::<State, HasSelf<State>>(linker, |s| s)?;
    Ok(())
}
