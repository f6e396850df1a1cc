// Large uploads against the running stack: tus through the service (interrupted, then resumed after
// a "reload" from the offset HEAD reports), cancel leaving no session behind on either path, and the
// fall back from direct-to-storage to tus when storage cannot be reached from the client.
import { describe, expect, it } from "vitest";
import { AttachmentsClient, type ResumeStore, type UploadPath } from "../src";
import { BASE_URL, bytes, client, loggedIn, problem, sameBytes, settled } from "../../test/stack";

const MIB = 1024 * 1024;

function memoryStore(): ResumeStore & { keys(): string[] } {
  const m = new Map<string, string>();
  return {
    getItem: (k) => m.get(k) ?? null,
    setItem: (k, v) => void m.set(k, v),
    removeItem: (k) => void m.delete(k),
    keys: () => [...m.keys()],
  };
}

interface Seen {
  method: string;
  url: string;
  offset: string | null;
  status: number | "failed";
}

/** fetch that records every request (method, URL, Upload-Offset, answer) and can be cut off. */
function recording() {
  const seen: Seen[] = [];
  const state = { offline: false, refuse: (_url: string) => false };
  const f: typeof fetch = async (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    const headers = new Headers(init?.headers);
    const entry: Seen = { method: init?.method ?? "GET", url, offset: headers.get("upload-offset"), status: "failed" };
    seen.push(entry);
    if (state.offline || state.refuse(url)) throw new TypeError("fetch failed (connection dropped by the test)");
    const res = await fetch(input, init);
    entry.status = res.status;
    return res;
  };
  return { fetch: f, seen, state };
}

async function uploadState(c: AttachmentsClient, uploadId: string): Promise<string> {
  const res = await fetch(`${BASE_URL}/api/v1/uploads/${uploadId}`, {
    headers: { authorization: `Bearer ${c.session!.accessToken}` },
  });
  if (res.status === 404) return "gone";
  expect(res.status).toBe(200);
  return ((await res.json()) as { state: string }).state;
}

describe("tus uploads", () => {
  it("interrupted, then resumed after a reload from the offset HEAD reports, ends clean with the same bytes", async () => {
    const store = memoryStore();
    const net = recording();
    const { c, messageId } = await loggedIn({ fetch: net.fetch, largeUploadPaths: ["tus"], resumeStore: store });
    const data = bytes(20 * MIB);
    const file = new File([data], "resumed.bin", { type: "application/octet-stream", lastModified: 1_700_000_000_000 });
    const paths: UploadPath[] = [];

    // The connection drops once the first chunk is stored (and stays down): the upload fails, its
    // URL is kept.
    const first = problem(
      c.upload(messageId, file, {
        onPath: (p) => paths.push(p),
        onProgress: (n) => {
          if (n >= 8 * MIB) net.state.offline = true;
        },
      }),
    );
    const p = await first;
    expect(p.code).toBe("network_error");
    expect(paths).toEqual(["tus"]);
    expect(store.keys()).toHaveLength(1);
    const patches = net.seen.filter((s) => s.method === "PATCH" && s.status === 204);
    expect(patches.map((s) => s.offset)).toEqual(["0"]);

    // A "reload": a new client with the same session and store picks the same file again.
    net.state.offline = false;
    net.seen.length = 0;
    const again = new AttachmentsClient({ baseUrl: BASE_URL, transport: "fetch", fetch: net.fetch, largeUploadPaths: ["tus"], resumeStore: store });
    again.session = c.session;
    const progress: number[] = [];
    const a = await again.upload(messageId, file, { onProgress: (n) => progress.push(n) });
    expect(progress[0]).toBe(8 * MIB); // resumed where the server stood, not from 0
    const calls = net.seen.filter((s) => s.url.includes("/api/v1/") && !s.url.includes("/auth/"));
    expect(calls[0]!.method).toBe("HEAD");
    expect(calls[0]!.status).toBe(200);
    expect(calls.filter((s) => s.method === "POST" && s.url.endsWith("/tus"))).toEqual([]); // no new upload
    expect(calls.filter((s) => s.method === "PATCH").map((s) => s.offset)).toEqual([String(8 * MIB), String(16 * MIB)]);
    expect(store.keys()).toEqual([]);
    expect(a.filename).toBe("resumed.bin");
    expect(a.size).toBe(data.length);

    expect(await settled(again, a.id, 120_000)).toBe("clean");
    const { url } = await again.downloadUrl(a.id);
    const redirect = await fetch(url, { redirect: "manual" });
    const res = redirect.status === 302 ? await fetch(redirect.headers.get("location")!) : redirect;
    expect(res.status).toBe(200);
    expect(sameBytes(await res.arrayBuffer(), data)).toBe(true);
    await again.remove(a.id);
  });

  it("an access token that goes bad mid-upload is refreshed, and the upload goes on from the server's offset", async () => {
    const net = recording();
    const { c, messageId } = await loggedIn({ fetch: net.fetch, largeUploadPaths: ["tus"], resumeStore: memoryStore() });
    const data = bytes(20 * MIB);
    let spoiled = false;
    const a = await c.upload(messageId, new Blob([data]), {
      filename: "refreshed.bin",
      onProgress: (n) => {
        if (n >= 8 * MIB && !spoiled) {
          spoiled = true;
          c.session = { ...c.session!, accessToken: `${c.session!.accessToken}x` }; // refused like an expired one
        }
      },
    });
    expect(spoiled).toBe(true);
    expect(net.seen.filter((s) => s.url.endsWith("/api/v1/auth/refresh")).map((s) => s.status)).toEqual([200]);
    expect(net.seen.some((s) => s.url.includes("/api/v1/tus/") && s.status === 401)).toBe(true);
    // Every byte went once: the stored offsets run 0, 8 MiB, 16 MiB.
    const stored = net.seen.filter((s) => s.method === "PATCH" && s.status === 204).map((s) => s.offset);
    expect(stored).toEqual(["0", String(8 * MIB), String(16 * MIB)]);
    expect(a.size).toBe(data.length);
    expect(await settled(c, a.id, 120_000)).toBe("clean");
    await c.remove(a.id);
  });

  it("cancel terminates the upload: HEAD finds nothing, nothing is listed, nothing is kept to resume", async () => {
    const store = memoryStore();
    const net = recording();
    const { c, messageId } = await loggedIn({ fetch: net.fetch, largeUploadPaths: ["tus"], resumeStore: store });
    const before = new Set((await c.list(messageId)).map((x) => x.id));
    const ctl = new AbortController();
    const p = await problem(
      c.upload(messageId, new Blob([bytes(20 * MIB)]), {
        filename: "cancelled-tus.bin",
        signal: ctl.signal,
        onProgress: (n) => n > 0 && ctl.abort(),
      }),
    );
    expect(p.code).toBe("aborted");
    const created = net.seen.find((s) => s.method === "DELETE" && s.url.includes("/api/v1/tus/"));
    expect(created?.status).toBe(204);
    const head = await fetch(created!.url, {
      method: "HEAD",
      headers: { authorization: `Bearer ${c.session!.accessToken}`, "tus-resumable": "1.0.0" },
    });
    expect(head.status).toBe(404);
    expect(store.keys()).toEqual([]);
    expect((await c.list(messageId)).filter((x) => !before.has(x.id))).toEqual([]);
  });
});

