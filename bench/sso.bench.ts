// `npm run bench:sso`: (1) SSO callback handling rate — code exchange, ID token
// signature check, userinfo, user upsert, session and sealed provider tokens — and
// (2) what a signed-in session cookie costs over an anonymous request through /proxy
// (target: at most 10 % more). The gateway runs as its own process (`portcullis serve`),
// so its CPU is measured alone; the OpenID provider (npm oidc-provider) runs here.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'undici';
import { stringify } from 'yaml';
import { startTestGateway } from '../test/helpers/gateway.ts';
import { Browser, atProvider, signIn, startLogin } from '../test/sso/helpers/browser.ts';
import { startOp } from '../test/sso/helpers/op.ts';
import { cpuMicros, machine, median, percentile, startChild } from './lib/procs.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
// The proxy comparison alternates short slices (A B B A …) so drift and other load on the
// machine fall on both sides alike; the medians are over the slices.
const PROXY_SLICES = Number(process.env.BENCH_PROXY_SLICES ?? 16);
const DURATION_MS = Number(process.env.BENCH_SECONDS ?? 2) * 1000;
const CALLBACKS = Number(process.env.BENCH_CALLBACKS ?? 200);
const CONNECTIONS = 32;

const here = path.dirname(new URL(import.meta.url).pathname);
const upstream = await startChild([path.join(here, 'lib/upstream.ts')], /(http:\/\/\S+)/);
const upstreamUrl = upstream.match[1]!;
const op = await startOp({ accessTokenTtl: 3600 });
op.accounts.set('bench', { email: 'bench@example.com', email_verified: true, preferred_username: 'bench', name: 'Bench' });

