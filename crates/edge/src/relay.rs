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
