import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** The built UI (Vite output), relative to this file. */
export const UI_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web/dist');

/** Paths that belong to the API or to proxied resources, never to the single-page app. */
const NOT_UI = /^\/(api|auth|proxy|connections|\.well-known|healthz|readyz)(\/|\?|$)/;

/**
 * Serves the web UI: hashed assets cached for a year, index.html never cached, and
 * index.html for any other GET path so client-side routes survive a reload.
 */
export async function registerWebUi(app: FastifyInstance, uiDir = UI_DIR): Promise<(request: FastifyRequest, reply: FastifyReply) => boolean> {
  if (!existsSync(path.join(uiDir, 'index.html'))) {
    app.get('/', async (_request, reply) =>
      reply
        .type('text/html; charset=utf-8')
        .send('<!doctype html><title>Portcullis</title><p>The web UI is not built. Run <code>npm run build:ui</code>.</p>'),
    );
    return () => false;
  }
  await app.register(fastifyStatic, {
    root: uiDir,
    prefix: '/',
    wildcard: false,
    index: ['index.html'],
    setHeaders(res, filePath) {
      res.header(
        'cache-control',
        filePath.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache',
      );
    },
  });
  return (request, reply) => {
    if (request.method !== 'GET' || NOT_UI.test(request.url)) return false;
    if (!(request.headers.accept ?? '').includes('text/html')) return false;
    reply.header('cache-control', 'no-cache');
    void reply.sendFile('index.html');
    return true;
  };
}
