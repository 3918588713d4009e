// Runs after `npm ci` / `npm install` in this project (not when installed as a dependency):
// builds the web UI so `npm start` and `npm test` serve real static files.
//
// ssh2's optional native crypto addon is deliberately NOT rebuilt for the pinned Node 24:
// rebuilt, it aborts the process when V8 collects its cipher objects (see
// src/protocol/ssh2.ts and docs/DECISIONS.md); ssh2 uses node:crypto (OpenSSL) instead.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const npm = process.env.npm_execpath;

function run(args) {
  // npm_execpath is npm's JS entry; run it with the current (pinned) node.
  execFileSync(process.execPath, [npm, ...args], { cwd: root, stdio: 'inherit' });
}

if (process.env.PORTCULLIS_SKIP_POSTINSTALL !== '1' && npm) {
  if (existsSync(path.join(root, 'web', 'vite.config.ts'))) {
    run(['run', 'build:ui']);
  }
}
