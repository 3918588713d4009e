// `npm run bench:connections`: MCP tools/call through /connections/{name}/ against the
// same MCP server called directly with the same access token. Requests/s under load,
// latency at one connection, and the gateway's CPU per request; several rounds, medians.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Pool } from 'undici';
import { cpuMicros, machine, median, percentile, startChild } from './lib/procs.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const PASSWORD = 'bench-password';
const PROTOCOL = '2025-06-18';

const here = path.dirname(new URL(import.meta.url).pathname);
const upstream = await startChild([path.join(here, 'connections-upstream.ts')], /mcp (\S+) as (\S+)/);
const [, mcpUrl, asOrigin] = upstream.match as unknown as [string, string, string];
const dataDir = mkdtempSync(path.join(tmpdir(), 'portcullis-bench-conn-'));
const configFile = path.join(dataDir, 'portcullis.yaml');
writeFileSync(configFile, `listen: 127.0.0.1:0\ndataDir: ${dataDir}\noutbound:\n  allowPrivateAddresses: true\nlog:\n  level: info\n`);
const gateway = await startChild([path.resolve(here, '../bin/portcullis.js'), 'serve', '--config', configFile], /listening on (http:\/\/[\d.:]+)/, {
  ...process.env,
  PORTCULLIS_ADMIN_PASSWORD: PASSWORD,
});
const gatewayUrl = gateway.match[1]!;
const admin = 'Basic ' + Buffer.from(`admin:${PASSWORD}`).toString('base64');

async function check(response: Response, what: string): Promise<Response> {
  if (response.status >= 400) throw new Error(`${what}: ${response.status} ${await response.text()}`);
  return response;
}

// The admin adds the connection (discovery, registration); admin authorizes it as a user would.
await check(
  await fetch(`${gatewayUrl}/api/admin/connections`, {
    method: 'POST',
    headers: { authorization: admin, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'mcp', url: mcpUrl, auth: 'oauth2.1' }),
  }),
  'adding the connection',
);
let next: URL = new URL(`${gatewayUrl}/api/connections/mcp/authorize?return_to=/`);
for (let hop = 0; hop < 6; hop++) {
  const headers: Record<string, string> = next.origin === gatewayUrl ? { authorization: admin } : { cookie: 'as_user=admin' };
  const response = await fetch(next, { headers, redirect: 'manual' });
  const location = response.headers.get('location');
  if (!location || (location.startsWith('/') && !location.startsWith('/api/'))) break;
  next = new URL(location, next);
}

const mcpHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': PROTOCOL };

/** MCP initialize + initialized; returns the session id. */
async function session(url: string, authorization: string): Promise<string> {
  const init = await check(
    await fetch(url, {
      method: 'POST',
      headers: { ...mcpHeaders, authorization },
      body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'bench', version: '1' } } }),
    }),
    `initialize at ${url}`,
  );
  await init.text();
  const id = init.headers.get('mcp-session-id')!;
  await (await fetch(url, { method: 'POST', headers: { ...mcpHeaders, authorization, 'mcp-session-id': id }, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) })).text();
  return id;
}

const viaGateway = `${gatewayUrl}/connections/mcp`;
const gatewaySession = await session(viaGateway, admin);
// The token the gateway injects, as the tool saw it: the direct calls use the same one.
const who = await (
  await fetch(viaGateway, {
    method: 'POST',
    headers: { ...mcpHeaders, authorization: admin, 'mcp-session-id': gatewaySession },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } }),
  })
).text();
const token = JSON.parse(JSON.parse(/data: (.*)/.exec(who)![1]!).result.content[0].text).token as string;
const bearer = `Bearer ${token}`;
const directSession = await session(mcpUrl, bearer);

