//! The HTTP front: accepts connections, routes each request, adds the headers Spin gives components, runs the
//! route's handler with both bodies streaming, and writes one JSON log line per request when its response
//! body has finished (or the client went away).

use crate::app::App;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::net::TcpListener;
use wasmtime_wasi_http::handler::{ErrorCode, ExpirationError};
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode as P3ErrorCode;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

pub const HEALTH_PATH: &str = "/.well-known/spin/health";

pub async fn serve(app: Arc<App>, listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("spinlet: accept failed: {e}");
                continue;
            }
        };
        // TCP_NODELAY, unlike Spin's HTTP server (a known difference): without it this runner's own
        // writes stall on delayed ACKs where Spin's do not (p99 38 ms on a trivial route, measured),
        // which would hide real differences behind its own. What Spin's lack of it costs (a handed-on
        // body's chunked terminator waiting ~40 ms for the client's ACK, `edge::relay`) is measured by
        // the benchmarks under `spin up`.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(app.clone(), req, client));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                if !e.is_incomplete_message() {
                    eprintln!("spinlet: connection from {client}: {e}");
                }
            }
        });
    }
}

/// A response of the runner's own, its whole body at once.
fn whole(status: StatusCode, body: Bytes) -> Response<ResponseBody> {
    let mut res = Response::new(
        Full::new(body)
            .map_err(|e: Infallible| match e {})
            .boxed_unsync(),
    );
    *res.status_mut() = status;
    res
}

fn empty(status: StatusCode) -> Response<ResponseBody> {
    whole(status, Bytes::new())
}

