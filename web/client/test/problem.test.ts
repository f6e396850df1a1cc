// Pure logic of the client, no stack: problem parsing and the filename header.
import { describe, expect, it } from "vitest";
import { ApiProblem, contentDisposition } from "../src";

describe("ApiProblem.fromBody", () => {
  it("keeps the standard members and puts the rest in extensions", () => {
    const body = JSON.stringify({
      type: "about:blank",
      title: "Payload Too Large",
      status: 413,
      detail: "The body is over the limit.",
      code: "payload_too_large",
      requestId: "r-1",
      limit: 10485760,
    });
    const p = ApiProblem.fromBody(413, "application/problem+json", body, "7");
    expect([p.status, p.code, p.detail, p.title, p.requestId, p.retryAfter]).toEqual([
      413,
      "payload_too_large",
      "The body is over the limit.",
      "Payload Too Large",
      "r-1",
      7,
    ]);
    expect(p.extensions).toEqual({ limit: 10485760 });
    expect(p.message).toBe("The body is over the limit.");
  });

  it("an answer that is not problem+json is unexpected_response, with its start", () => {
    const p = ApiProblem.fromBody(502, "text/html", "<h1>Bad gateway</h1>", "soon");
    expect(p.code).toBe("unexpected_response");
    expect(p.detail).toContain("Bad gateway");
    expect(p.retryAfter).toBeUndefined();
    expect(ApiProblem.fromBody(500, "application/json", "{not json", null).code).toBe("unexpected_response");
    expect(ApiProblem.fromBody(500, "application/json", '{"detail":"no code"}', null).code).toBe("unexpected_response");
  });
});

describe("contentDisposition", () => {
  it("percent-encodes the UTF-8 name beyond attr-char (RFC 8187)", () => {
    expect(contentDisposition("résumé (1).pdf")).toBe("attachment; filename*=UTF-8''r%C3%A9sum%C3%A9%20%281%29.pdf");
    expect(contentDisposition("a'b*c!.txt")).toBe("attachment; filename*=UTF-8''a%27b%2Ac%21.txt");
  });
});
