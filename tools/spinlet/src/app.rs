//! Loads a manifest into a served application: resolves variables, composes middleware chains, compiles each
//! route's component once (cached on disk by content hash), pre-instantiates it, and serves requests from
//! instances (pooling allocator) with memory and time limits, reusing them as Spin 4 does (see `reuse`).

use crate::allowed_hosts::AllowedHosts;
use crate::compose::{self, Inherit, Middleware};
use crate::host::{self, ComponentConfig, Services, State};
use crate::manifest::{InheritDecl, Manifest, RouteDecl, SourceDecl};
use crate::reuse::{Accept, InstanceReuse, ReusePolicy};
use crate::routes::{Route, Router};
use crate::variables::{AppVariables, ComponentVariables};
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, GuestTaskId, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreContextMut,
};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, Proxy, ProxyHandler, ProxyPre, ShouldAccept, ViewFn, WorkerExpiration,
    WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;

/// How often the epoch ticks: the granularity of time limits and of preempting busy guests.
const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock time a request may take (including streaming its bodies).
    pub request_timeout: Duration,
    /// Largest linear memory one instance may grow to.
    pub max_memory: usize,
    /// Instances alive at once; sizes the pooling allocator.
    pub max_instances: u32,
    /// How instances are reused across requests.
    pub reuse: ReusePolicy,
    /// Bytes of a freed linear memory (and table) reset in place and kept resident for the next instance.
    pub keep_resident: usize,
    /// Largest request body a platform accepts (`None`: no limit), see [`crate::platform`].
    pub max_request_body: Option<u64>,
    /// Largest response body a platform sends (`None`: no limit).
    pub max_response_body: Option<u64>,
}

pub struct App {
    pub name: String,
    pub router: Router<Arc<RouteTarget>>,
    pub limits: Limits,
}

pub struct RouteTarget {
    pub component: String,
    pub handler: ProxyHandler<RouteHandler>,
}

pub struct RouteHandler {
    engine: Engine,
    pre: Arc<ProxyPre<State>>,
    config: Arc<ComponentConfig>,
    services: Arc<Services>,
    limits: Limits,
}

pub fn engine(limits: &Limits) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model_async(true);
    config.epoch_interruption(true);
    // Developer knob: `SPINLET_PROFILE=perfmap` writes /tmp/perf-<pid>.map, so `perf record` on the
    // runner names the guests' compiled functions (where a request's time goes inside a component).
    if std::env::var("SPINLET_PROFILE").is_ok_and(|p| p == "perfmap") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let mut pool = PoolingAllocationConfig::default();
    // A composed chain has a few core instances and memories per component instance.
    pool.total_component_instances(limits.max_instances);
    pool.total_core_instances(limits.max_instances * 16);
    pool.total_memories(limits.max_instances * 8);
    pool.total_tables(limits.max_instances * 16);
    pool.max_memories_per_component(32);
    pool.max_tables_per_component(64);
    pool.max_core_instances_per_component(64);
    pool.max_memory_size(limits.max_memory);
    // Instances come and go all the time (each request's with `--max-instance-reuse-count 1`, else after
    // 128 requests or 1 s idle), so reusing a freed slot is on the request path. By default it is reset with
    // madvise, which on a multi-threaded host is a TLB shootdown on every core, and the next instance
    // faults its pages back in. With `keep_resident`, the pages the instance dirtied (found with the
    // PAGEMAP_SCAN ioctl, Linux 6.7+) are reset in place instead, up to that many bytes.
    pool.pagemap_scan(wasmtime::Enabled::Auto);
    pool.linear_memory_keep_resident(limits.keep_resident);
    pool.table_keep_resident(limits.keep_resident.min(64 << 10));
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)?;
    // Epoch ticker: lets busy guests be preempted and timed out without taking the runner down.
    let weak = engine.weak();
    std::thread::spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(EPOCH_TICK);
        }
    });
    Ok(engine)
}

/// Compiles a component, or loads the machine code compiled for the same bytes and engine settings earlier.
fn load_component(engine: &Engine, bytes: &[u8], cache_dir: Option<&Path>) -> Result<Component> {
    let Some(dir) = cache_dir else {
        return Ok(Component::new(engine, bytes)?);
    };
    let mut compat = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    let key = format!(
        "{}-{:016x}.cwasm",
        hex::encode(Sha256::digest(bytes)),
        compat.finish()
    );
    let path = dir.join(key);
    if path.exists() {
        // SAFETY: the file was written by `Component::serialize` for these exact bytes and engine settings
        // (both are in its name) into the runner's own cache directory.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => return Ok(c),
            Err(e) => eprintln!(
                "spinlet: ignoring unusable cache entry {}: {e}",
                path.display()
            ),
        }
    }
    let component = Component::new(engine, bytes)?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    std::fs::write(&tmp, component.serialize()?)?;
    std::fs::rename(&tmp, &path)?;
    Ok(component)
}

