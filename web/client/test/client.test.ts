// The client against the running stack (scripts/dev with its scan worker): real auth, storage and scans.
import { describe, expect, it } from "vitest";
import { ApiProblem, AttachmentsClient, type Session } from "../src";
import { BASE_URL, EICAR, bytes, client, freshUser, loggedIn, problem, sameBytes, settled } from "../../test/stack";

const MIB = 1024 * 1024;

describe("auth", () => {
  it("a wrong password is a typed invalid_credentials problem", async () => {
    const u = freshUser();
    const p = await problem(client().login(u.email, `${u.password}-wrong`));
    expect(p).toBeInstanceOf(ApiProblem);
    expect(p.status).toBe(401);
    expect(p.code).toBe("invalid_credentials");
    expect(p.detail).not.toBe("");
    expect(p.requestId).toMatch(/\S/);
  });

  it("login, me, logout; the logged-out refresh token is dead", async () => {
    const sessions: (Session | null)[] = [];
    const { c, email } = await loggedIn({ onSession: (s) => sessions.push(s) });
    expect((await c.me()).email.toLowerCase()).toBe(email.toLowerCase());
    const old = c.session!;
    await c.logout();
    expect(c.session).toBeNull();
    expect(sessions.at(-1)).toBeNull();
    const other = client();
    other.session = old;
    const p = await problem(other.refresh());
    expect(p.status).toBe(401);
    expect(other.session).toBeNull();
    expect((await problem(client().me())).code).toBe("not_logged_in");
  });

  it("a refused access token is rotated once and the call retried", async () => {
    const { c, messageId } = await loggedIn();
    const before = c.session!;
    c.session = { ...before, accessToken: `${before.accessToken}x` };
    const [a, b] = await Promise.all([c.list(messageId), c.me()]); // concurrent 401s: one rotation
    expect(Array.isArray(a)).toBe(true);
    expect(b.email).toBeTruthy();
    expect(c.session!.refreshToken).not.toBe(before.refreshToken);
    expect(c.session!.accessToken).not.toBe(before.accessToken);
    expect((await c.me()).email).toBe(b.email); // the rotated session works without another refresh
  });

  it("an access token expired mid-upload: the upload is refreshed and sent again", async () => {
    const { c, messageId } = await loggedIn();
    c.session = { ...c.session!, accessToken: `${c.session!.accessToken}x` };
    const data = bytes(4096);
    const a = await c.upload(messageId, new Blob([data], { type: "application/octet-stream" }), {
      filename: "after-refresh.bin",
    });
    expect(a.size).toBe(4096);
    await c.remove(a.id);
  });
});

describe("messages", () => {
  it("the caller's own messages, newest first, a page at a time", async () => {
    const { c, messageId } = await loggedIn();
    const all = await c.messages();
    expect(all.nextBefore).toBeNull();
    expect(all.messages.map((m) => m.id)).toContain(messageId);
    const times = all.messages.map((m) => m.receivedAt);
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    const first = await c.messages({ limit: 1 });
    expect(first.messages.map((m) => m.id)).toEqual([all.messages[0]!.id]);
    expect(first.nextBefore).toBeTruthy();
    const second = await c.messages({ limit: 100, before: first.nextBefore! });
    expect(second.messages.map((m) => m.id)).toEqual(all.messages.slice(1).map((m) => m.id));
    const bad = await problem(c.messages({ before: "not-a-cursor" }));
    expect(bad.status).toBe(400);
    expect(bad.code).toBe("bad_request");
  });
});

