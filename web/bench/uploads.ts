// 100 uploads of 100 KiB through the TypeScript client (web/client) at concurrency 10, each its own
// single-request upload, timed from the first request to the last answer; one JSON line. A user of a
// fresh tenant (scripts/seed). Run with vite-node by scripts/bench (section console); not a test.
import { bytes, freshUser, client } from "../test/stack";

const COUNT = Number(process.env.COUNT ?? 100);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 10);
const SIZE = 100 * 1024;

const u = freshUser();
const c = client();
await c.login(u.email, u.password);
const files = Array.from({ length: COUNT }, (_, i) => new Blob([bytes(SIZE, i + 1 + Date.now())]));
let next = 0;
const t0 = performance.now();
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (next < COUNT) {
      const i = next++;
      await c.upload(u.messageId, files[i]!, { filename: `bench-${i}.bin` });
    }
  }),
);
const seconds = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ count: COUNT, concurrency: CONCURRENCY, size: SIZE, seconds }));