/// A platform's own answer to a crossed limit of `max` bytes: logged with `why`, and plain text
/// naming the limit (`what`: which body).
fn platform_refusal(
    log: &mut LogLine,
    status: StatusCode,
    why: String,
    what: &str,
    max: u64,
) -> Response<ResponseBody> {
    log.status = status.as_u16();
    log.emit(0, Some(why));
    let mut res = whole(
        status,
        Bytes::from(format!(
            "{what} larger than the platform allows ({max} bytes)"
        )),
    );
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// A request body under a platform's cap: past `max` bytes it ends for the component with an error
/// (as the platform would cut it off) and `over` tells the server to answer `413` itself.
struct CappedRequestBody<B> {
    inner: B,
    read: u64,
    max: u64,
    over: Arc<std::sync::atomic::AtomicBool>,
}

impl<B> Body for CappedRequestBody<B>
where
    B: Body<Data = Bytes, Error = ErrorCode> + Unpin,
{
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.read += data.len() as u64;
            if self.read > self.max {
                self.over.store(true, std::sync::atomic::Ordering::Relaxed);
                return Poll::Ready(Some(Err(ErrorCode::from(
                    P3ErrorCode::HttpRequestBodySize(Some(self.read)),
                ))));
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Ids the runner accepts from clients for its log; anything else is replaced.
fn sane_request_id(value: &HeaderValue) -> bool {
    let v = value.as_bytes();
    (1..=128).contains(&v.len())
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

async fn handle(
    app: Arc<App>,
    mut req: Request<Incoming>,
    client: SocketAddr,
) -> Result<Response<ResponseBody>, Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let request_id = match req.headers().get("x-request-id") {
        Some(v) if sane_request_id(v) => v.to_str().unwrap_or_default().to_string(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let mut log = LogLine {
        started: Some(started),
        method: method.to_string(),
        path: path.clone(),
        request_id: request_id.clone(),
        client: Some(client),
        ..Default::default()
    };

    if path == HEALTH_PATH {
        // As Spin answers it: `OK`, no Content-Type.
        return Ok(whole(StatusCode::OK, Bytes::from_static(b"OK")));
    }
    let Some(matched) = app.router.route(&path) else {
        log.status = 404;
        log.emit(0, None);
        return Ok(empty(StatusCode::NOT_FOUND));
    };
    let target = matched.target.clone();
    log.component = target.component.clone();
    log.route = matched.route.based.clone();

    // A platform's request cap, judged from the declared length before the component runs.
    if let Some(max) = app.limits.max_request_body {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max) {
            return Ok(platform_refusal(
                &mut log,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over the platform's {max} bytes"),
                "request body",
                max,
            ));
        }
    }

    // Spin's request headers, as Spin's HTTP trigger sets them: the client's headers are kept as
    // sent, `spin-*` ones included, and Spin's own are APPENDED after them. A client-sent
    // `spin-client-addr` therefore arrives first and Spin's value last; components must read the
    // last one (`edge::client`). Only `Connection` goes (transport information).
    let headers = req.headers_mut();
    headers.remove(header::CONNECTION);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let full_url = format!("http://{host}{path_and_query}");
    let mut spin_headers: Vec<(String, String)> = vec![
        ("spin-full-url".into(), full_url.clone()),
        ("spin-path-info".into(), matched.path_info.clone()),
        ("spin-matched-route".into(), matched.route.based.clone()),
        ("spin-base-path".into(), "/".into()),
        ("spin-raw-component-route".into(), matched.route.raw.clone()),
        (
            "spin-component-route".into(),
            matched.route.component_route().to_string(),
        ),
        ("spin-client-addr".into(), client.to_string()),
    ];
    for (name, value) in &matched.params {
        spin_headers.push((
            // Spin names it SPIN_PATH_MATCH_<NAME> and turns `_` into `-` in every header name.
            format!(
                "spin-path-match-{}",
                name.to_ascii_lowercase().replace('_', "-")
            ),
            value.clone(),
        ));
    }
    let headers = req.headers_mut();
    for (name, value) in spin_headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.append(n, v);
        }
    }
    if !headers.contains_key("x-request-id")
        || !headers.get("x-request-id").is_some_and(sane_request_id)
    {
        headers.insert(
            "x-request-id",
            HeaderValue::try_from(request_id.as_str()).expect("uuid is a valid header"),
        );
    }
    match full_url.parse() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => {
            log.status = 400;
            log.emit(0, None);
            return Ok(empty(StatusCode::BAD_REQUEST));
        }
    }

    let over_cap = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let req = req.map(|body| {
        let body = RequestBody::new(body)
            .map_err(|e| ErrorCode::from(P3ErrorCode::InternalError(Some(e.to_string()))));
        match app.limits.max_request_body {
            Some(max) => CappedRequestBody {
                inner: body,
                read: 0,
                max,
                over: over_cap.clone(),
            }
            .boxed_unsync(),
            None => body.boxed_unsync(),
        }
    });
    // The guest runs in its own task: a client that disconnects mid-request drops hyper's service
    // future, and must not cancel the guest with it (it still has to clean up, e.g. abort a
    // multipart upload it started; its request body simply ends with an error).
    let guest = {
        let target = target.clone();
        tokio::spawn(async move { target.handler.handle((), req).await })
    };
    let outcome = match guest.await {
        Ok(outcome) => outcome,
        Err(join) => Err(wasmtime::Error::msg(format!("guest task failed: {join}"))),
    };
    if over_cap.load(std::sync::atomic::Ordering::Relaxed) {
        // The platform cut the body off and answers for itself, whatever the component said.
        let max = app.limits.max_request_body.unwrap_or_default();
        return Ok(platform_refusal(
            &mut log,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body grew past the platform's {max} bytes"),
            "request body",
            max,
        ));
    }
    match outcome {
        Ok(res) => {
            let (parts, body) = res.into_parts();
            log.status = parts.status.as_u16();
            if let Some(id) = parts
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
            {
                log.request_id = id.to_string();
            }
            // hyper stops polling once Content-Length bytes are out (and never polls for HEAD), so the
            // body's end is judged from the declared length, not only from an end-of-stream frame.
            // 204 and 304 never have a body: hyper does not poll it either.
            let bodiless = method == http::Method::HEAD
                || parts.status == StatusCode::NO_CONTENT
                || parts.status == StatusCode::NOT_MODIFIED;
            let expected = if bodiless {
                Some(0)
            } else {
                parts
                    .headers
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok())
            };
            if let (Some(max), Some(n)) = (app.limits.max_response_body, expected)
                && n > max
            {
                return Ok(platform_refusal(
                    &mut log,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("response body of {n} bytes over the platform's {max}"),
                    "response body",
                    max,
                ));
            }
            let body = LoggedBody {
                inner: body
                    .map_err(|e| -> BoxError { e.to_string().into() })
                    .boxed_unsync(),
                log: Some(log),
                bytes: 0,
                expected,
                max: app.limits.max_response_body,
            };
            Ok(Response::from_parts(parts, body.boxed_unsync()))
        }
        Err(e) => {
            // A busy guest is stopped by expiring its whole instance, which surfaces as a worker failure
            // rather than `ExpirationError`: a request that failed at its time limit is a timeout either way.
            let timed_out =
                e.is::<ExpirationError>() || started.elapsed() >= app.limits.request_timeout;
            let status = if timed_out {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            log.status = status.as_u16();
            log.emit(0, Some(format!("{e:#}")));
            Ok(empty(status))
        }
    }
}

#[derive(Default)]
struct LogLine {
    started: Option<Instant>,
    method: String,
    path: String,
    route: String,
    component: String,
    status: u16,
    request_id: String,
    client: Option<SocketAddr>,
}

impl LogLine {
    fn emit(&self, bytes: u64, error: Option<String>) {
        let duration = self
            .started
            .map(|s| s.elapsed().as_secs_f64() * 1000.0)
            .unwrap_or_default();
        let line = serde_json::json!({
            "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "requestId": self.request_id,
            "method": self.method,
            "path": self.path,
            "route": self.route,
            "component": self.component,
            "status": self.status,
            "durationMs": (duration * 1000.0).round() / 1000.0,
            "bytesOut": bytes,
            "client": self.client.map(|c| c.to_string()),
            "error": error,
        });
        println!("{line}");
    }
}

/// Frames of request body read ahead of the guest (hyper hands over at most its read buffer per frame,
/// a few hundred KiB): memory stays bounded per request.
const READ_AHEAD_FRAMES: usize = 4;

type Frames = tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, hyper::Error>>;

/// The request body as the guest sees it, read from the connection by a task of its own.
///
/// - Read-ahead: from the guest's first read on, the next frames are read from the socket while the
///   guest is still busy with the previous ones (hashing, uploading), instead of only when it asks; at
///   most [`READ_AHEAD_FRAMES`]. Before that first read nothing is read (so no `100 Continue` is sent).
/// - Early answers close the connection, as under `spin up`: a guest that answers before reading the whole
///   body (413 on an oversized upload, 415 on an executable at its first bytes) drops the rest unread, and
///   so does this reader; hyper then sends the answer and closes the connection instead of reading on. A
///   client still sending may see the connection reset rather than the answer, exactly as in production:
///   clients that want the answer send `Expect: 100-continue` (hyper sends `100 Continue` only once the
///   guest reads the body, so an early answer arrives before any of it is sent) or check sizes first.
struct RequestBody {
    source: Source,
    /// What is still to come, if the client declared it.
    remaining: Option<u64>,
}

enum Source {
    /// Not read yet: nothing is taken from the socket (nor `100 Continue` sent) until the guest reads,
    /// as under Spin.
    Unread(Incoming),
    /// Read ahead by a task of its own.
    Reading(Frames),
    Done,
}

impl RequestBody {
    fn new(incoming: Incoming) -> Self {
        let remaining = incoming.size_hint().exact();
        let source = if incoming.is_end_stream() {
            Source::Done
        } else {
            Source::Unread(incoming)
        };
        Self { source, remaining }
    }
}

/// Reads `incoming` up to [`READ_AHEAD_FRAMES`] ahead of the guest, until the guest drops the body.
fn read_ahead(mut incoming: Incoming) -> Frames {
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD_FRAMES);
    tokio::spawn(async move {
        while let Some(frame) = incoming.frame().await {
            let failed = frame.is_err();
            if tx.send(frame).await.is_err() {
                // The guest dropped the body: so do we (see "Early answers").
                return;
            }
            if failed {
                return;
            }
        }
    });
    rx
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if matches!(self.source, Source::Unread(_)) {
            let Source::Unread(incoming) = std::mem::replace(&mut self.source, Source::Done) else {
                unreachable!("checked above");
            };
            self.source = Source::Reading(read_ahead(incoming));
        }
        let Source::Reading(frames) = &mut self.source else {
            return Poll::Ready(None);
        };
        let polled = frames.poll_recv(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(left), Some(data)) = (self.remaining.as_mut(), frame.data_ref()) {
                    *left = left.saturating_sub(data.len() as u64);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.source = Source::Done,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.source, Source::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.source, self.remaining) {
            (Source::Done, _) => SizeHint::with_exact(0),
            (_, Some(n)) => SizeHint::with_exact(n),
            (_, None) => SizeHint::default(),
        }
    }
}

