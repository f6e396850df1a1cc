// Measures the console's first load in headless Chromium (a fresh profile, nothing cached): the bytes
// transferred on the wire (headers + bodies as sent, encodedDataLength) and the time until the login
// form can be typed into (from navigation start). Prints one JSON line. BASE_URL from the environment.
// Run by scripts/bench (section console); not a test.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer from "puppeteer-core";

const BASE_URL = process.env.BASE_URL;
if (!BASE_URL) throw new Error("BASE_URL is not set");
const runs = Number(process.env.RUNS ?? 5);
const results = [];
for (let i = 0; i < runs; i++) {
  const profile = mkdtempSync(join(tmpdir(), "console-bench-"));
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync", `--user-data-dir=${profile}`],
  });
  try {
    const page = await browser.newPage();
    const cdp = await page.createCDPSession();
    await cdp.send("Network.enable");
    await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
    let bytes = 0;
    let requests = 0;
    cdp.on("Network.loadingFinished", (e) => {
      bytes += e.encodedDataLength;
      requests++;
    });
    const t0 = Date.now();
    await page.goto(`${BASE_URL}/`, { waitUntil: "domcontentloaded" });
    await page.waitForSelector("input#email:not([disabled])");
    const interactive = Date.now() - t0;
    await page.waitForNetworkIdle({ idleTime: 200 });
    results.push({ bytes, requests, interactive });
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
const sorted = (k) => results.map((r) => r[k]).sort((a, b) => a - b);
const median = (k) => sorted(k)[Math.floor(runs / 2)];
console.log(JSON.stringify({ runs, bytes: median("bytes"), requests: median("requests"), interactiveMs: median("interactive"), all: results }));
