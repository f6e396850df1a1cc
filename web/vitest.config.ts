import { defineConfig } from "vitest/config";

// Every test talks to the running stack (scripts/dev): no mocks, generous timeouts for scans.
export default defineConfig({
  test: {
    include: ["client/test/**/*.test.ts", "react/test/**/*.test.tsx"],
    testTimeout: 90_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