fn read_source(base_dir: &Path, source: &SourceDecl, what: &str) -> Result<Vec<u8>> {
    match source {
        SourceDecl::Path(p) => {
            let path = base_dir.join(p);
            std::fs::read(&path).with_context(|| {
                format!(
                    "reading {what} source {} (did you build it?)",
                    path.display()
                )
            })
        }
        SourceDecl::Remote { url, .. } => {
            bail!("{what}: remote sources ({url}) are not supported by this runner")
        }
    }
}

impl App {
    pub fn load(
        manifest_path: &Path,
        env: impl Fn(&str) -> Option<String>,
        limits: Limits,
        cache_dir: Option<PathBuf>,
    ) -> Result<Self> {
        let manifest = Manifest::load(manifest_path)?;
        let base_dir = manifest_path
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let vars = AppVariables::resolve(&manifest, env)?;
        let engine = engine(&limits)?;
        let services = Arc::new(Services::default());
        let mut linker = Linker::<State>::new(&engine);
        host::add_to_linker(&mut linker)?;

        let mut configs: HashMap<String, Arc<ComponentConfig>> = HashMap::new();
        for (id, decl) in &manifest.component {
            let config = ComponentConfig {
                id: id.clone(),
                allowed_hosts: resolve_allowed_hosts(id, &decl.allowed_outbound_hosts, &vars)?,
                variables: ComponentVariables::resolve(&vars, &decl.variables)
                    .with_context(|| format!("component `{id}`: variables"))?,
                environment: decl
                    .environment
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                memory_high_water: Default::default(),
            };
            configs.insert(id.clone(), Arc::new(config));
        }

        let mut router = Router::new();
        let mut compiled: HashMap<Vec<u8>, Arc<ProxyPre<State>>> = HashMap::new();
        for trigger in &manifest.trigger.http {
            let raw_route = match &trigger.route {
                RouteDecl::Route(r) => r,
                RouteDecl::Private { private: true } => continue,
                RouteDecl::Private { private: false } => {
                    bail!("route must be a string or `{{ private = true }}`")
                }
            };
            let route = Route::parse(manifest.base(), raw_route)?;
            let primary = &manifest.component[&trigger.component];
            let primary_bytes = read_source(
                &base_dir,
                &primary.source,
                &format!("component `{}`", trigger.component),
            )?;
            let mut middlewares = Vec::new();
            for mw in &trigger.dependencies.middleware {
                let (name, bytes) = match (&mw.component, &mw.path) {
                    (Some(c), _) => (
                        c.clone(),
                        read_source(
                            &base_dir,
                            &manifest.component[c].source,
                            &format!("middleware `{c}`"),
                        )?,
                    ),
                    (None, Some(p)) => (
                        p.display().to_string(),
                        read_source(&base_dir, &SourceDecl::Path(p.clone()), "middleware")?,
                    ),
                    (None, None) => unreachable!("checked by Manifest::load"),
                };
                let inherit = match &mw.inherit_configuration {
                    Some(InheritDecl::All(true)) => Inherit::All,
                    Some(InheritDecl::All(false)) | None => Inherit::Some(vec![]),
                    Some(InheritDecl::Some(list)) => Inherit::Some(list.clone()),
                };
                middlewares.push(Middleware {
                    name,
                    bytes,
                    inherit,
                });
            }
            let bytes = compose::compose(&primary_bytes, &middlewares)
                .with_context(|| format!("composing the middleware chain of route {raw_route}"))?;
            // Routes that share a component and chain share its compiled code and pre-instance.
            let pre = match compiled.get(&bytes) {
                Some(pre) => pre.clone(),
                None => {
                    let component = load_component(&engine, &bytes, cache_dir.as_deref())
                        .with_context(|| format!("compiling the component of route {raw_route}"))?;
                    let instance_pre = linker
                        .instantiate_pre(&component)
                        .map_err(anyhow::Error::from)
                        .with_context(|| format!("linking component `{}`", trigger.component))?;
                    let pre = Arc::new(ProxyPre::P3(ServicePre::new(instance_pre).map_err(anyhow::Error::from).with_context(|| {
                        format!("component `{}` does not export wasi:http/handler@0.3.0 (a Spin 4 / WASI P3 HTTP component)", trigger.component)
                    })?));
                    compiled.insert(bytes, pre.clone());
                    pre
                }
            };
            let handler = RouteHandler {
                engine: engine.clone(),
                pre,
                config: configs[&trigger.component].clone(),
                services: services.clone(),
                limits: limits.clone(),
            };
            let target = Arc::new(RouteTarget {
                component: trigger.component.clone(),
                handler: ProxyHandler::new(handler),
            });
            if let Some(replaced) = router.add(route, target) {
                eprintln!(
                    "spinlet: warning: route {replaced} is declared twice; the later declaration wins"
                );
            }
        }
        Ok(Self {
            name: manifest.application.name.clone(),
            router,
            limits,
        })
    }
}

