//! The one service shell of every HTTP component (feature `spin`). A component implements
//! [`Component`] (its name, its configuration loaded once per instance, and one `handle` that
//! dispatches on the [`Endpoint`]) and its `#[http_service]` is a single call to [`serve`]. The
//! shell owns what every request needs, in this order:
//!
//! 1. the request id (`x-request-id` from the middleware or runner when sane, else a fresh one) and
//!    the one JSON log line, written whatever happens;
//! 2. the endpoint, from the route table ([`crate::routes::resolve`]): `404`, `405` + `Allow`, or
//!    `400 invalid_id` before any component code runs;
//! 3. for routes behind the auth middleware, the caller, from the MAC'd `x-auth-context` and from
//!    nothing else (`401`), with the route's role checked again (`403`); the log line and the request
//!    id then follow the caller's;
//! 4. the client's address, from the header `client_ip_source` names (parsed once per instance,
//!    see [`crate::client`]), for every handler alike ([`Call::client_ip`]);
//! 5. the configuration, loaded and validated once per instance (a bad value is a logged `500`);
//! 6. the one place an [`ApiError`] becomes `application/problem+json`: a handler never returns
//!    `Err` to Spin, which would answer an empty `500`.

use std::future::Future;
use std::net::IpAddr;
use std::sync::OnceLock;

use auth_core::{AuthContext, ContextKey};
use http::HeaderMap;
use problem::{Problem, RequestId};
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::wasip3::http::types;

use crate::client::{self, ClientIpSource};
use crate::log::RequestLog;
use crate::routes::{self, Access, Endpoint, Matched};
use crate::spin::variable;
use crate::{ApiError, response};

/// What a handler answers.
pub enum Reply {
    /// A complete, small answer (JSON, problem, empty).
    Small(http::Response<String>),
    /// A streamed answer, already converted, and its status (for the log line).
    Streamed(u16, types::Response),
}

impl From<http::Response<String>> for Reply {
    fn from(res: http::Response<String>) -> Self {
        Self::Small(res)
    }
}

/// One request as the shell has prepared it for the handler.
pub struct Call {
    /// The endpoint and the path's id.
    pub matched: Matched,
    /// The id answered in `x-request-id` (the caller's, once authenticated).
    pub request_id: RequestId,
    /// The request's log line; handlers add a `reason` or a cause.
    pub log: RequestLog,
    caller: Option<AuthContext>,
    client: Option<IpAddr>,
}

impl Call {
    /// The path's id (`{id}`, `{messageId}`).
    pub fn id(&self) -> Result<uuid::Uuid, ApiError> {
        self.matched.id()
    }

    /// The client's address per `client_ip_source`; `None` when that source said nothing usable.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client
    }

    /// The client's address as audit rows record it.
    pub fn client_addr(&self) -> Option<String> {
        self.client.map(|ip| ip.to_string())
    }

    /// What per-address rate limits count the client as (`/64` for IPv6, `unknown` when unknown).
    pub fn client_subject(&self) -> String {
        client::rate_limit_subject(self.client)
    }

    /// The authenticated caller of a route behind the middleware; `500` on a public route (a
    /// programming error: the table says nobody was authenticated).
    pub fn caller(&self) -> Result<&AuthContext, ApiError> {
        self.caller.as_ref().ok_or_else(|| {
            ApiError::internal(format!(
                "{:?} has no authenticated caller",
                self.matched.endpoint
            ))
        })
    }
}

/// A component of the API.
pub trait Component: 'static {
    /// Its name in `spin.toml` and in the route table.
    const NAME: &'static str;
    /// Its configuration.
    type Config: Send + Sync + 'static;

    /// Where the configuration is kept once loaded (a `static` of the component).
    fn config_slot() -> &'static OnceLock<Self::Config>;

    /// Reads and validates the configuration (component variables).
    fn load_config() -> impl Future<Output = Result<Self::Config, ApiError>>;

    /// Answers one request.
    fn handle(
        req: Request,
        call: &mut Call,
        config: &'static Self::Config,
    ) -> impl Future<Output = Result<Reply, ApiError>>;

    /// A chance to answer before routing, e.g. a CORS preflight on a public route. `None` goes on.
    fn before_routing(
        _req: &Request,
        _request_id: &RequestId,
    ) -> impl Future<Output = Option<Result<Reply, ApiError>>> {
        async { None }
    }

    /// Headers added to every small answer, errors included (e.g. CORS on public routes). `path`
    /// is the request's (the endpoint may be unknown: a `404` or `405` is decorated too).
    fn decorate(_path: &str, _request_headers: &HeaderMap, _response_headers: &mut HeaderMap) {}
}

