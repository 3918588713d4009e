import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// The web UI, built to static files that the gateway serves at `/`.
// Hashed file names under assets/ let the gateway cache them for a long time.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  plugins: [preact()],
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    emptyOutDir: true,
    target: 'es2022',
    // Every browser the UI supports has modulepreload: skip the polyfill.
    modulePreload: { polyfill: false },
    // xterm.js is one ~330 kB chunk loaded only with the terminal page.
    chunkSizeWarningLimit: 400,
  },
});