const dataDir = mkdtempSync(path.join(tmpdir(), 'portcullis-bench-sso-'));
const configFile = path.join(dataDir, 'portcullis.yaml');
writeFileSync(
  configFile,
  stringify({
    listen: '127.0.0.1:0',
    dataDir,
    proxy: { url: upstreamUrl },
    log: { level: 'info' },
    sso: { providers: [{ id: 'op', type: 'oidc', issuer: op.issuer, clientId: 'bench', clientSecret: 'bench-secret' }] },
  }),
);
const gateway = await startChild([path.resolve(here, '../bin/portcullis.js'), 'serve', '--config', configFile], /listening on (http:\/\/[0-9.:]+)/, {
  ...process.env,
  PORTCULLIS_ADMIN_PASSWORD: 'bench-password',
});
const gatewayUrl = gateway.match[1]!.replace(/"$/, '');
const pid = gateway.child.pid!;
await op.setClients([
  {
    client_id: 'bench',
    client_secret: 'bench-secret',
    redirect_uris: [`${gatewayUrl}/auth/sso/op/callback`],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  },
]);

// The first login goes through the provider's login and consent; later ones reuse its session.
const first = new Browser();
const firstLogin = await signIn(first, gatewayUrl, 'op', 'bench');
if (firstLogin.status !== 302) throw new Error(`first login failed: ${firstLogin.status} ${firstLogin.error}`);
const cookie = `portcullis_session=${first.cookie(new URL(gatewayUrl).origin, 'portcullis_session')}`;

console.log(`Machine: ${machine()}`);

// (1) Callback handling -------------------------------------------------------------
async function prepare(n: number): Promise<Array<{ b: Browser; url: string }>> {
  const pending: Array<{ b: Browser; url: string }> = [];
  for (let i = 0; i < n; i++) {
    const b = first.fork(op.issuer);
    pending.push({ b, url: await atProvider(b, await startLogin(b, gatewayUrl, 'op'), 'bench', new URL(gatewayUrl).origin) });
  }
  return pending;
}

async function callbacks(concurrency: number): Promise<{ rate: number; p50: number; p95: number; cpu: number }> {
  const pending = await prepare(CALLBACKS);
  const latencies: number[] = [];
  const cpuBefore = cpuMicros(pid);
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < pending.length) {
        const { b, url } = pending[next++]!;
        const start = performance.now();
        const response = await b.fetch(url);
        await response.arrayBuffer();
        if (response.status !== 302) throw new Error(`callback answered ${response.status}`);
        latencies.push(performance.now() - start);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  return { rate: pending.length / seconds, p50: percentile(latencies, 50), p95: percentile(latencies, 95), cpu: (cpuMicros(pid) - cpuBefore) / pending.length / 1000 };
}

const ONLY = process.env.BENCH_ONLY; // "callbacks" or "proxy" to run one part
const callbackRows: string[] = [];
for (const concurrency of ONLY === 'proxy' ? [] : [1, 4]) {
  const runs = [];
  for (let round = 0; round < ROUNDS; round++) runs.push(await callbacks(concurrency));
  callbackRows.push(
    `| ${concurrency} | ${median(runs.map((r) => r.rate)).toFixed(0)} | ${median(runs.map((r) => r.p50)).toFixed(1)} | ${median(runs.map((r) => r.p95)).toFixed(1)} | ${median(runs.map((r) => r.cpu)).toFixed(2)} |`,
  );
}
if (ONLY !== 'proxy') console.log(`\nSSO callbacks (${CALLBACKS} per run, median of ${ROUNDS} runs; provider in the bench process):`);
if (ONLY !== 'proxy') {
  console.log('| concurrent callbacks | callbacks/s | p50 ms | p95 ms | gateway CPU ms/callback |');
  console.log('| ---: | ---: | ---: | ---: | ---: |');
  for (const row of callbackRows) console.log(row);
}

// (2) Cookie vs anonymous through /proxy ----------------------------------------------
async function load(headers: Record<string, string>): Promise<{ rps: number; cpu: number; p50: number; p99: number }> {
  const client = new Client(gatewayUrl, { pipelining: 1, connections: CONNECTIONS } as never);
  const latencies: number[] = [];
  let count = 0;
  const cpuBefore = cpuMicros(pid);
  const until = performance.now() + DURATION_MS;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < until) {
        const start = performance.now();
        const { statusCode, body } = await client.request({ path: '/proxy/small', method: 'GET', headers });
        await body.dump();
        if (statusCode !== 200) throw new Error(`proxy answered ${statusCode}`);
        latencies.push(performance.now() - start);
        count++;
      }
    }),
  );
  const cpu = cpuMicros(pid) - cpuBefore;
  await client.close();
  return { rps: count / (DURATION_MS / 1000), cpu: cpu / count, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

const local = await fetch(`${gatewayUrl}/api/auth/login`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ name: 'admin', password: 'bench-password' }),
});
const localCookie = local.headers.get('set-cookie')!.split(';')[0]!;
const kinds = { anonymous: {}, 'SSO session cookie': { cookie }, 'password session cookie': { cookie: localCookie } } as const;
const proxyResults = new Map<string, Array<Awaited<ReturnType<typeof load>>>>();
for (const name of Object.keys(kinds)) proxyResults.set(name, []);
if (ONLY !== 'callbacks') for (const [, headers] of Object.entries(kinds)) await load(headers); // warm-up: JIT, pools, caches
// A B B A … order, so drift over the run (heat, GC, caches) falls on both sides alike.
for (let round = 0; round < PROXY_SLICES && ONLY !== 'callbacks'; round++) {
  const order = round % 2 === 0 ? Object.entries(kinds) : Object.entries(kinds).reverse();
  for (const [name, headers] of order) proxyResults.get(name)!.push(await load(headers));
}
const m = (name: string, key: 'rps' | 'cpu' | 'p50' | 'p99') => median(proxyResults.get(name)!.map((r) => r[key]));
if (ONLY !== 'callbacks') {
console.log(`\n/proxy/small (~100 B), ${CONNECTIONS} connections, ${PROXY_SLICES} alternating slices of ${DURATION_MS / 1000} s each, medians:`);
console.log('| request | req/s | gateway CPU µs/req | p50 ms | p99 ms |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const name of Object.keys(kinds)) console.log(`| ${name} | ${m(name, 'rps').toFixed(0)} | ${m(name, 'cpu').toFixed(1)} | ${m(name, 'p50').toFixed(2)} | ${m(name, 'p99').toFixed(2)} |`);
const cpuExtra = (m('SSO session cookie', 'cpu') / m('anonymous', 'cpu') - 1) * 100;
const rpsLoss = (1 - m('SSO session cookie', 'rps') / m('anonymous', 'rps')) * 100;
console.log(`\nCookie vs anonymous: ${cpuExtra.toFixed(1)} % more gateway CPU per request, ${rpsLoss.toFixed(1)} % fewer requests/s (target ≤ 10 %): ${cpuExtra <= 10 ? 'met' : 'NOT met'}`);
}

// (3) The same difference without a network or other processes: what the gateway does
// per /proxy request to know the caller (authenticate + its cached JWT), in this process.
if (ONLY !== 'callbacks') {
  const local = await startTestGateway();
  const g = local.gateway;
  const authenticator = g.authenticator;
  const { token } = await g.sessions.create('admin', { ssoProvider: 'op', ssoSid: 'sid' });
  const per = async (headers: Record<string, string>) => {
    const n = 200_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await g.jwt.issue((await authenticator.authenticate(headers)).principal);
    return ((performance.now() - t0) * 1000) / n;
  };
  const anon: number[] = [];
  const withCookie: number[] = [];
  for (let round = 0; round < 5; round++) {
    anon.push(await per({}));
    withCookie.push(await per({ cookie: `portcullis_session=${token}` }));
  }
  const extra = median(withCookie) - median(anon);
  console.log(`\nIn process, identifying the caller: anonymous ${median(anon).toFixed(2)} µs, session cookie ${median(withCookie).toFixed(2)} µs per request:`);
  console.log(`the cookie adds ${extra.toFixed(2)} µs, ${((extra / m('anonymous', 'cpu')) * 100).toFixed(1)} % of the anonymous request's gateway CPU above.`);
  await local.close();
}

gateway.child.kill('SIGTERM');
upstream.child.kill('SIGTERM');
await op.close();
rmSync(dataDir, { recursive: true, force: true });
