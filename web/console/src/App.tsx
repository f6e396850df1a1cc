// The attachment console: log in, then one message's attachments (the newest of the caller's
// messages, another picked from the list, or the page's `#message=<id>`), with uploads, scan chips,
// download, links, revoke and delete.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { JSX } from "preact";
import { ApiProblem, AttachmentsClient, type Attachment, type MessageSummary } from "../../client/src";
import { useEmailAttachments, type UploadItem } from "../../react/useEmailAttachments";

function messageFromHash(): string {
  return new URLSearchParams(location.hash.slice(1)).get("message") ?? "";
}

export function App() {
  const client = useMemo(() => new AttachmentsClient({ baseUrl: "" }), []);
  const [loggedIn, setLoggedIn] = useState(false);
  const [email, setEmail] = useState("");
  return (
    <main>
      <h1>Attachments</h1>
      {loggedIn ? (
        <Workspace
          client={client}
          email={email}
          onLogout={async () => {
            await client.logout().catch(() => undefined);
            setLoggedIn(false);
          }}
        />
      ) : (
        <Login
          client={client}
          onLogin={(e) => {
            setEmail(e);
            setLoggedIn(true);
          }}
        />
      )}
    </main>
  );
}

function Login(props: { client: AttachmentsClient; onLogin: (email: string) => void }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiProblem | null>(null);
  const submit = async (e: JSX.TargetedEvent<HTMLFormElement, Event>) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await props.client.login(email, password);
      props.onLogin(email);
    } catch (err) {
      setError(err instanceof ApiProblem ? err : ApiProblem.network(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="login" onSubmit={submit} aria-labelledby="login-title">
      <h2 id="login-title">Log in</h2>
      <label for="email">Email</label>
      <input id="email" name="email" type="email" autocomplete="username" required value={email}
        onInput={(e) => setEmail(e.currentTarget.value)} />
      <label for="password">Password</label>
      <input id="password" name="password" type="password" autocomplete="current-password" required value={password}
        onInput={(e) => setPassword(e.currentTarget.value)} />
      <button type="submit" disabled={busy}>{busy ? "Logging in…" : "Log in"}</button>
      <ProblemMessage problem={error} />
    </form>
  );
}

function Workspace(props: { client: AttachmentsClient; email: string; onLogout: () => void }) {
  // The message shown: the page's `#message=<id>` when it names one, else the newest of the caller's.
  const [fromHash, setFromHash] = useState(messageFromHash);
  const [messages, setMessages] = useState<MessageSummary[] | null>(null);
  const [error, setError] = useState<ApiProblem | null>(null);
  useEffect(() => {
    const on = () => setFromHash(messageFromHash());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  useEffect(() => {
    const abort = new AbortController();
    props.client
      .messages({ limit: MESSAGES_SHOWN, signal: abort.signal })
      .then((page) => setMessages(page.messages))
      .catch((e: unknown) => {
        if (!abort.signal.aborted) setError(e instanceof ApiProblem ? e : ApiProblem.network(e));
      });
    return () => abort.abort();
  }, [props.client]);
  const messageId = fromHash || messages?.[0]?.id || "";
  // A message opened by its id (an admin's look at another user's) is offered in the list too.
  const choices = messages && messageId && !messages.some((m) => m.id === messageId)
    ? [{ id: messageId, subject: messageId, from: "", receivedAt: 0, attachmentCount: 0 }, ...messages]
    : messages ?? [];
  return (
    <>
      <header class="bar">
        <span>Signed in as <strong>{props.email}</strong></span>
        <button type="button" onClick={props.onLogout}>Log out</button>
      </header>
      <ProblemMessage problem={error} />
      {messages === null && !error ? (
        <p role="status">Loading messages…</p>
      ) : choices.length === 0 ? (
        <p>You have no messages yet.</p>
      ) : (
        <div class="message-pick">
          <label for="message">Message</label>
          <select id="message" value={messageId}
            onChange={(e) => {
              location.hash = `message=${encodeURIComponent(e.currentTarget.value)}`;
            }}>
            {choices.map((m) => (
              <option key={m.id} value={m.id}>{describeMessage(m)}</option>
            ))}
          </select>
        </div>
      )}
      {messageId ? <Message client={props.client} messageId={messageId} /> : null}
    </>
  );
}

/** How many of the newest messages the picker offers. */
const MESSAGES_SHOWN = 50;

function describeMessage(m: MessageSummary): string {
  const subject = m.subject.trim() || "(no subject)";
  if (!m.receivedAt) return subject;
  const when = new Date(m.receivedAt).toLocaleString();
  const n = m.attachmentCount === 1 ? "1 attachment" : `${m.attachmentCount} attachments`;
  return `${subject} — ${m.from}, ${when} (${n})`;
}

function Message(props: { client: AttachmentsClient; messageId: string }) {
  const att = useEmailAttachments(props.messageId, { client: props.client });
  const [links, setLinks] = useState<Record<string, string>>({});
  const [dragging, setDragging] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const pick = (files: FileList | null) => {
    if (files && files.length) void att.upload(Array.from(files));
    if (input.current) input.current.value = "";
  };
  return (
    <section aria-labelledby="message-title">
      <h2 id="message-title">Message <code>{props.messageId}</code></h2>
      <div
        class={`drop${dragging ? " over" : ""}`}
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => {
          e.preventDefault();
          setDragging(false);
          pick(e.dataTransfer?.files ?? null);
        }}
      >
        <label for="files">Add files (or drop them here)</label>
        <input id="files" ref={input} type="file" multiple onChange={(e) => pick(e.currentTarget.files)} />
      </div>
      {att.uploads.length > 0 && (
        <ul class="uploads" aria-label="Uploads">
          {att.uploads.map((u) => (
            <UploadRow key={u.key} item={u} onCancel={() => att.cancel(u.key)} onRetry={() => void att.retry(u.key)} />
          ))}
          <li><button type="button" onClick={att.clearUploads}>Clear finished uploads</button></li>
        </ul>
      )}
      <ProblemMessage problem={att.error} />
      {att.loading ? (
        <p role="status">Loading attachments…</p>
      ) : att.attachments.length === 0 ? (
        <p>No attachments yet.</p>
      ) : (
        <table class="attachments">
          <caption>Attachments</caption>
          <thead>
            <tr><th scope="col">Name</th><th scope="col">Size</th><th scope="col">Type</th><th scope="col">Scan</th><th scope="col">Actions</th></tr>
          </thead>
          <tbody>
            {att.attachments.map((a) => (
              <tr key={a.id} data-id={a.id}>
                <th scope="row">{a.filename}</th>
                <td>{formatSize(a.size)}</td>
                <td>{a.mimeType}</td>
                <td><span class={`chip chip-${a.virusScanStatus}`} data-status={a.virusScanStatus}>{a.virusScanStatus}</span></td>
                <td class="actions">
                  <button type="button" disabled={!servable(a)} aria-label={`Download ${a.filename}`}
                    onClick={() => void att.download(a).catch(() => undefined)}>Download</button>
                  <button type="button" aria-label={`Get link to ${a.filename}`}
                    onClick={() => void props.client.downloadUrl(a.id).then((u) => setLinks((l) => ({ ...l, [a.id]: u.url })), () => undefined)}>Get link</button>
                  <button type="button" aria-label={`Revoke links to ${a.filename}`}
                    onClick={() => void att.revoke(a).then(() => setLinks((l) => ({ ...l, [a.id]: "" })), () => undefined)}>Revoke links</button>
                  <button type="button" aria-label={`Delete ${a.filename}`}
                    onClick={() => void att.remove(a).catch(() => undefined)}>Delete</button>
                  {links[a.id] ? (
                    <input class="link" readOnly value={links[a.id]} aria-label={`Link to ${a.filename}`} />
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function UploadRow(props: { item: UploadItem; onCancel: () => void; onRetry: () => void }) {
  const u = props.item;
  const id = `up-${u.key}`;
  return (
    <li class={`upload upload-${u.state}`} data-state={u.state} data-path={u.path}>
      <label for={id}>{u.filename}</label>
      <progress id={id} max={u.total || 1} value={u.sent}>{pct(u)}%</progress>
      <span class="pct">{pct(u)}%</span>
      {u.state === "uploading" ? (
        <button type="button" onClick={props.onCancel} aria-label={`Cancel upload of ${u.filename}`}>Cancel</button>
      ) : (
        <span class="state" role={u.state === "failed" ? "alert" : undefined}>
          {u.state === "failed" ? describe(u.error) : u.state}
        </span>
      )}
      {(u.state === "failed" && retryable(u.error)) || u.state === "cancelled" ? (
        <button type="button" onClick={props.onRetry} aria-label={`Retry upload of ${u.filename}`}>Retry</button>
      ) : null}
    </li>
  );
}

function ProblemMessage(props: { problem: ApiProblem | null }) {
  if (!props.problem) return null;
  return <p class="problem" role="alert">{describe(props.problem)}</p>;
}

function describe(p: ApiProblem | undefined): string {
  if (!p) return "failed";
  return p.detail ? `${p.detail} (${p.code})` : p.code;
}

/** Worth sending again: the connection or the service failed, not the file itself. */
function retryable(p: ApiProblem | undefined): boolean {
  return !p || p.status === 0 || p.status === 408 || p.status === 429 || p.status >= 500;
}

/** Only judged-clean content is offered for download (the server refuses the rest unless configured otherwise). */
function servable(a: Attachment): boolean {
  return a.virusScanStatus === "clean";
}

function pct(u: UploadItem): number {
  return u.total ? Math.floor((u.sent / u.total) * 100) : 0;
}

function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
