import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { Browser, outcomeOf, startLogin } from './helpers/browser.ts';
import { PNG, json, startServer } from './helpers/setup.ts';

interface GhUser {
  id: number;
  login: string;
  name: string | null;
  email: string | null;
  avatar_url: string;
  emails: Array<{ email: string; primary: boolean; verified: boolean; visibility: string | null }>;
}

/**
 * GitHub is not reachable here: a local server speaks its OAuth endpoints and the
 * `/user` and `/user/emails` shapes (and checks PKCE and the client secret as the
 * real one would). The same server also stands in for a generic OAuth 2 provider.
 */
describe('GitHub and generic OAuth 2 providers', () => {
  let gh: Awaited<ReturnType<typeof startServer>>;
  let gw: TestGateway;
  let nextUser = 'octocat';
  const codes = new Map<string, { user: string; challenge: string; redirect: string }>();
  const tokens = new Map<string, string>();
  const users = new Map<string, GhUser>();

  beforeAll(async () => {
    gh = await startServer(async (req, res) => {
      const url = new URL(req.url!, 'http://x');
      const send = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      if (url.pathname === '/login/oauth/authorize') {
        const code = randomBytes(10).toString('hex');
        const redirect = url.searchParams.get('redirect_uri')!;
        codes.set(code, { user: nextUser, challenge: url.searchParams.get('code_challenge')!, redirect });
        const back = new URL(redirect);
        back.searchParams.set('code', code);
        back.searchParams.set('state', url.searchParams.get('state')!);
        return void res.writeHead(302, { location: back.href }).end();
      }
      if (url.pathname === '/login/oauth/access_token' && req.method === 'POST') {
        let raw = '';
        for await (const chunk of req) raw += chunk;
        const form = new URLSearchParams(raw);
        const grant = codes.get(form.get('code') ?? '');
        codes.delete(form.get('code') ?? '');
        const verifier = form.get('code_verifier') ?? '';
        const pkceOk = grant && createHash('sha256').update(verifier).digest('base64url') === grant.challenge;
        // GitHub answers errors with 200 and an error body.
        if (form.get('client_secret') !== 'gh-secret' || !grant || !pkceOk || form.get('redirect_uri') !== grant.redirect) return send(200, { error: 'bad_verification_code' });
        const token = `gho_${randomBytes(12).toString('hex')}`;
        tokens.set(token, grant.user);
        return send(200, { access_token: token, token_type: 'bearer', scope: 'read:user,user:email' });
      }
      const auth = /^(?:Bearer|token) (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const user = auth ? users.get(tokens.get(auth) ?? '') : undefined;
      if (url.pathname.startsWith('/api/v3/') && !user) return send(401, { message: 'Bad credentials' });
      if (url.pathname === '/api/v3/user') {
        const { emails: _e, ...rest } = user!;
        return send(200, rest);
      }
      if (url.pathname === '/api/v3/user/emails') return send(200, user!.emails);
      if (url.pathname === '/avatars/octocat') return void res.writeHead(200, { 'content-type': 'image/png' }).end(PNG);
      send(404, { message: 'Not Found' });
    });
    const add = (u: Omit<GhUser, 'avatar_url'>) => users.set(u.login, { ...u, avatar_url: `${gh.url}/avatars/${u.login}` });
    add({ id: 583231, login: 'octocat', name: 'The Octocat', email: 'octocat@github.example', emails: [] });
    add({
      id: 7,
      login: 'hubot',
      name: null,
      email: null,
      emails: [
        { email: 'old@hubot.example', primary: false, verified: true, visibility: null },
        { email: 'Hubot@Hubot.example', primary: true, verified: true, visibility: 'private' },
      ],
    });
    add({ id: 9, login: 'ghost', name: null, email: null, emails: [{ email: 'ghost@unverified.example', primary: true, verified: false, visibility: null }] });

    const endpoints = { authorizationEndpoint: `${gh.url}/login/oauth/authorize`, tokenEndpoint: `${gh.url}/login/oauth/access_token` };
    gw = await startTestGateway({
      config: {
        sso: {
          providers: [
            { id: 'github', type: 'github', clientId: 'gh-client', clientSecret: 'gh-secret', ...endpoints, apiUrl: `${gh.url}/api/v3` },
            { id: 'down', type: 'oidc', issuer: 'http://127.0.0.1:9/nothing-listens-here', clientId: 'c', clientSecret: 's' },
            { id: 'github-fallback', type: 'github', clientId: 'gh-client', clientSecret: 'gh-secret', ...endpoints, apiUrl: `${gh.url}/api/v3`, emailFallback: true },
            {
              id: 'generic',
              type: 'oauth2',
              name: 'Generic',
              clientId: 'gh-client',
              clientSecret: 'gh-secret',
              tokenEndpointAuthMethod: 'client_secret_post',
              ...endpoints,
              userinfoEndpoint: `${gh.url}/api/v3/user`,
              scopes: ['read:user'],
              claims: { subject: 'id', userName: 'login', picture: 'avatar_url' },
            },
          ],
        },
      },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await gh?.close();
  });

  const login = async (provider: string, user: string) => {
    nextUser = user;
    const b = new Browser();
    const authorize = await startLogin(b, gw.url, provider);
    const toGateway = await fetch(authorize, { redirect: 'manual' });
    const outcome = await outcomeOf(await b.fetch(toGateway.headers.get('location')!));
    return { b, outcome, authorize: new URL(authorize) };
  };
  const userView = async (name: string) => json(await fetch(`${gw.url}/api/admin/users/${name}`, { headers: { authorization: gw.adminAuth } }));

  it('signs in a GitHub user with a public email, with scopes, PKCE and no nonce', async () => {
    const { b, outcome, authorize } = await login('github', 'octocat');
    expect(authorize.searchParams.get('scope')).toBe('read:user user:email');
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.has('nonce')).toBe(false);
    expect(outcome.status).toBe(302);
    expect(await json(await b.fetch(`${gw.url}/api/me`))).toEqual({ name: 'octocat', roles: ['ROLE_ADMIN', 'ROLE_USER'] });
    const view = await userView('octocat');
    expect(view.email).toBe('octocat@github.example');
    expect(view.picture).toMatch(/^data:image\/png;base64,/);
    expect((await json(await b.fetch(`${gw.url}/api/me/sso`))).subject).toBe('583231');
  });

  it('takes the primary verified address from /user/emails when there is no public email', async () => {
    const { b, outcome } = await login('github', 'hubot');
    expect(outcome.status).toBe(302);
    expect((await json(await b.fetch(`${gw.url}/api/me`))).name).toBe('hubot');
    expect((await userView('hubot')).email).toBe('hubot@hubot.example');
  });

  it('refuses a GitHub user with no verified primary address, unless the fallback is on', async () => {
    const refused = await login('github', 'ghost');
    expect(refused.outcome.status).toBe(400);
    expect(refused.outcome.response.headers.get('x-portcullis-error')).toBe('sso_no_email');
    const allowed = await login('github-fallback', 'ghost');
    expect(allowed.outcome.status).toBe(302);
    expect((await userView('ghost')).email).toBe('github-fallback@9.local');
  });

  it('signs in through a generic OAuth 2 provider with a userinfo endpoint', async () => {
    users.set('mona', { id: 42, login: 'mona', name: 'Mona', email: 'mona@example.com', avatar_url: `${gh.url}/avatars/none`, emails: [] });
    const { b, outcome, authorize } = await login('generic', 'mona');
    expect(authorize.searchParams.get('scope')).toBe('read:user');
    expect(outcome.status).toBe(302);
    expect(await json(await b.fetch(`${gw.url}/api/me`))).toEqual({ name: 'mona', roles: ['ROLE_USER'] });
    expect((await json(await b.fetch(`${gw.url}/api/me/sso`))).token.refreshable).toBe(false);
  });

  it('reports a refused code exchange as a short login error', async () => {
    nextUser = 'octocat';
    const b = new Browser();
    const authorize = await startLogin(b, gw.url, 'github');
    const back = new URL((await fetch(authorize, { redirect: 'manual' })).headers.get('location')!);
    back.searchParams.set('code', 'stolen-or-spent');
    const outcome = await outcomeOf(await b.fetch(back.href));
    expect(outcome.status).toBe(502);
    expect(outcome.error).toMatch(/^The provider did not complete the sign-in/);
    expect(outcome.error).not.toContain('stolen');
  });

  it('sends the browser back to the login page when a provider cannot be reached', async () => {
    const outcome = await outcomeOf(await new Browser().fetch(`${gw.url}/auth/sso/down/login`));
    expect(outcome.status).toBe(502);
    expect(outcome.response.headers.get('x-portcullis-error')).toBe('sso_provider_unavailable');
    expect(outcome.error).toBe('The identity provider cannot be reached right now.');
  });
});
