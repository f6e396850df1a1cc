// The React hook over the client: one message's attachments, live while anything is being scanned,
// and the uploads in flight with their progress. Written against React's hooks API only, so it runs
// under React and under preact/compat (the console) alike.
import { createContext, createElement, useCallback, useContext, useEffect, useRef, useState, type ReactNode } from "react";
import { ApiProblem, type Attachment, type AttachmentsClient, type DownloadUrl, type UploadPath, type VirusScanStatus } from "../client/src";

const ClientContext = createContext<AttachmentsClient | null>(null);

export function AttachmentsProvider(props: { client: AttachmentsClient; children?: ReactNode }) {
  return createElement(ClientContext.Provider, { value: props.client }, props.children);
}

/** Statuses that change without the user doing anything: poll while one is shown. */
const UNSETTLED: ReadonlySet<VirusScanStatus> = new Set(["pending", "verifying"]);

export interface UploadItem {
  /** Stable for the item's life. */
  key: string;
  filename: string;
  /** Bytes sent, of `total`. */
  sent: number;
  total: number;
  state: "uploading" | "done" | "failed" | "cancelled";
  /** The way the bytes go (`single`, `direct`, `tus`), once chosen. */
  path?: UploadPath;
  error?: ApiProblem;
  attachment?: Attachment;
}

export interface Options {
  /** The client; defaults to the one of the nearest AttachmentsProvider. */
  client?: AttachmentsClient;
  /** First delay between polls while something is pending; doubled each poll up to `pollMaxMs`. */
  pollMinMs?: number;
  pollMaxMs?: number;
  /** What `download` does with the fresh URL; by default a browser follows it as a download. */
  startDownload?: (url: string, a: Attachment) => void;
}

export interface EmailAttachments {
  attachments: Attachment[];
  /** True until the first list of this message has arrived. */
  loading: boolean;
  /** The last failed call (list, remove, revoke, download), cleared by the next success of the list. */
  error: ApiProblem | null;
  uploads: UploadItem[];
  /** Uploads the files one by one; each has its own progress and cancel. Resolves with those that succeeded. */
  upload: (files: Iterable<File> | ArrayLike<File>) => Promise<Attachment[]>;
  cancel: (key: string) => void;
  /** Sends a failed or cancelled upload's file again (a tus upload resumes where the server stands). */
  retry: (key: string) => Promise<Attachment | null>;
  /** Forgets finished upload items. */
  clearUploads: () => void;
  refresh: () => Promise<void>;
  /** A fresh signed URL; in a browser also starts the download. */
  download: (a: Attachment) => Promise<DownloadUrl>;
  remove: (a: Attachment) => Promise<void>;
  revoke: (a: Attachment) => Promise<void>;
}

let nextKey = 0;

