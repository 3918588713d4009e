import { createPublicKey, verify as verifySignature, type JsonWebKey } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The app the demo puts behind /proxy: it checks the gateway's JWT with the public key
 * from the JWKS, using only node:crypto (what any app in any language could do), and
 * greets the caller by name.
 */
export async function startDemoApp(jwksUrl: () => string): Promise<{ url: string; server: Server }> {
  const server = createServer(async (req, res) => {
    const jwt = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    let who: { name: string; roles: string[] } | undefined;
    let problem = '';
    try {
      who = await verifyJwt(jwt, jwksUrl());
    } catch (error) {
      problem = (error as Error).message;
    }
    const body = who
      ? { ok: true, name: who.name, roles: who.roles, path: req.url, forwardedHost: req.headers['x-forwarded-host'] }
      : { ok: false, problem };
    if ((req.headers.accept ?? '').includes('text/html')) {
      res.writeHead(who ? 200 : 401, { 'content-type': 'text/html; charset=utf-8' });
      res.end(
        `<!doctype html><title>Demo app</title><h1>Demo app behind Portcullis</h1>` +
          (who
            ? `<p>Hello, <b>${escape(who.name)}</b>. The gateway says your roles are <code>${escape(who.roles.join(', '))}</code>.</p><p>This app verified the JWT in the Authorization header with the gateway's public key.</p>`
            : `<p>No valid JWT: ${escape(problem)}</p>`),
      );
      return;
    }
    res.writeHead(who ? 200 : 401, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, server };
}

const escape = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

async function verifyJwt(jwt: string, jwksUrl: string): Promise<{ name: string; roles: string[] }> {
  const [h, p, s] = jwt.split('.');
  if (!h || !p || !s) throw new Error('not a JWT');
  const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as { alg: string; kid: string };
  const { keys } = (await (await fetch(jwksUrl)).json()) as { keys: Array<JsonWebKey & { kid: string }> };
  const jwk = keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error('unknown key id');
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  const data = Buffer.from(`${h}.${p}`);
  const signature = Buffer.from(s, 'base64url');
  const ok =
    header.alg === 'EdDSA'
      ? verifySignature(null, data, key, signature)
      : header.alg === 'ES256'
        ? verifySignature('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature)
        : verifySignature(header.alg === 'RS256' ? 'sha256' : 'sha512', data, key, signature);
  if (!ok) throw new Error('bad signature');
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as { sub: string; authorities: string[]; exp: number };
  if (claims.exp * 1000 < Date.now()) throw new Error('expired');
  return { name: claims.sub, roles: claims.authorities };
}