/// The configuration, loaded on first use and kept for the instance's life.
pub async fn config<C: Component>() -> Result<&'static C::Config, ApiError> {
    if let Some(c) = C::config_slot().get() {
        return Ok(c);
    }
    let loaded = C::load_config().await?;
    Ok(C::config_slot().get_or_init(|| loaded))
}

static CONTEXT_KEY: OnceLock<ContextKey> = OnceLock::new();
static CLIENT_IP_SOURCE: OnceLock<ClientIpSource> = OnceLock::new();

/// Where the client's address comes from (`client_ip_source`), parsed once. A bad value is a
/// deployment error: a logged `500`, as for any configuration.
pub async fn client_ip_source() -> Result<ClientIpSource, ApiError> {
    if let Some(s) = CLIENT_IP_SOURCE.get() {
        return Ok(*s);
    }
    let s: ClientIpSource = variable("client_ip_source")
        .await?
        .parse()
        .map_err(|e| ApiError::bad_setting("client_ip_source", e))?;
    Ok(*CLIENT_IP_SOURCE.get_or_init(|| s))
}

/// The middleware hand-off key (`auth_context_key`), loaded once.
async fn context_key() -> Result<&'static ContextKey, ApiError> {
    if let Some(k) = CONTEXT_KEY.get() {
        return Ok(k);
    }
    let k = ContextKey::from_config(&variable("auth_context_key").await?)?;
    Ok(CONTEXT_KEY.get_or_init(|| k))
}

/// Serves one request of component `C`.
pub async fn serve<C: Component>(req: Request) -> anyhow::Result<types::Response> {
    let rid = crate::inner::request_id(req.headers());
    let path = req.uri().path().to_owned();
    // Never the query: a content URL's query is its credential.
    let log = RequestLog::start(C::NAME, rid.as_str(), req.method().as_str(), &path);
    let request_headers = req.headers().clone();
    let mut call = Call {
        matched: Matched {
            endpoint: Endpoint::Login,
            id: None,
        },
        request_id: rid,
        log,
        caller: None,
        client: None,
    };
    let outcome = match C::before_routing(&req, &call.request_id).await {
        Some(early) => early,
        None => route::<C>(req, &path, &mut call).await,
    };
    let mut res = match outcome {
        Ok(Reply::Streamed(status, res)) => {
            call.log.request_id = call.request_id.as_str().to_owned();
            call.log.emit(status);
            return Ok(res);
        }
        Ok(Reply::Small(res)) => res,
        Err(e) => {
            call.log.record_error(&e);
            e.into_response(&call.request_id)
        }
    };
    C::decorate(&path, &request_headers, res.headers_mut());
    response::set_request_id(&mut res, &call.request_id);
    call.log.request_id = call.request_id.as_str().to_owned();
    call.log.emit(res.status().as_u16());
    res.into_response()
        .map_err(|e| anyhow::anyhow!("response: {e:?}"))
}

async fn route<C: Component>(req: Request, path: &str, call: &mut Call) -> Result<Reply, ApiError> {
    call.matched = routes::resolve(C::NAME, req.method(), path)?;
    if let Access::Role(required) = call.matched.endpoint.access() {
        let ctx =
            crate::inner::authenticate(req.headers(), context_key().await?, auth_core::unix_now())?;
        call.log.user_id = Some(ctx.user.to_string());
        call.log.tenant_id = Some(ctx.tenant.to_string());
        call.log.role = Some(ctx.role.as_str());
        call.request_id = RequestId::from_client(Some(ctx.request_id.as_bytes()));
        // The middleware checked the role already; a route reached without it must not pass.
        if !ctx.role.satisfies(required) {
            return Err(ApiError::new(Problem::forbidden()));
        }
        call.caller = Some(ctx);
    }
    call.client = client_ip_source().await?.client_ip(req.headers());
    let config = config::<C>().await?;
    C::handle(req, call, config).await
}