describe("attachments", () => {
  it("upload in one request, list, scan clean, download the bytes, revoke, delete", async () => {
    const { c, messageId } = await loggedIn();
    const data = bytes(64 * 1024);
    const progress: number[] = [];
    const a = await c.upload(messageId, new Blob([data], { type: "application/octet-stream" }), {
      filename: "résumé (final).bin",
      onProgress: (n, total) => {
        expect(total).toBe(data.length);
        progress.push(n);
      },
    });
    expect(a.filename).toBe("résumé (final).bin");
    expect(a.size).toBe(data.length);
    expect(progress.at(-1)).toBe(data.length);
    expect((await c.list(messageId)).map((x) => x.id)).toContain(a.id);

    expect(await settled(c, a.id)).toBe("clean");
    const { url, expiresAt } = await c.downloadUrl(a.id, { expiresIn: 120 });
    expect(expiresAt).toBeGreaterThan(Date.now());
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(sameBytes(await res.arrayBuffer(), data)).toBe(true);

    await c.revokeUrls(a.id);
    const revoked = await fetch(url);
    expect(revoked.status).toBe(403);
    const p = ApiProblem.fromBody(revoked.status, revoked.headers.get("content-type"), await revoked.text(), null);
    expect(p.code).toBe("url_expired");

    await c.remove(a.id);
    const gone = await problem(c.get(a.id));
    expect(gone.status).toBe(404);
    expect(gone.code).toBe("not_found");
  });

  it("EICAR is judged infected and its download is refused scan_blocked", async () => {
    const { c, messageId } = await loggedIn();
    const a = await c.upload(messageId, new Blob([EICAR], { type: "text/plain" }), { filename: "notes.txt" });
    expect(await settled(c, a.id)).toBe("infected");
    const { url } = await c.downloadUrl(a.id);
    const res = await fetch(url);
    expect(res.status).toBe(403);
    const p = ApiProblem.fromBody(res.status, res.headers.get("content-type"), await res.text(), null);
    expect(p.code).toBe("scan_blocked");
    await c.remove(a.id);
  });

  it("a blocked type carries the server's reason", async () => {
    const { c, messageId } = await loggedIn();
    const p = await problem(c.upload(messageId, new Blob(["MZ"]), { filename: "setup.exe" }));
    expect(p.status).toBe(415);
    expect(p.code).toBe("blocked_file_type");
    expect(p.detail).toMatch(/\S/);
  });

  it("a file over the limit is refused before anything is sent", async () => {
    let calls = 0;
    const counting: typeof fetch = (input, init) => {
      calls++;
      return fetch(input, init);
    };
    const { c, messageId } = await loggedIn({ fetch: counting, maxUploadBytes: 1024 });
    calls = 0;
    const p = await problem(c.upload(messageId, new Blob([bytes(2048)]), { filename: "big.bin" }));
    expect(p.code).toBe("payload_too_large");
    expect(p.extensions.limit).toBe(1024);
    expect(calls).toBe(0);
  });

  it("an unknown attachment is a typed not_found; a malformed id invalid_id", async () => {
    const { c } = await loggedIn();
    expect((await problem(c.scanStatus("00000000-0000-4000-8000-000000000000"))).code).toBe("not_found");
    expect((await problem(c.scanStatus("nope"))).code).toBe("invalid_id");
  });
});

describe("direct-to-storage uploads", () => {
  it("a file over the single-request limit goes to storage in parts, with progress, and is verified", async () => {
    const { c, messageId } = await loggedIn();
    const data = bytes(12 * MIB);
    const progress: number[] = [];
    const a = await c.upload(messageId, new Blob([data]), {
      filename: "large.bin",
      onProgress: (n) => progress.push(n),
    });
    expect(a.virusScanStatus).toBe("verifying");
    expect(a.size).toBe(data.length);
    expect(progress.at(-1)).toBe(data.length);
    expect(progress.length).toBeGreaterThanOrEqual(2); // one report per part at least
    expect(await settled(c, a.id, 120_000)).toBe("clean");
    const { url } = await c.downloadUrl(a.id);
    // Over download_stream_max_bytes (10 MiB): a redirect to a presigned storage URL.
    const redirect = await fetch(url, { redirect: "manual" });
    expect(redirect.status).toBe(302);
    const res = await fetch(redirect.headers.get("location")!, { signal: AbortSignal.timeout(30_000) });
    expect(res.status).toBe(200);
    expect(sameBytes(await res.arrayBuffer(), data)).toBe(true);
    await c.remove(a.id);
  });

  it("cancel aborts the parts and the session; no attachment is left", async () => {
    const { c, messageId } = await loggedIn({ partConcurrency: 1 });
    const ctl = new AbortController();
    const before = new Set((await c.list(messageId)).map((x) => x.id));
    const p = await problem(
      c.upload(messageId, new Blob([bytes(11 * MIB)]), {
        filename: "cancelled.bin",
        signal: ctl.signal,
        onProgress: (n) => n > 0 && ctl.abort(),
      }),
    );
    expect(p.code).toBe("aborted");
    const after = (await c.list(messageId)).filter((x) => !before.has(x.id));
    expect(after).toEqual([]);
  });
});

it("the client is configured for this stack", () => {
  expect(new AttachmentsClient({ baseUrl: `${BASE_URL}/` }).baseUrl).toBe(BASE_URL);
});