export function useEmailAttachments(messageId: string | null | undefined, opts: Options = {}): EmailAttachments {
  const fromContext = useContext(ClientContext);
  const client = opts.client ?? fromContext;
  if (!client) throw new Error("useEmailAttachments needs a client: pass options.client or wrap in AttachmentsProvider");
  const pollMin = opts.pollMinMs ?? 1000;
  const pollMax = opts.pollMaxMs ?? 15_000;

  const [attachments, setAttachments] = useState<Attachment[]>([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<ApiProblem | null>(null);
  const [uploads, setUploads] = useState<UploadItem[]>([]);
  const controllers = useRef(new Map<string, AbortController>());
  /** The file of each upload item, for a retry. */
  const files = useRef(new Map<string, File>());
  /** Bumped to restart polling at its shortest delay (after an upload). */
  const [pollEpoch, setPollEpoch] = useState(0);
  const current = useRef(messageId);
  current.current = messageId;

  const refresh = useCallback(async () => {
    if (!messageId) return;
    try {
      const list = await client.list(messageId);
      if (current.current !== messageId) return;
      setAttachments(list);
      setError(null);
    } catch (e) {
      if (current.current === messageId) setError(asProblem(e));
    } finally {
      if (current.current === messageId) setLoading(false);
    }
  }, [client, messageId]);

  useEffect(() => {
    setAttachments([]);
    setLoading(Boolean(messageId));
    setError(null);
    void refresh();
  }, [refresh, messageId]);

  // Poll with backoff while anything is unsettled; stop when all is.
  const unsettled = attachments.some((a) => UNSETTLED.has(a.virusScanStatus));
  useEffect(() => {
    if (!unsettled || !messageId) return;
    let delay = pollMin;
    let timer: ReturnType<typeof setTimeout>;
    let stopped = false;
    const tick = async () => {
      await refresh();
      if (stopped) return;
      delay = Math.min(delay * 2, pollMax);
      timer = setTimeout(tick, delay);
    };
    timer = setTimeout(tick, delay);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [unsettled, messageId, refresh, pollMin, pollMax, pollEpoch]);

  // Uploads of a message that is no longer shown are cancelled.
  useEffect(() => {
    const map = controllers.current;
    return () => {
      for (const c of map.values()) c.abort();
      map.clear();
    };
  }, [messageId]);

  const patch = (key: string, p: Partial<UploadItem>) =>
    setUploads((all) => all.map((u) => (u.key === key ? { ...u, ...p } : u)));

  /** One file's upload under its item: progress, path, the outcome. */
  const send = useCallback(
    async (file: File, key: string): Promise<Attachment | null> => {
      if (!messageId) return null;
      const ctl = new AbortController();
      controllers.current.set(key, ctl);
      try {
        const a = await client.upload(messageId, file, {
          signal: ctl.signal,
          onProgress: (sent, total) => patch(key, { sent, total }),
          onPath: (path) => patch(key, { path }),
        });
        files.current.delete(key);
        patch(key, { state: "done", sent: file.size, attachment: a });
        setAttachments((all) => [a, ...all.filter((x) => x.id !== a.id)]);
        return a;
      } catch (e) {
        const p = asProblem(e);
        patch(key, { state: p.code === "aborted" ? "cancelled" : "failed", error: p });
        return null;
      } finally {
        controllers.current.delete(key);
      }
    },
    [client, messageId],
  );

  const upload = useCallback(
    async (picked: Iterable<File> | ArrayLike<File>) => {
      if (!messageId) return [];
      const list = Array.from(picked as ArrayLike<File>);
      const items = list.map((f) => ({
        file: f,
        item: { key: `u${++nextKey}`, filename: f.name, sent: 0, total: f.size, state: "uploading" } as UploadItem,
      }));
      setUploads((all) => [...all, ...items.map((x) => x.item)]);
      const done: Attachment[] = [];
      for (const { file, item } of items) {
        files.current.set(item.key, file);
        const a = await send(file, item.key);
        if (a) done.push(a);
      }
      setPollEpoch((n) => n + 1);
      return done;
    },
    [messageId, send],
  );

  const retry = useCallback(
    async (key: string) => {
      const file = files.current.get(key);
      if (!file || controllers.current.has(key)) return null;
      patch(key, { state: "uploading", error: undefined, sent: 0 });
      const a = await send(file, key);
      setPollEpoch((n) => n + 1);
      return a;
    },
    [send],
  );

  const cancel = useCallback((key: string) => controllers.current.get(key)?.abort(), []);
  const clearUploads = useCallback(() => {
    setUploads((all) => {
      for (const u of all) if (u.state !== "uploading") files.current.delete(u.key);
      return all.filter((u) => u.state === "uploading");
    });
  }, []);

  const guarded = useCallback(
    async <T,>(f: () => Promise<T>): Promise<T> => {
      try {
        return await f();
      } catch (e) {
        const p = asProblem(e);
        setError(p);
        throw p;
      }
    },
    [],
  );

  const download = useCallback(
    (a: Attachment) =>
      guarded(async () => {
        const u = await client.downloadUrl(a.id);
        (opts.startDownload ?? startDownload)(u.url, a);
        return u;
      }),
    [client, guarded, opts.startDownload],
  );

  const remove = useCallback(
    (a: Attachment) =>
      guarded(async () => {
        await client.remove(a.id);
        setAttachments((all) => all.filter((x) => x.id !== a.id));
      }),
    [client, guarded],
  );

  const revoke = useCallback((a: Attachment) => guarded(() => client.revokeUrls(a.id)), [client, guarded]);

  return { attachments, loading, error, uploads, upload, cancel, retry, clearUploads, refresh, download, remove, revoke };
}

function startDownload(url: string, a: Attachment) {
  if (typeof document === "undefined") return;
  const link = document.createElement("a");
  link.href = url;
  link.rel = "noopener";
  link.download = a.filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
}

function asProblem(e: unknown): ApiProblem {
  return e instanceof ApiProblem ? e : ApiProblem.network(e);
}
