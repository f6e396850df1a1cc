// The console end to end in real headless Chromium (Debian's /usr/bin/chromium, driven by
// puppeteer-core; no browser download) against the running stack with its scan worker:
// log in (the newest message opens at once) → upload 20 MiB with progress → pending → clean → download and compare the bytes →
// EICAR infected, its link refused → revoke makes an issued link fail → log out. A screenshot per
// step goes to e2e/artifacts/ (gitignored); any console error, page error or failed request the
// test did not expect fails it; axe-core checks the login form and the message view.
//
// Run: npm run e2e (web/), with BASE_URL or .data/dev.env from scripts/dev; CHROMIUM overrides
// the browser's path.
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import puppeteer from "puppeteer-core";

const require = createRequire(import.meta.url);
const here = fileURLToPath(new URL(".", import.meta.url));
const root = join(here, "../..");
const artifacts = join(here, "artifacts");
mkdirSync(artifacts, { recursive: true });

function devEnv() {
  try {
    return Object.fromEntries(
      readFileSync(join(root, ".data/dev.env"), "utf8")
        .split("\n")
        .map((l) => /^([A-Z0-9_]+)=(.*)$/.exec(l.trim()))
        .filter(Boolean)
        .map((m) => [m[1], m[2].replace(/^'(.*)'$/, "$1")]),
    );
  } catch {
    return {};
  }
}
const BASE_URL = process.env.BASE_URL ?? devEnv().BASE_URL;
// A user of a fresh tenant (scripts/seed --json; DATABASE_ADMIN_URL from the environment or .data/dev.env).
const seeded = JSON.parse(execFileSync(join(root, "scripts/seed"), ["--json"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }));
const user = seeded.tenants[0].users.find((u) => u.role === "user");
// The seed lists messages oldest first: the last of the user's is the newest, which the console opens.
const messageId = seeded.tenants[0].messages.filter((m) => m.ownerUserId === user.id).at(-1).id;

const MIB = 1024 * 1024;
const EICAR = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

