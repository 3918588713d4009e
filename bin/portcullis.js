#!/usr/bin/env node
// Portcullis runs its TypeScript sources directly (Node's type stripping), so it needs
// Node 22.18+ / 24; the project pins Node 24 for its npm scripts and npx.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(`portcullis needs Node.js 22.18 or newer (this is ${process.version}); run it through npx or npm scripts in the project.`);
  process.exit(1);
}
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
