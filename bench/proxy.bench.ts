// `npm run bench:proxy`: requests/s, CPU µs per request of the proxy process, added
// latency, 64 KiB throughput and 1 GiB streams — direct vs bare @fastify/http-proxy vs
// Portcullis (anonymous, Basic, session cookie), several rounds, medians and ratios.
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import autocannon from 'autocannon';
import { Client } from 'undici';
import { cpuMicros, machine, median, percentile, rssBytes, startChild } from './lib/procs.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DURATION = Number(process.env.BENCH_SECONDS ?? 5);
const STREAM_BYTES = Number(process.env.BENCH_STREAM_BYTES ?? 1024 ** 3);
/** BENCH_ONLY=streams runs only the 1 GiB streams. */
const ONLY_STREAMS = process.env.BENCH_ONLY === 'streams';
const PASSWORD = 'bench-password';

const here = path.dirname(new URL(import.meta.url).pathname);
const upstream = await startChild([path.join(here, 'lib/upstream.ts')], /(http:\/\/\S+)/);
const upstreamUrl = upstream.match[1]!;
const bare = await startChild([path.join(here, 'lib/bare-proxy.ts'), upstreamUrl], /(http:\/\/\S+)/);
const dataDir = mkdtempSync(path.join(tmpdir(), 'portcullis-bench-'));
const gateway = await startChild([path.resolve(here, '../bin/portcullis.js'), 'serve'], /listening on (http:\/\/[0-9.:]+)/, {
  ...process.env,
  PORTCULLIS_LISTEN: '127.0.0.1:0',
  PORTCULLIS_DATA_DIR: dataDir,
  PORTCULLIS_ADMIN_PASSWORD: PASSWORD,
  PORTCULLIS_PROXY_URL: upstreamUrl,
  PORTCULLIS_LOG_LEVEL: 'info',
});
const gatewayUrl = gateway.match[1]!;
const login = await fetch(`${gatewayUrl}/api/auth/login`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ name: 'admin', password: PASSWORD }),
});
const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
const basicAuth = 'Basic ' + Buffer.from(`admin:${PASSWORD}`).toString('base64');

interface Target {
  name: string;
  base: string;
  pid: number | undefined;
  headers: Record<string, string>;
}
const targets: Target[] = [
  { name: 'direct', base: upstreamUrl, pid: upstream.child.pid, headers: {} },
  { name: 'bare @fastify/http-proxy', base: `${bare.match[1]}/proxy`, pid: bare.child.pid, headers: {} },
  { name: 'portcullis anonymous', base: `${gatewayUrl}/proxy`, pid: gateway.child.pid, headers: {} },
  { name: 'portcullis basic', base: `${gatewayUrl}/proxy`, pid: gateway.child.pid, headers: { authorization: basicAuth } },
  { name: 'portcullis cookie', base: `${gatewayUrl}/proxy`, pid: gateway.child.pid, headers: { cookie } },
];

async function load(target: Target, pathName: string): Promise<{ rps: number; cpuPerReq: number; mbps: number }> {
  const cpuBefore = target.pid ? cpuMicros(target.pid) : 0;
  const result = await autocannon({ url: target.base + pathName, connections: 50, duration: DURATION, headers: target.headers, pipelining: 1 });
  const cpu = target.pid ? cpuMicros(target.pid) - cpuBefore : 0;
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${target.name}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return { rps: result.requests.average, cpuPerReq: cpu / result.requests.total, mbps: result.throughput.average / 1e6 };
}

