import { defineConfig } from "vitest/config";
import { BASE_URL } from "./test/stack";

// Every test talks to the running stack (scripts/dev): no mocks, generous timeouts for scans. The
// hook's tests run in happy-dom on the stack's own origin, so its fetch applies the same-origin and
// CORS rules a browser page of the console would meet (direct-upload parts go to the bucket, cross-origin).
export default defineConfig({
  test: {
    include: ["client/test/**/*.test.ts", "react/test/**/*.test.tsx"],
    testTimeout: 90_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    environmentOptions: { happyDOM: { url: `${BASE_URL}/` } },
  },
});