function randomBytes(len) {
  const out = Buffer.alloc(len);
  let x = (Date.now() ^ 0x5eed) | 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

async function until(what, f, timeoutMs = 60_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Debian's headless Chromium with a profile under `work`. */
function launch(work) {
  return puppeteer.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${join(work, "profile")}`,
    ],
  });
}

test("console: login, 20 MiB upload, scan, download, EICAR, revoke, logout", { timeout: 240_000 }, async () => {
  assert.ok(BASE_URL, "no BASE_URL: start scripts/dev (it writes .data/dev.env)");
  for (const f of readdirSync(artifacts, { withFileTypes: true }).filter((f) => f.isFile())) rmSync(join(artifacts, f.name));
  const work = mkdtempSync(join(tmpdir(), "console-e2e-"));
  const downloads = join(work, "downloads");
  mkdirSync(downloads);
  const big = randomBytes(20 * MIB);
  const bigPath = join(work, "big-e2e.bin");
  writeFileSync(bigPath, big);
  const eicarPath = join(work, "eicar-e2e.txt");
  writeFileSync(eicarPath, EICAR);

  const browser = await launch(work);
  const unexpected = [];
  // Requests that fail by design: a download navigation ends as an aborted request.
  const expectedFailure = (url, why) => why === "net::ERR_ABORTED" && (url.includes("/api/v1/files/") || !url.startsWith(BASE_URL));
  let step = 0;
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 900 });
    page.on("console", (m) => m.type() === "error" && unexpected.push(`console: ${m.text()}`));
    page.on("pageerror", (e) => unexpected.push(`page error: ${e.message}`));
    page.on("requestfailed", (r) => {
      const why = r.failure()?.errorText ?? "";
      if (!expectedFailure(r.url(), why)) unexpected.push(`request failed: ${r.method()} ${r.url()} ${why}`);
    });
    page.on("response", (r) => {
      if (r.status() >= 400) unexpected.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
    });
    // Every upload progress event the page's XMLHttpRequests fire (the client sends through XHR).
    await page.evaluateOnNewDocument(() => {
      globalThis.__uploadProgress = [];
      const send = XMLHttpRequest.prototype.send;
      XMLHttpRequest.prototype.send = function (body) {
        this.upload.addEventListener("progress", (e) => globalThis.__uploadProgress.push(e.loaded));
        return send.call(this, body);
      };
    });
    // Uploads at 16 MiB/s, so that the bar is seen moving on a machine where storage is local.
    const pageCdp = await page.createCDPSession();
    await pageCdp.send("Network.enable");
    await pageCdp.send("Network.emulateNetworkConditions", {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: 16 * MIB,
    });
    const cdp = await browser.target().createCDPSession();
    await cdp.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: downloads, eventsEnabled: true });
    const shot = async (name) => page.screenshot({ path: join(artifacts, `${String(++step).padStart(2, "0")}-${name}.png`), fullPage: true });
    const axe = async (where) => {
      // Runtime evaluation from the test, not a page script: the page's CSP stays as served.
      await page.evaluate(readFileSync(require.resolve("axe-core/axe.min.js"), "utf8"));
      const r = await page.evaluate(() => globalThis.axe.run(document, { resultTypes: ["violations"] }));
      const bad = r.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
      assert.deepEqual(bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target).join(" ")})`), [], `axe on ${where}`);
    };
    const row = (name) => page.$(`xpath///tr[th[normalize-space()="${name}"]]`);
    const chip = async (name) => {
      const r = await row(name);
      return r ? r.$eval(".chip", (e) => e.dataset.status) : null;
    };

    // ---- log in
    const first = await page.goto(`${BASE_URL}/`, { waitUntil: "networkidle0" });
    assert.equal(first.status(), 200);
    assert.match(first.headers()["content-security-policy"], /script-src 'self'/);
    await page.waitForSelector("form.login");
    await shot("login");
    await axe("the login form");
    await page.type("#email", user.email);
    await page.type("#password", user.password);
    await page.keyboard.press("Enter"); // keyboard-usable: Enter submits
    // Straight after login the newest message is open: its file input is on screen, no hash needed.
    await page.waitForSelector("input#files", { visible: true });
    assert.equal(new URL(page.url()).hash, "");
    assert.equal(await page.$eval("select#message", (s) => s.value), messageId);
    assert.match(await page.$eval("#message-title", (h) => h.textContent), new RegExp(messageId));
    await shot("logged-in");

    // ---- 20 MiB through the file input: progress, then pending, then clean
    const input = await page.$("input#files");
    await input.uploadFile(bigPath);
    // The bar moves: a value strictly between 0 and the size, seen on an animation frame.
    const mid = await page.waitForFunction(
      () => {
        const p = document.querySelector(".upload progress");
        return p && p.value > 0 && p.value < p.max && p.value;
      },
      { polling: "raf", timeout: 60_000 },
    );
    assert.ok((await mid.jsonValue()) < big.length);
    await shot("upload-progress");
    await page.waitForFunction(() => document.querySelector(".upload")?.dataset.state !== "uploading", { timeout: 120_000 });
    assert.equal(await page.$eval(".upload", (li) => li.dataset.state), "done");
    assert.equal(await page.$eval(".upload progress", (p) => p.value), big.length);
    // Throttling off again (under it Chromium reports bodiless 204 answers as aborted).
    await pageCdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    const events = await page.evaluate(() => globalThis.__uploadProgress);
    assert.ok(events.filter((n) => n > 0 && n < 8 * MIB).length > 0, `progress events: ${events}`);
    const early = await until("the new row", () => chip("big-e2e.bin"));
    assert.ok(["verifying", "pending", "clean"].includes(early), early);
    await shot(`scan-${early}`);
    await until("the clean verdict", async () => (await chip("big-e2e.bin")) === "clean", 90_000);
    await shot("scan-clean");
    await axe("the message view");

    // ---- download through a fresh signed URL: the same bytes
    await (await row("big-e2e.bin")).$eval("button[aria-label^='Download']", (b) => b.click());
    const file = await until("the download", () => {
      const done = readdirSync(downloads).filter((f) => !f.endsWith(".crdownload"));
      return done.length && statSync(join(downloads, done[0])).size === big.length && join(downloads, done[0]);
    }, 60_000);
    assert.ok(readFileSync(file).equals(big), "downloaded bytes differ");
    await shot("downloaded");

    // ---- EICAR: infected, not downloadable, its link refused
    await input.uploadFile(eicarPath);
    await until("EICAR infected", async () => (await chip("eicar-e2e.txt")) === "infected", 90_000);
    const eicarRow = await row("eicar-e2e.txt");
    assert.equal(await eicarRow.$eval("button[aria-label^='Download']", (b) => b.disabled), true);
    await eicarRow.$eval("button[aria-label^='Get link']", (b) => b.click());
    const eicarUrl = await until("the EICAR link", async () => {
      const el = await (await row("eicar-e2e.txt")).$("input.link");
      return el && el.evaluate((e) => e.value);
    });
    const refused = await fetch(eicarUrl);
    assert.equal(refused.status, 403);
    assert.equal((await refused.json()).code, "scan_blocked");
    await shot("eicar-infected");

    // ---- revoke: an issued link stops working
    await (await row("big-e2e.bin")).$eval("button[aria-label^='Get link']", (b) => b.click());
    const link = await until("the link", async () => {
      const el = await (await row("big-e2e.bin")).$("input.link");
      return el && el.evaluate((e) => e.value);
    });
    const before = await fetch(link, { method: "HEAD", redirect: "manual" });
    assert.ok([200, 302].includes(before.status), `before revoking: ${before.status}`);
    await (await row("big-e2e.bin")).$eval("button[aria-label^='Revoke']", (b) => b.click());
    await until("the link to go", async () => !(await (await row("big-e2e.bin")).$("input.link")));
    const after = await fetch(link, { method: "HEAD", redirect: "manual" });
    assert.equal(after.status, 403);
    await shot("revoked");

    // ---- clean up and log out
    for (const name of ["big-e2e.bin", "eicar-e2e.txt"]) {
      await (await row(name)).$eval("button[aria-label^='Delete']", (b) => b.click());
      await until(`${name} deleted`, async () => !(await row(name)));
    }
    await page.click("xpath///button[normalize-space()='Log out']");
    await page.waitForSelector("form.login");
    await shot("logged-out");

    assert.deepEqual(unexpected, [], "unexpected errors in the browser");
  } catch (e) {
    const pages = await browser.pages();
    if (pages.length) await pages[pages.length - 1].screenshot({ path: join(artifacts, "failure.png"), fullPage: true }).catch(() => {});
    throw new Error(`${e.message}\nunexpected so far: ${JSON.stringify(unexpected)}`, { cause: e });
  } finally {
    await browser.close();
    rmSync(work, { recursive: true, force: true });
  }
});