interface Target {
  name: string;
  url: URL;
  headers: Record<string, string>;
  pid: number | undefined;
}
const targets: Target[] = [
  { name: 'direct (same token)', url: new URL(mcpUrl), headers: { ...mcpHeaders, authorization: bearer, 'mcp-session-id': directSession }, pid: undefined },
  { name: 'through /connections/mcp', url: new URL(viaGateway), headers: { ...mcpHeaders, authorization: admin, 'mcp-session-id': gatewaySession }, pid: gateway.child.pid },
];
// Every call has its own JSON-RPC id: the MCP server routes each response by id.
let nextId = 10;
const body = () => JSON.stringify({ jsonrpc: '2.0', id: nextId++, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hello from the benchmark' } } });

async function call(pool: Pool, target: Target): Promise<void> {
  const response = await pool.request({ path: target.url.pathname, method: 'POST', headers: target.headers, body: body() });
  const text = await response.body.text();
  if (response.statusCode !== 200 || !text.includes('hello from the benchmark')) throw new Error(`${target.name}: ${response.statusCode} ${text.slice(0, 200)}`);
}

/** One slice of load on a target: its completed calls, elapsed seconds and gateway CPU µs. */
async function slice(pool: Pool, target: Target, seconds: number, connections: number): Promise<{ calls: number; elapsed: number; cpu: number }> {
  const cpuBefore = target.pid ? cpuMicros(target.pid) : 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  let calls = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < end) {
        await call(pool, target);
        calls++;
      }
    }),
  );
  return { calls, elapsed: (performance.now() - start) / 1000, cpu: target.pid ? cpuMicros(target.pid) - cpuBefore : 0 };
}

/**
 * Requests/s per target over `seconds`, in one-second slices that alternate between the
 * targets: on a shared machine, background load then weighs on both alike.
 */
async function load(seconds: number, connections: number): Promise<Map<string, { rps: number; cpuPerReq: number }>> {
  const pools = new Map(targets.map((t) => [t.name, new Pool(t.url.origin, { connections, pipelining: 1 })]));
  const totals = new Map(targets.map((t) => [t.name, { calls: 0, elapsed: 0, cpu: 0 }]));
  for (let s = 0; s < seconds; s++) {
    for (const t of s % 2 === 0 ? targets : [...targets].reverse()) {
      const r = await slice(pools.get(t.name)!, t, 1, connections);
      const total = totals.get(t.name)!;
      total.calls += r.calls;
      total.elapsed += r.elapsed;
      total.cpu += r.cpu;
    }
  }
  for (const pool of pools.values()) await pool.close();
  return new Map([...totals].map(([name, t]) => [name, { rps: t.calls / t.elapsed, cpuPerReq: t.cpu / t.calls }]));
}

async function latency(target: Target, n = 1500): Promise<number[]> {
  const pool = new Pool(target.url.origin, { connections: 1 });
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await call(pool, target);
    if (i >= 300) samples.push(performance.now() - t0);
  }
  await pool.close();
  return samples;
}

console.log(`Machine: ${machine()}`);
console.log(`MCP tools/call (echo), ${ROUNDS} rounds × ${SECONDS} s per path at ${CONNECTIONS} connections (1 s slices, alternating paths); latency at 1 connection (1,200 calls)\n`);

await load(2, 8); // warm-up: JIT, pools, caches
const results = new Map(targets.map((t) => [t.name, { rps: [] as number[], cpu: [] as number[], p50: [] as number[], p99: [] as number[] }]));
for (let round = 1; round <= ROUNDS; round++) {
  const loaded = await load(SECONDS, CONNECTIONS);
  for (const t of targets) {
    const r = results.get(t.name)!;
    r.rps.push(loaded.get(t.name)!.rps);
    r.cpu.push(loaded.get(t.name)!.cpuPerReq);
    const lat = await latency(t);
    r.p50.push(percentile(lat, 50));
    r.p99.push(percentile(lat, 99));
  }
  process.stderr.write(`round ${round}/${ROUNDS} done\n`);
}

const direct = results.get(targets[0]!.name)!;
console.log('| path | req/s | vs direct | gateway CPU µs/req | p50 ms (1 conn) | p99 ms | added p50 |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const t of targets) {
  const r = results.get(t.name)!;
  console.log(
    `| ${t.name} | ${median(r.rps).toFixed(0)} | ${(median(r.rps) / median(direct.rps)).toFixed(2)}× | ${t.pid ? median(r.cpu).toFixed(0) : '–'} | ${median(r.p50).toFixed(3)} | ${median(r.p99).toFixed(3)} | ${(median(r.p50) - median(direct.p50)).toFixed(3)} |`,
  );
}

gateway.child.kill('SIGTERM');
upstream.child.kill('SIGTERM');
rmSync(dataDir, { recursive: true, force: true });