describe("choosing the path", () => {
  it("storage unreachable from the client (a bucket without CORS for it): the file goes by tus instead", async () => {
    const net = recording();
    net.state.refuse = (url) => !url.startsWith(BASE_URL); // every request to the bucket fails
    const { c, messageId } = await loggedIn({ fetch: net.fetch, resumeStore: memoryStore() });
    const paths: UploadPath[] = [];
    const data = bytes(12 * MIB);
    const a = await c.upload(messageId, new Blob([data]), { filename: "fallback.bin", onPath: (p) => paths.push(p) });
    expect(paths).toEqual(["direct", "tus"]);
    expect(c.uploadPaths).toEqual(["tus"]); // not tried again for the next file
    // The direct session was given up, not left open.
    const created = net.seen.find((s) => s.method === "DELETE" && s.url.includes("/api/v1/uploads/"));
    expect(created?.status).toBe(204);
    const uploadId = created!.url.slice(created!.url.lastIndexOf("/") + 1);
    expect(["aborted", "gone"]).toContain(await uploadState(c, uploadId));
    expect(a.size).toBe(data.length);
    expect(await settled(c, a.id, 120_000)).toBe("clean");
    await c.remove(a.id);
  });

  it("small files go in one request; a direct upload cancelled leaves its session aborted", async () => {
    const net = recording();
    const { c, messageId } = await loggedIn({ fetch: net.fetch, partConcurrency: 1 });
    const paths: UploadPath[] = [];
    const small = await c.upload(messageId, new Blob([bytes(1024)]), { filename: "small.bin", onPath: (p) => paths.push(p) });
    expect(paths).toEqual(["single"]);
    await c.remove(small.id);

    const ctl = new AbortController();
    const p = await problem(
      c.upload(messageId, new Blob([bytes(11 * MIB)]), {
        filename: "cancelled-direct.bin",
        signal: ctl.signal,
        onProgress: (n) => n > 0 && ctl.abort(),
      }),
    );
    expect(p.code).toBe("aborted");
    const del = net.seen.find((s) => s.method === "DELETE" && s.url.includes("/api/v1/uploads/"));
    expect(del?.status).toBe(204);
    expect(await uploadState(c, del!.url.slice(del!.url.lastIndexOf("/") + 1))).toBe("aborted");
    expect(client().uploadPaths).toEqual(["direct", "tus"]);
  });
});