// Bad input in the browser, on a page whose requests the test can cut: the bucket refuses this origin
// (every part PUT fails, as a bucket without a CORS rule for it does), so a 20 MiB file falls back to
// tus; the access token is refused mid-upload (the service answers 401 to the upload's status check:
// the console refreshes and goes on); the connection drops during a chunk (the console asks where the
// upload stands and resumes); a file over the limit is refused with no request sent; a blocked type
// shows the server's reason. Every failure the test causes is expected by name; any other fails it.
test("console: bad input (no bucket CORS → tus, token refused mid-upload, connection drop, over the limit, blocked type)", { timeout: 240_000 }, async () => {
  assert.ok(BASE_URL, "no BASE_URL: start scripts/dev (it writes .data/dev.env)");
  const shots = join(artifacts, "bad-input");
  rmSync(shots, { recursive: true, force: true });
  mkdirSync(shots, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), "console-bad-"));
  const other = seeded.tenants[1].users.find((u) => u.role === "user");
  const big = randomBytes(20 * MIB);
  const bigPath = join(work, "resumable-e2e.bin");
  writeFileSync(bigPath, big);
  const exePath = join(work, "setup.exe");
  writeFileSync(exePath, "MZ not really a program");
  // One byte over the client's limit (5 GiB, the service's direct_upload_max_bytes default), sparse:
  // nothing is read before the check.
  const hugePath = join(work, "huge-e2e.bin");
  writeFileSync(hugePath, "");
  truncateSync(hugePath, 5 * 1024 * MIB + 1);

  const browser = await launch(work);
  const unexpected = [];
  /** Failures the test causes on purpose: [what, predicate(url, method, detail)]. */
  const expected = [];
  const isExpected = (url, method, detail) => expected.some(([, f]) => f(url, method, detail));
  let step = 0;
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 900 });
    page.on("console", (m) => {
      if (m.type() !== "error") return;
      const url = m.location()?.url ?? "";
      if (!isExpected(url, "", m.text())) unexpected.push(`console: ${m.text()} (${url})`);
    });
    page.on("pageerror", (e) => unexpected.push(`page error: ${e.message}`));
    page.on("requestfailed", (r) => {
      const why = r.failure()?.errorText ?? "";
      if (!isExpected(r.url(), r.method(), why)) unexpected.push(`request failed: ${r.method()} ${r.url()} ${why}`);
    });
    page.on("response", (r) => {
      if (r.status() >= 400 && !isExpected(r.url(), r.request().method(), String(r.status()))) {
        unexpected.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
      }
    });
    // Under request interception Chromium reports answers without a body (the tus creation's 201, a
    // HEAD) as ERR_ABORTED although the page reads them (the upload below goes on with their headers).
    expected.push(["bodiless tus answers", (url, method, d) => d === "net::ERR_ABORTED" &&
      ((method === "POST" && /\/api\/v1\/emails\/[^/]+\/tus$/.test(url)) || (method === "HEAD" && url.includes("/api/v1/tus/")))]);
    const sent = [];
    const cut = { bucket: true, patches: 0, dropPatch: 2, badHead: true };
    await page.setRequestInterception(true);
    page.on("request", (req) => {
      const url = req.url();
      sent.push(`${req.method()} ${url}`);
      if (req.isInterceptResolutionHandled()) return;
      if (cut.bucket && !url.startsWith(BASE_URL) && req.method() === "PUT") return req.abort("failed");
      if (req.method() === "PATCH" && url.includes("/api/v1/tus/") && ++cut.patches === cut.dropPatch) {
        return req.abort("connectionreset");
      }
      if (req.method() === "HEAD" && url.includes("/api/v1/tus/") && cut.badHead) {
        // The token this request carries is refused (as an expired one is): a real 401 from the service.
        cut.badHead = false;
        const headers = { ...req.headers(), authorization: "Bearer expired.token.value" };
        return req.continue({ headers });
      }
      return req.continue();
    });
    const shot = async (name) => page.screenshot({ path: join(shots, `${String(++step).padStart(2, "0")}-${name}.png`), fullPage: true });
    const upload = (name) => page.$(`xpath///li[contains(@class,"upload")][label[normalize-space()="${name}"]]`);
    const uploadState = async (name) => {
      const li = await upload(name);
      return li ? li.evaluate((e) => ({ state: e.dataset.state, path: e.dataset.path ?? "", text: e.textContent })) : null;
    };

    await page.goto(`${BASE_URL}/`, { waitUntil: "networkidle0" });
    await page.type("#email", other.email);
    await page.type("#password", other.password);
    await page.keyboard.press("Enter");
    await page.waitForSelector("input#files", { visible: true });
    await shot("logged-in");
    const input = await page.$("input#files");

    // ---- over the limit: refused in the page, no request leaves
    const before = sent.length;
    await input.uploadFile(hugePath);
    const huge = await until("the refusal", async () => {
      const s = await uploadState("huge-e2e.bin");
      return s?.state === "failed" && s;
    });
    assert.match(huge.text, /payload_too_large/);
    assert.match(huge.text, /at most \d+ bytes/);
    assert.deepEqual(sent.slice(before), [], "no request for a file over the limit");
    await shot("over-the-limit");

    // ---- a blocked type: the server's reason, shown
    expected.push(["the blocked type's 415", (url, method, d) => url.includes("/attachments") && (d === "415" || /415/.test(d))]);
    await input.uploadFile(exePath);
    const exe = await until("the blocked type", async () => {
      const s = await uploadState("setup.exe");
      return s?.state === "failed" && s;
    });
    assert.match(exe.text, /blocked_file_type/);
    const reason = await until("the server's detail", async () => {
      const res = await fetch(`${BASE_URL}/api/v1/emails/${seeded.tenants[1].messages.filter((m) => m.ownerUserId === other.id).at(-1).id}/attachments`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${(await (await fetch(`${BASE_URL}/api/v1/auth/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: other.email, password: other.password }) })).json()).accessToken}`,
          "content-type": "application/octet-stream",
          "content-disposition": "attachment; filename=setup.exe",
        },
        body: "MZ not really a program",
      });
      return (await res.json()).detail;
    });
    assert.ok(exe.text.includes(reason), `the page shows the server's detail "${reason}": ${exe.text}`);
    await shot("blocked-type");

    // ---- 20 MiB: the bucket refuses this origin → tus; a chunk's connection drops → HEAD (its token
    // refused → refresh) → resume from the server's offset
    expected.push(["part PUTs to the bucket", (url, method, d) => !url.startsWith(BASE_URL) && (method === "PUT" || method === "" || /ERR_FAILED|Failed to load/.test(d))]);
    expected.push(["the dropped chunk", (url, method, d) => url.includes("/api/v1/tus/") && (method === "PATCH" || /CONNECTION_RESET/.test(d))]);
    expected.push(["the refused token's 401", (url, method, d) => url.includes("/api/v1/tus/") && (d === "401" || /401/.test(d))]);
    const refreshes = () => sent.filter((s) => s.startsWith(`POST ${BASE_URL}/api/v1/auth/refresh`)).length;
    const refreshesBefore = refreshes();
    await input.uploadFile(bigPath);
    await page.waitForFunction(() => document.querySelector('li.upload[data-path="tus"]'), { timeout: 60_000 });
    await shot("fell-back-to-tus");
    const done = await until("the resumed upload", async () => {
      const s = await uploadState("resumable-e2e.bin");
      return s && s.state !== "uploading" && s;
    }, 180_000);
    assert.equal(done.state, "done", done.text);
    assert.equal(done.path, "tus");
    assert.ok(sent.some((s) => s.startsWith(`PUT `) && !s.includes(BASE_URL)), "a part PUT to the bucket was tried first");
    assert.ok(sent.some((s) => s.startsWith(`HEAD ${BASE_URL}/api/v1/tus/`)), "HEAD asked where the upload stood");
    assert.ok(refreshes() > refreshesBefore, "the refused token was refreshed");
    assert.equal(cut.patches, 4, "three chunks, one sent twice");
    await shot("resumed-done");
    const row = await until("the row", () => page.$(`xpath///tr[th[normalize-space()="resumable-e2e.bin"]]`));
    await until("the clean verdict", async () => (await row.$eval(".chip", (e) => e.dataset.status)) === "clean", 120_000);
    await shot("resumed-clean");
    await row.$eval("button[aria-label^='Delete']", (b) => b.click());
    await until("deleted", async () => !(await page.$(`xpath///tr[th[normalize-space()="resumable-e2e.bin"]]`)));

    assert.deepEqual(unexpected, [], "unexpected errors in the browser");
  } catch (e) {
    const pages = await browser.pages();
    if (pages.length) await pages[pages.length - 1].screenshot({ path: join(shots, "failure.png"), fullPage: true }).catch(() => {});
    throw new Error(`${e.message}\nunexpected so far: ${JSON.stringify(unexpected)}`, { cause: e });
  } finally {
    await browser.close();
    rmSync(work, { recursive: true, force: true });
  }
});
