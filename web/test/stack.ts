// The running stack the tests talk to: BASE_URL from the environment or .data/dev.env (written by
// scripts/dev); users from scripts/seed (DATABASE_ADMIN_URL from the environment or the same file).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { AttachmentsClient, ApiProblem, type Attachment, type ClientOptions } from "../client/src";

// From the string: under happy-dom, URL is the DOM's, which node:url does not take.
const root = `${resolve(dirname(fileURLToPath(import.meta.url)), "../..")}/`;

function devEnv(): Record<string, string> {
  try {
    const out: Record<string, string> = {};
    for (const line of readFileSync(`${root}.data/dev.env`, "utf8").split("\n")) {
      const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
      if (m) out[m[1]!] = m[2]!.replace(/^'(.*)'$/, "$1").replace(/^"(.*)"$/, "$1");
    }
    return out;
  } catch {
    return {};
  }
}

const env = devEnv();
// Vitest sets BASE_URL to Vite's base path ("/") in its test workers, so the stack's URL comes as
// STACK_BASE_URL (scripts/test sets it); an absolute BASE_URL (outside vitest) or .data/dev.env serve too.
const absolute = (v?: string) => (/^https?:\/\//.test(v ?? "") ? v : undefined);
const fromEnv = absolute(process.env.STACK_BASE_URL) ?? absolute(process.env.BASE_URL);
export const BASE_URL = (fromEnv ?? env.BASE_URL ?? "").replace(/\/+$/, "");
if (!BASE_URL) {
  throw new Error("no BASE_URL: start scripts/dev (it writes .data/dev.env) or set STACK_BASE_URL");
}

interface SeedUser { id: string; email: string; password: string; role: string }
interface SeedMessage { id: string; ownerUserId: string }
interface Seeded { tenants: { users: SeedUser[]; messages: SeedMessage[] }[] }

export interface TestUser { email: string; password: string; messageId: string }
const pool: TestUser[] = [];

/**
 * A user of a fresh tenant (`scripts/seed --json`: two tenants, two users each, messages of their
 * own), one per test: the per-user rate limit and the lists never meet another test's.
 */
export function freshUser(): TestUser {
  if (pool.length === 0) {
    const out = execFileSync(`${root}scripts/seed`, ["--json"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
    const seeded = JSON.parse(out) as Seeded;
    for (const t of seeded.tenants) {
      for (const u of t.users.filter((x) => x.role === "user")) {
        const m = t.messages.find((x) => x.ownerUserId === u.id)!;
        pool.push({ email: u.email, password: u.password, messageId: m.id });
      }
    }
  }
  return pool.shift()!;
}

export function client(opts: Partial<ClientOptions> = {}): AttachmentsClient {
  return new AttachmentsClient({ baseUrl: BASE_URL, transport: "fetch", ...opts });
}

export async function loggedIn(opts: Partial<ClientOptions> = {}) {
  const u = freshUser();
  const c = client(opts);
  await c.login(u.email, u.password);
  return { c, ...u };
}

/** Pseudo-random bytes (xorshift), so content is never deduplicated across runs by accident. */
export function bytes(len: number, seed = Date.now() ^ (Math.random() * 2 ** 31)): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(len);
  let x = seed | 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export const EICAR = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/** Polls the scan status until it leaves `pending` (and a direct upload's `verifying`) (the stack's scan worker judges within seconds). */
export async function settled(c: AttachmentsClient, id: string, timeoutMs = 60_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const s = await c.scanStatus(id);
      if (s.status !== "pending" && s.status !== "verifying") return s.status;
    } catch (e) {
      // a direct upload is 404 here while it is verified
      if (!(e instanceof ApiProblem && e.status === 404)) throw e;
    }
    if (Date.now() > end) throw new Error(`attachment ${id} still pending after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

export async function problem(p: Promise<unknown>): Promise<ApiProblem> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ApiProblem) return e;
    throw e;
  }
  throw new Error("expected the call to fail");
}

export type { Attachment };

/** Byte equality without a deep comparison of megabytes element by element (slow in expect). */
export function sameBytes(got: ArrayBuffer, want: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(got), Buffer.from(want.buffer, want.byteOffset, want.byteLength)) === 0;
}
