// Sending a body with upload progress: XMLHttpRequest where there is one (browsers: fetch reports
// no upload progress), else fetch, which reports the whole body as sent once it is answered.
import { ApiProblem } from "./problem";

export interface Sent {
  status: number;
  headers: { get(name: string): string | null };
  text: string;
}

export interface SendOptions {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: Blob;
  signal?: AbortSignal;
  /** Bytes of `body` sent so far. */
  onProgress?: (sent: number) => void;
}

export type Transport = "xhr" | "fetch";

export function defaultTransport(): Transport {
  return typeof XMLHttpRequest === "function" && typeof window !== "undefined" ? "xhr" : "fetch";
}

export function send(transport: Transport, opts: SendOptions, fetchImpl: typeof fetch): Promise<Sent> {
  return transport === "xhr" ? sendXhr(opts) : sendFetch(opts, fetchImpl);
}

async function sendFetch(opts: SendOptions, fetchImpl: typeof fetch): Promise<Sent> {
  if (opts.signal?.aborted) throw ApiProblem.aborted();
  let res: Response;
  try {
    res = await fetchImpl(opts.url, { method: opts.method, headers: opts.headers, body: opts.body, signal: opts.signal });
  } catch (e) {
    throw opts.signal?.aborted ? ApiProblem.aborted() : ApiProblem.network(e);
  }
  const text = await res.text().catch(() => "");
  if (res.ok) opts.onProgress?.(opts.body.size);
  return { status: res.status, headers: res.headers, text };
}

function sendXhr(opts: SendOptions): Promise<Sent> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(ApiProblem.aborted());
    const xhr = new XMLHttpRequest();
    xhr.open(opts.method, opts.url);
    for (const [k, v] of Object.entries(opts.headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => opts.onProgress?.(e.loaded);
    const onAbort = () => xhr.abort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const done = () => opts.signal?.removeEventListener("abort", onAbort);
    xhr.onload = () => {
      done();
      if (xhr.status >= 200 && xhr.status < 300) opts.onProgress?.(opts.body.size);
      resolve({
        status: xhr.status,
        headers: { get: (name: string) => xhr.getResponseHeader(name) },
        text: xhr.responseText,
      });
    };
    xhr.onerror = () => {
      done();
      reject(ApiProblem.network(new Error("connection failed")));
    };
    xhr.onabort = () => {
      done();
      reject(ApiProblem.aborted());
    };
    xhr.send(opts.body);
  });
}
