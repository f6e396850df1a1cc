// The one error type of the client: an RFC 9457 problem, from the server or made up here.
import type { components } from "./schema";

/** The server's stable codes (openapi.yaml, `Problem.code`). */
export type ServerCode = components["schemas"]["Problem"]["code"];
/** Codes the client itself raises: the request never got a problem+json answer. */
export type ClientCode = "network_error" | "aborted" | "unexpected_response" | "not_logged_in";
export type ProblemCode = ServerCode | ClientCode;

const STANDARD = new Set(["type", "title", "status", "detail", "code", "requestId"]);

/**
 * A failed call. `code` is what to switch on; `detail` is for people; `extensions` holds every
 * member beyond the standard ones (e.g. limits the server names). `status` is 0 when no HTTP answer
 * was had (network_error, aborted).
 */
export class ApiProblem extends Error {
  readonly status: number;
  readonly code: ProblemCode;
  readonly detail: string;
  readonly title: string;
  readonly type: string;
  readonly requestId: string | undefined;
  readonly extensions: Readonly<Record<string, unknown>>;
  /** Seconds, from `Retry-After`, when the server sent one. */
  readonly retryAfter: number | undefined;

  constructor(init: {
    status: number;
    code: ProblemCode;
    detail: string;
    title?: string;
    type?: string;
    requestId?: string;
    extensions?: Record<string, unknown>;
    retryAfter?: number;
  }) {
    super(init.detail);
    this.name = "ApiProblem";
    this.status = init.status;
    this.code = init.code;
    this.detail = init.detail;
    this.title = init.title ?? "";
    this.type = init.type ?? "about:blank";
    this.requestId = init.requestId;
    this.extensions = init.extensions ?? {};
    this.retryAfter = init.retryAfter;
  }

  /** The problem a non-2xx answer describes; a body that is not problem+json is `unexpected_response`. */
  static fromBody(status: number, contentType: string | null, body: string, retryAfter: string | null): ApiProblem {
    const after = retryAfter !== null && /^\d+$/.test(retryAfter) ? Number(retryAfter) : undefined;
    if (contentType?.toLowerCase().includes("json")) {
      try {
        const json: unknown = JSON.parse(body);
        if (json && typeof json === "object" && typeof (json as { code?: unknown }).code === "string") {
          const p = json as Record<string, unknown>;
          const extensions: Record<string, unknown> = {};
          for (const [k, v] of Object.entries(p)) if (!STANDARD.has(k)) extensions[k] = v;
          return new ApiProblem({
            status,
            code: p.code as ServerCode,
            detail: typeof p.detail === "string" ? p.detail : "",
            title: typeof p.title === "string" ? p.title : undefined,
            type: typeof p.type === "string" ? p.type : undefined,
            requestId: typeof p.requestId === "string" ? p.requestId : undefined,
            extensions,
            retryAfter: after,
          });
        }
      } catch {
        // not JSON after all: fall through to unexpected_response
      }
    }
    return new ApiProblem({
      status,
      code: "unexpected_response",
      detail: `Unexpected answer ${status}${body ? `: ${body.slice(0, 200)}` : ""}`,
      retryAfter: after,
    });
  }

  static aborted(): ApiProblem {
    return new ApiProblem({ status: 0, code: "aborted", detail: "The request was cancelled." });
  }

  static network(cause: unknown): ApiProblem {
    const why = cause instanceof Error ? cause.message : String(cause);
    return new ApiProblem({ status: 0, code: "network_error", detail: `The network request failed: ${why}` });
  }
}

export async function problemOf(res: Response): Promise<ApiProblem> {
  const body = await res.text().catch(() => "");
  return ApiProblem.fromBody(res.status, res.headers.get("content-type"), body, res.headers.get("retry-after"));
}