impl HandlerState for RouteHandler {
    type StoreData = State;
    type WorkerExpiration = Expiration;
    type WorkerState = Reuse;

    async fn instantiate(&self) -> wasmtime::Result<Instance<State, Expiration, Reuse>> {
        let state = State::new(
            self.config.clone(),
            self.services.clone(),
            self.limits.max_memory,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Yield to the executor at every tick so a busy guest cannot starve the runner or its timeouts.
        store.epoch_deadline_async_yield_and_update(1);
        let proxy: Proxy = self.pre.instantiate_async(&mut store).await?;
        let reuse = self.limits.reuse.draw();
        Ok(Instance {
            store,
            proxy,
            view: ViewFn::P3(State::http_view),
            expiration: Expiration::new(reuse.idle_timeout, self.limits.request_timeout),
            state: Reuse {
                reuse,
                timeout: self.limits.request_timeout,
                component: self.config.id.clone(),
            },
        })
    }
}

/// One instance's share of requests (Spin 4's reuse rules, see `reuse`), and each request's time limit.
pub struct Reuse {
    reuse: InstanceReuse,
    timeout: Duration,
    component: String,
}

impl WorkerState for Reuse {
    type StoreData = State;
    type RequestId = ();

    fn should_accept_request(&self, running: usize, served: usize) -> ShouldAccept {
        match self.reuse.accept(running, served) {
            Accept::Yes => ShouldAccept::Yes,
            Accept::NotNow => ShouldAccept::No,
            Accept::Never => ShouldAccept::Never,
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, State>,
        _id: (),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        Box::pin(tokio::time::sleep(self.timeout))
    }

    fn drop(&self, _store: Store<State>, result: wasmtime::Result<()>) {
        if let Err(e) = result {
            eprintln!("spinlet: component `{}` failed: {e:#}", self.component);
        }
    }
}

/// Ends an instance that stayed idle for its idle timeout, or whose requests outlived the request timeout
/// (wasmtime's second line of defence when a guest keeps the store busy, see `WorkerState`).
pub struct Expiration {
    idle: Duration,
    request: Duration,
    timer: Option<(Instant, Pin<Box<tokio::time::Sleep>>)>,
}

impl Expiration {
    fn new(idle: Duration, request: Duration) -> Self {
        Self {
            idle,
            request,
            timer: None,
        }
    }
}

impl WorkerExpiration for Expiration {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        state: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let this = self.get_mut();
        let limit = match state {
            WorkerStatus::Idle => this.idle,
            WorkerStatus::Requests | WorkerStatus::PostReturn => this.request,
        };
        let Some(deadline) = start.checked_add(limit) else {
            return Poll::Pending;
        };
        if this.timer.as_ref().is_none_or(|(d, _)| *d != deadline) {
            this.timer = Some((
                deadline,
                Box::pin(tokio::time::sleep_until(deadline.into())),
            ));
        }
        let (_, timer) = this.timer.as_mut().expect("set above");
        timer.as_mut().poll(cx)
    }
}
/// A component's `allowed_outbound_hosts` as Spin resolves it. A literal entry that does not parse is a
/// startup error. An entry built from variables is resolved with their values: one that comes out empty
/// is skipped (an optional endpoint), and one that does not parse (a path in `s3_endpoint`, say) makes
/// Spin refuse every outbound connection of the component, at each call, while the app runs on; so does
/// the runner, with one warning line at start.
fn resolve_allowed_hosts(
    id: &str,
    templates: &[String],
    vars: &AppVariables,
) -> Result<AllowedHosts> {
    let mut resolved = Vec::new();
    let mut templated_error = None;
    for template in templates {
        let entry = vars
            .expand(template)
            .with_context(|| format!("component `{id}`: allowed_outbound_hosts"))?;
        let from_variables = template.contains("{{");
        if from_variables && entry.trim().is_empty() {
            continue;
        }
        match AllowedHosts::parse(std::slice::from_ref(&entry)) {
            Ok(_) => resolved.push(entry),
            Err(e) if from_variables => {
                templated_error.get_or_insert(format!("{template:?} resolves to {e:#}"));
            }
            Err(e) => return Err(e.context(format!("component `{id}`: allowed_outbound_hosts"))),
        }
    }
    if let Some(e) = templated_error {
        eprintln!(
            "spinlet: component `{id}`: allowed_outbound_hosts: {e}; as under Spin, every outbound \
             connection of this component will be refused"
        );
        return Ok(AllowedHosts::default());
    }
    AllowedHosts::parse(&resolved).with_context(|| format!("component `{id}`"))
}
