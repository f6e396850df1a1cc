// Shared body of the fixture middlewares. On the way in it appends its NAME to `x-chain`; on the way out it
// appends NAME to `x-chain-response` and wraps the streamed body as `NAME(<inner body>)`, so a test can see
// both directions and their order. `/inherit-probe` and `/deny-probe` paths make it read a variable, to show
// which middleware inherits the primary's configuration.
use futures::{SinkExt, StreamExt};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_service;

#[http_service]
async fn handle(request: Request) -> anyhow::Result<impl IntoResponse> {
    let (mut parts, body) = request.into_parts();
    parts.headers.remove("host");
    parts.headers.remove("connection");
    let chain = match parts.headers.get("x-chain").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev},{NAME}"),
        None => NAME.to_string(),
    };
    parts.headers.insert("x-chain", chain.parse()?);
    let path = parts.uri.path().to_string();
    if path.ends_with(&format!("/{NAME}-variable-probe")) {
        // Traps when this middleware does not inherit `variables` (the runner plugs a deny component).
        let value = spin_sdk::variables::get("greeting").await?;
        parts.headers.insert("x-probe", value.parse()?);
    }
    let response = spin_sdk::http::next(Request::from_parts(parts, body)).await?;
    let (mut parts, body) = response.into_parts();
    let chain = match parts.headers.get("x-chain-response").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev},{NAME}"),
        None => NAME.to_string(),
    };
    parts.headers.insert("x-chain-response", chain.parse()?);
    parts.headers.remove("content-length");
    let mut inner = body.stream();
    let (mut tx, wrapped) = spin_sdk::http::body::stream::<bytes::Bytes>();
    spin_sdk::wasip3::spawn(async move {
        if tx.send(bytes::Bytes::from(format!("{NAME}("))).await.is_err() {
            return;
        }
        while let Some(Ok(chunk)) = inner.next().await {
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
        let _ = tx.send(bytes::Bytes::from_static(b")")).await;
    });
    Ok(Response::from_parts(parts, wrapped))
}
