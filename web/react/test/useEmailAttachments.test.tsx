// @vitest-environment happy-dom
// The hook under real React against the running stack: list, upload with progress, scan polling
// until settled, download, revoke, remove, cancel.
import { act, renderHook, waitFor } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { ApiProblem } from "../../client/src";
import { AttachmentsProvider, useEmailAttachments } from "../useEmailAttachments";
import { EICAR, bytes, loggedIn, sameBytes, settled } from "../../test/stack";
import { createElement, type ReactNode } from "react";

const MIB = 1024 * 1024;
const wait = { timeout: 60_000, interval: 100 };

function file(data: BlobPart, name: string, type = "application/octet-stream"): File {
  return new File([data], name, { type });
}

describe("useEmailAttachments", () => {
  it("lists, uploads with progress, polls until clean, downloads, revokes, removes", async () => {
    const { c, messageId } = await loggedIn();
    const started: string[] = [];
    const wrapper = ({ children }: { children?: ReactNode }) => createElement(AttachmentsProvider, { client: c }, children);
    const { result } = renderHook(
      () => useEmailAttachments(messageId, { pollMinMs: 200, pollMaxMs: 1000, startDownload: (u) => started.push(u) }),
      { wrapper },
    );
    expect(result.current.loading).toBe(true);
    await waitFor(() => expect(result.current.loading).toBe(false), wait);
    expect(result.current.error).toBeNull();

    const data = bytes(256 * 1024);
    let uploaded: Awaited<ReturnType<typeof result.current.upload>> = [];
    await act(async () => {
      uploaded = await result.current.upload([file(data, "hook.bin"), file(EICAR, "hook-eicar.txt", "text/plain")]);
    });
    expect(uploaded).toHaveLength(2);
    const [clean, virus] = uploaded as [(typeof uploaded)[0], (typeof uploaded)[0]];
    expect(result.current.uploads.map((u) => [u.filename, u.state, u.sent === u.total])).toEqual([
      ["hook.bin", "done", true],
      ["hook-eicar.txt", "done", true],
    ]);
    // The new ones are listed at once, pending, and polling settles them without a refresh by hand.
    expect(result.current.attachments.slice(0, 2).map((a) => a.id).sort()).toEqual([clean.id, virus.id].sort());
    await waitFor(() => {
      const byId = new Map(result.current.attachments.map((a) => [a.id, a.virusScanStatus]));
      expect(byId.get(clean.id)).toBe("clean");
      expect(byId.get(virus.id)).toBe("infected");
    }, wait);

    let url = "";
    await act(async () => {
      url = (await result.current.download(clean)).url;
    });
    expect(started).toEqual([url]);
    expect(sameBytes(await (await fetch(url)).arrayBuffer(), data)).toBe(true);

    await act(() => result.current.revoke(clean));
    // HEAD: happy-dom answers a repeated GET from its cache, as a browser may.
    expect((await fetch(url, { method: "HEAD" })).status).toBe(403);

    await act(() => result.current.remove(clean));
    await act(() => result.current.remove(virus));
    expect(result.current.attachments.map((a) => a.id)).not.toContain(clean.id);
    expect((await c.list(messageId)).map((a) => a.id)).not.toContain(clean.id);
  });

  it("a cancelled upload is shown cancelled; a refused one carries the server's problem", async () => {
    const { c, messageId } = await loggedIn({ partConcurrency: 1 });
    const { result } = renderHook(() => useEmailAttachments(messageId, { client: c }));
    await waitFor(() => expect(result.current.loading).toBe(false), wait);
    let pending!: Promise<unknown>;
    act(() => {
      pending = result.current.upload([file(bytes(40 * MIB), "to-cancel.bin"), file("MZ", "tool.exe")]);
    });
    await waitFor(() => expect(result.current.uploads[0]?.sent).toBeGreaterThan(0), wait);
    act(() => result.current.cancel(result.current.uploads[0]!.key));
    await act(async () => {
      await pending;
    });
    const [cancelled, blocked] = result.current.uploads;
    expect(cancelled!.state).toBe("cancelled");
    expect(blocked!.state).toBe("failed");
    expect(blocked!.error).toBeInstanceOf(ApiProblem);
    expect(blocked!.error!.code).toBe("blocked_file_type");
  });

  it("an upload cut off by the network fails with a clear problem; retry resumes it where the server stands", async () => {
    const patches: string[] = [];
    let offline = false;
    let cut = false;
    const net: typeof fetch = async (input, init) => {
      if (offline) throw new TypeError("fetch failed (connection dropped by the test)");
      const res = await fetch(input, init);
      if (init?.method === "PATCH" && res.status === 204) {
        patches.push(new Headers(init.headers).get("upload-offset")!);
        if (!cut) offline = cut = true; // the network goes after the first stored chunk
      }
      return res;
    };
    const store = new Map<string, string>();
    const { c, messageId } = await loggedIn({
      fetch: net,
      largeUploadPaths: ["tus"],
      resumeStore: { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => void store.set(k, v), removeItem: (k) => void store.delete(k) },
    });
    const { result } = renderHook(() => useEmailAttachments(messageId, { client: c }));
    await waitFor(() => expect(result.current.loading).toBe(false), wait);
    await act(async () => {
      await result.current.upload([file(bytes(12 * MIB), "retried.bin")]);
    });
    const failed = result.current.uploads[0]!;
    expect(failed.state).toBe("failed");
    expect(failed.path).toBe("tus");
    expect(failed.error!.code).toBe("network_error");

    offline = false;
    patches.length = 0;
    await act(async () => {
      await result.current.retry(failed.key);
    });
    const done = result.current.uploads[0]!;
    expect(done.state).toBe("done");
    expect(done.sent).toBe(12 * MIB);
    expect(patches).toEqual([String(8 * MIB)]); // only the rest went
    expect(result.current.attachments[0]!.id).toBe(done.attachment!.id);
    // Verified by the scan worker first (a resumable upload is `verifying` until then).
    expect(await settled(c, done.attachment!.id, 120_000)).toBe("clean");
    await c.remove(done.attachment!.id);
  });

  it("an unknown message is an error, not a crash", async () => {
    const { c } = await loggedIn();
    const { result } = renderHook(() => useEmailAttachments("00000000-0000-4000-8000-000000000000", { client: c }));
    await waitFor(() => expect(result.current.loading).toBe(false), wait);
    expect(result.current.error?.status).toBe(404);
    expect(result.current.attachments).toEqual([]);
  });
});
