//! The `console` component: the attachment console, a single-page app (web/console, built by Vite)
//! compiled into the component and served from memory.
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET`, `HEAD /` | anyone | the page (`index.html`): revalidated by `ETag`, with the CSP |
//! | `GET`, `HEAD /assets/{file}` | anyone | a hashed script or style: cached a year, `immutable` |
//!
//! The decisions (which asset, `304`, headers, the policy) are `crates/static-site`'s; this is the
//! shell. The page calls the API on its own origin; `console_connect_src` names the storage origins
//! the browser sends direct-upload parts to (the CSP's `connect-src`).

use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::Full;
use problem::{Problem, RequestId};
use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_service;
use static_site::{Answer, Site};

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

static SITE: Site = Site {
    index: &INDEX,
    assets: &ASSETS,
};

static CSP: OnceLock<String> = OnceLock::new();

async fn variable(name: &str) -> anyhow::Result<String> {
    Ok(spin_sdk::variables::get(name).await?)
}

async fn csp() -> Result<&'static str, String> {
    if let Some(c) = CSP.get() {
        return Ok(c);
    }
    let connect = variable("console_connect_src")
        .await
        .map_err(|e| format!("console_connect_src: {e}"))?;
    let origins =
        static_site::origins(&connect).map_err(|e| format!("console_connect_src: {e}"))?;
    Ok(CSP.get_or_init(|| static_site::content_security_policy(&origins)))
}

#[http_service]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let request_id =
        RequestId::from_client(req.headers().get("x-request-id").map(|v| v.as_bytes()));
    let inm = req
        .headers()
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let answer = static_site::answer(&SITE, req.method(), req.uri().path(), inm);
    let policy = match csp().await {
        Ok(p) => p,
        Err(why) => {
            // A deployment error: said once in the log, never to the client.
            eprintln!("console: misconfigured: {why}");
            return Ok(problem_response(
                Problem::new(problem::Code::Misconfigured),
                &request_id,
            ));
        }
    };
    Ok(match answer {
        Answer::Asset { asset, head } => {
            let mut b = http::Response::builder()
                .status(200)
                .header("x-request-id", request_id.as_str());
            for (k, v) in static_site::headers(&SITE, asset, policy) {
                b = b.header(k, v);
            }
            b = b.header("content-length", asset.body.len());
            b.body(Full::new(if head {
                Bytes::new()
            } else {
                Bytes::from_static(asset.body)
            }))?
        }
        Answer::NotModified { asset } => {
            let mut b = http::Response::builder()
                .status(304)
                .header("x-request-id", request_id.as_str());
            for (k, v) in static_site::headers(&SITE, asset, policy) {
                if k != "content-type" {
                    b = b.header(k, v);
                }
            }
            b.body(Full::new(Bytes::new()))?
        }
        Answer::Problem(p) => problem_response(p, &request_id),
    })
}

fn problem_response(p: Problem, request_id: &RequestId) -> Response<Full<Bytes>> {
    let mut b = http::Response::builder()
        .status(p.status())
        .header("content-type", "application/problem+json")
        .header("x-request-id", request_id.as_str())
        .header("x-content-type-options", "nosniff")
        .header("cache-control", "no-store");
    if p.status() == 405 {
        b = b.header("allow", static_site::ALLOW);
    }
    b.body(Full::new(Bytes::from(p.to_json(request_id))))
        .expect("valid response")
}
