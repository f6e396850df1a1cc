import preact from "@preact/preset-vite";
import { defineConfig } from "vite";

// Built once into dist/ and embedded in the console component (components/console): hashed names
// under /assets/ (served immutable), no inline script or style (the page's CSP forbids both).
export default defineConfig({
  root: __dirname,
  plugins: [preact()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2022",
    reportCompressedSize: true,
  },
});