/// Wraps a response body to count what was sent and log the request when it ends.
struct LoggedBody {
    inner: ResponseBody,
    log: Option<LogLine>,
    bytes: u64,
    /// The declared length (0 for HEAD, 204, 304): reaching it completes the response.
    expected: Option<u64>,
    /// A platform's response cap: the body is cut (an error, the connection closed) past it.
    max: Option<u64>,
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                if let Some(max) = self.max
                    && self.bytes > max
                {
                    let bytes = self.bytes;
                    if let Some(log) = self.log.take() {
                        log.emit(
                            bytes,
                            Some(format!("response body cut at the platform's {max} bytes")),
                        );
                    }
                    return Poll::Ready(Some(Err(format!(
                        "response body larger than the platform allows ({max} bytes)"
                    )
                    .into())));
                }
            }
            Poll::Ready(Some(Err(e))) => {
                let error = Some(format!("response body failed: {e}"));
                let bytes = self.bytes;
                if let Some(log) = self.log.take() {
                    log.emit(bytes, error);
                }
            }
            Poll::Ready(None) => {
                let bytes = self.bytes;
                if let Some(log) = self.log.take() {
                    log.emit(bytes, None);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            let complete = self.expected.is_some_and(|n| self.bytes >= n);
            let error =
                (!complete).then(|| "client went away before the response body ended".to_string());
            log.emit(self.bytes, error);
        }
    }
}
