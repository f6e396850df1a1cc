//! Answering with a response that came from elsewhere (the next handler of a middleware chain, a
//! storage `GET`) without copying its body through this component.
//!
//! The SDK's conversion turns an `http::Response` back into wasi:http by spawning a task that reads the
//! body in 16 KiB frames into this instance's memory and writes it out again: some 65,000 guest/host
//! round trips per GiB. wasi:http 0.3 bodies are streams, and a stream handle can be handed on: the
//! response is rebuilt with our status and headers around the SAME body stream, and the bytes go from
//! host to host. If the body was already started, the SDK's copying conversion is used instead.
//!
//! Requests are not relayed this way: rebuilding one around the incoming body stream made chunked
//! uploads of several MiB stall in our runner (wasmtime 47), a cause not yet understood.

use spin_sdk::wasip3::http::types::{self, ErrorCode, Fields};
use spin_sdk::wasip3::http_compat::{IncomingResponseBody, http_into_wasi_response};
use spin_sdk::wasip3::{wit_bindgen, wit_future};

fn internal(what: &str, e: impl std::fmt::Debug) -> ErrorCode {
    ErrorCode::InternalError(Some(format!("{what}: {e:?}")))
}

/// Relays the outcome the next handler reports for a body we handed on to the original body's owner.
fn relay(
    transmitted: wit_bindgen::FutureReader<Result<(), ErrorCode>>,
    done: wit_bindgen::FutureWriter<Result<(), ErrorCode>>,
) {
    wit_bindgen::spawn(async move {
        let outcome = transmitted.await;
        let _ = done.write(outcome).await;
    });
}

/// The largest JSON body [`json_or_stream`] gathers; ours are far smaller (pages are bounded).
pub const JSON_GATHER_LIMIT: usize = 4 << 20;

/// For the auth middleware, which answers with the next handler's response: a JSON (or problem+json)
/// body is gathered whole and sent with `Content-Length`; anything else is handed on as a stream
/// ([`response`]). Why: Spin's HTTP server does not set `TCP_NODELAY`, and a handed-on body ends in a
/// write of its own (the chunked terminator, after the data) that waits for the client's ACK of the
/// data, which a keep-alive client delays by some 40 ms: measured under `spin up`, every request
/// through the middleware took 44 ms instead of 2. A whole body with its length is one write.
pub async fn json_or_stream(
    mut parts: http::response::Parts,
    body: IncomingResponseBody,
) -> Result<types::Response, ErrorCode> {
    let json = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            let t = t.split(';').next().unwrap_or("").trim();
            t.eq_ignore_ascii_case("application/json")
                || t.eq_ignore_ascii_case("application/problem+json")
        });
    if !json {
        return response(parts, body);
    }
    use http_body_util::BodyExt;
    let bytes = http_body_util::Limited::new(body, JSON_GATHER_LIMIT)
        .collect()
        .await
        .map_err(|e| internal("gathering the next handler's JSON body", e))?
        .to_bytes();
    parts.headers.remove(http::header::TRANSFER_ENCODING);
    parts.headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(bytes.len()),
    );
    http_into_wasi_response(http::Response::from_parts(
        parts,
        http_body_util::Full::new(bytes),
    ))
}

/// `parts` (a status and headers of our choosing) around `body`, the body stream of a response this
/// component received.
pub fn response(
    parts: http::response::Parts,
    mut body: IncomingResponseBody,
) -> Result<types::Response, ErrorCode> {
    let Some(incoming) = body.take_unstarted() else {
        return http_into_wasi_response(http::Response::from_parts(parts, body));
    };
    let headers = Fields::try_from(parts.headers).map_err(|e| internal("response headers", e))?;
    let (done, done_reader) = wit_future::new(|| Ok(()));
    let (contents, trailers) = types::Response::consume_body(incoming, done_reader);
    let (res, transmitted) = types::Response::new(headers, Some(contents), trailers);
    res.set_status_code(parts.status.as_u16())
        .map_err(|()| internal("status", parts.status))?;
    relay(transmitted, done);
    Ok(res)
}