async function latency(target: Target): Promise<number[]> {
  const url = new URL(target.base + '/small');
  const client = new Client(url.origin, { pipelining: 1 });
  const samples: number[] = [];
  for (let i = 0; i < 3000; i++) {
    const start = process.hrtime.bigint();
    const { body } = await client.request({ path: url.pathname, method: 'GET', headers: target.headers });
    await body.dump();
    if (i >= 500) samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  await client.close();
  return samples;
}

async function streams(target: Target): Promise<{ upMBps: number; downMBps: number; rssGrowthMB: number }> {
  const pid = target.pid!;
  const before = rssBytes(pid);
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 25);
  const chunk = Buffer.alloc(256 * 1024, 1);
  let produced = 0;
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest(target.base + '/upload', { method: 'POST', headers: { ...target.headers, 'transfer-encoding': 'chunked' } }, (res) => {
      let counted = '';
      res.on('data', (d) => (counted += d));
      // The upstream answers with the bytes it received: a short upload must not pass as fast.
      res.on('end', () => (Number(counted) === STREAM_BYTES ? resolve() : reject(new Error(`${target.name}: upstream received ${counted}`))));
    });
    req.on('error', reject);
    void pipeline(
      new Readable({
        read() {
          if (produced >= STREAM_BYTES) return void this.push(null);
          produced += chunk.length;
          this.push(chunk);
        },
      }),
      req,
    ).catch(reject);
  });
  const t1 = performance.now();
  await new Promise<void>((resolve, reject) => {
    httpRequest(target.base + `/download?bytes=${STREAM_BYTES}`, { headers: target.headers }, (res) => {
      res.on('data', () => {});
      res.on('end', resolve);
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
  const t2 = performance.now();
  clearInterval(sampler);
  return { upMBps: STREAM_BYTES / 1e6 / ((t1 - t0) / 1000), downMBps: STREAM_BYTES / 1e6 / ((t2 - t1) / 1000), rssGrowthMB: (peak - before) / 1e6 };
}

const results = new Map<string, { rps: number[]; cpu: number[]; bigRps: number[]; bigMBps: number[]; p50: number[]; p99: number[] }>();
for (const t of targets) results.set(t.name, { rps: [], cpu: [], bigRps: [], bigMBps: [], p50: [], p99: [] });

console.log(`Machine: ${machine()}`);
console.log(`Rounds: ${ROUNDS} × ${DURATION} s, 50 connections (latency: 1 connection, 2,500 requests)\n`);
// Warm-up: JIT, connection pools, the JWT and credential caches.
for (const t of targets) await autocannon({ url: t.base + '/small', connections: 10, duration: 1, headers: t.headers });

for (let round = 1; round <= (ONLY_STREAMS ? 0 : ROUNDS); round++) {
  for (const t of targets) {
    const r = results.get(t.name)!;
    const small = await load(t, '/small');
    r.rps.push(small.rps);
    r.cpu.push(small.cpuPerReq);
    const big = await load(t, '/big');
    r.bigRps.push(big.rps);
    r.bigMBps.push(big.mbps);
    const lat = await latency(t);
    r.p50.push(percentile(lat, 50));
    r.p99.push(percentile(lat, 99));
  }
  process.stderr.write(`round ${round}/${ROUNDS} done\n`);
}

const bareName = 'bare @fastify/http-proxy';
const m = (name: string, key: 'rps' | 'cpu' | 'bigRps' | 'bigMBps' | 'p50' | 'p99') => median(results.get(name)![key]);
if (!ONLY_STREAMS) console.log('| path | req/s (100 B) | vs bare | CPU µs/req (proxy process) | p50 ms (1 conn) | p99 ms | added p50 vs direct | 64 KiB req/s | 64 KiB MB/s | vs bare |');
if (!ONLY_STREAMS) console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const t of ONLY_STREAMS ? [] : targets) {
  console.log(
    `| ${t.name} | ${m(t.name, 'rps').toFixed(0)} | ${(m(t.name, 'rps') / m(bareName, 'rps')).toFixed(2)}× | ${m(t.name, 'cpu').toFixed(1)} | ${m(t.name, 'p50').toFixed(3)} | ${m(t.name, 'p99').toFixed(3)} | ${(m(t.name, 'p50') - m('direct', 'p50')).toFixed(3)} | ${m(t.name, 'bigRps').toFixed(0)} | ${m(t.name, 'bigMBps').toFixed(0)} | ${(m(t.name, 'bigMBps') / m(bareName, 'bigMBps')).toFixed(2)}× |`,
  );
}

console.log(`\n1 GiB streams (${(STREAM_BYTES / 1024 ** 3).toFixed(2)} GiB each way, ${ROUNDS} rounds alternating the paths, medians), peak RSS growth of the proxy process:`);
console.log('| path | upload MB/s | download MB/s | peak RSS growth MB, median (each run) |');
console.log('| --- | ---: | ---: | ---: |');
const streamTargets = targets.filter((x) => x.name === bareName || x.name === 'portcullis anonymous' || x.name === 'portcullis basic');
const streamRuns = new Map(streamTargets.map((t) => [t.name, [] as Array<Awaited<ReturnType<typeof streams>>>]));
for (let round = 0; round < ROUNDS; round++) for (const t of streamTargets) streamRuns.get(t.name)!.push(await streams(t));
for (const t of streamTargets) {
  const runs = streamRuns.get(t.name)!;
  console.log(
    `| ${t.name} | ${median(runs.map((r) => r.upMBps)).toFixed(0)} | ${median(runs.map((r) => r.downMBps)).toFixed(0)} | ${median(runs.map((r) => r.rssGrowthMB)).toFixed(1)} (${runs.map((r) => r.rssGrowthMB.toFixed(0)).join(', ')}) |`,
  );
}

for (const p of [upstream.child, bare.child, gateway.child]) p.kill('SIGTERM');
rmSync(dataDir, { recursive: true, force: true });
