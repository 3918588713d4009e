// The peer to beat: a bare @fastify/http-proxy (no auth, no JWT) in front of the upstream.
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';
import type { AddressInfo } from 'node:net';

const upstream = process.argv[2]!;
const app = Fastify({ logger: false });
await app.register(proxy, { upstream, prefix: '/proxy', http2: false });
await app.listen({ host: '127.0.0.1', port: 0 });
console.log(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`);
