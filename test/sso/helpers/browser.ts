/**
 * A browserless browser: fetch with a cookie jar (per origin, honouring Path and
 * Max-Age=0) and no automatic redirects, plus the provider-side steps of a login
 * (oidc-provider's dev interactions: the login form, then the consent form).
 */
export class Browser {
  readonly #jar = new Map<string, Map<string, { value: string; path: string }>>();

  cookie(origin: string, name: string): string | undefined {
    return this.#jar.get(origin)?.get(name)?.value;
  }

  /** A new browser holding this one's cookies for `origin` (e.g. a provider session). */
  fork(origin: string): Browser {
    const other = new Browser();
    for (const [name, c] of this.#jar.get(origin) ?? []) other.setCookie(origin, name, c.value, c.path);
    return other;
  }

  setCookie(origin: string, name: string, value: string, path = '/'): void {
    let cookies = this.#jar.get(origin);
    if (!cookies) this.#jar.set(origin, (cookies = new Map()));
    cookies.set(name, { value, path });
  }

  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const target = new URL(url);
    const cookies = [...(this.#jar.get(target.origin) ?? new Map<string, { value: string; path: string }>()).entries()]
      .filter(([, c]) => target.pathname === c.path || target.pathname.startsWith(c.path.endsWith('/') ? c.path : c.path + '/') || c.path === '/')
      .map(([name, c]) => `${name}=${c.value}`)
      .join('; ');
    const headers = new Headers(init.headers);
    if (cookies) headers.set('cookie', cookies);
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) this.#store(target.origin, line);
    return response;
  }

  #store(origin: string, line: string): void {
    const [pair, ...attributes] = line.split(';').map((s) => s.trim());
    const eq = pair!.indexOf('=');
    const name = pair!.slice(0, eq);
    const value = pair!.slice(eq + 1);
    let path = '/';
    let expired = value === '';
    for (const attribute of attributes) {
      const [k, v] = attribute.split('=');
      if (k!.toLowerCase() === 'path' && v) path = v;
      if (k!.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
      if (k!.toLowerCase() === 'expires' && v && Date.parse(v) < Date.now()) expired = true;
    }
    let cookies = this.#jar.get(origin);
    if (!cookies) this.#jar.set(origin, (cookies = new Map()));
    if (expired) cookies.delete(name);
    else cookies.set(name, { value, path });
  }
}

export interface LoginOutcome {
  /** The gateway's answer to the callback. */
  response: Response;
  status: number;
  /** Where the browser goes next: the Location, or the login page a failure page refreshes to. */
  next: string | undefined;
  /** The message a failure put on the login page. */
  error: string | undefined;
}

/** Reads a failure page (or a redirect) into the place and message it sends the browser to. */
export async function outcomeOf(response: Response): Promise<LoginOutcome> {
  let next = response.headers.get('location') ?? undefined;
  if (!next && (response.headers.get('content-type') ?? '').startsWith('text/html')) {
    const html = await response.text();
    const match = /http-equiv="refresh" content="0;url=([^"]+)"/.exec(html);
    if (match) next = match[1]!.replace(/&#(\d+);/g, (_m, d: string) => String.fromCharCode(Number(d)));
  }
  const error = next?.startsWith('/login?') ? (new URLSearchParams(next.slice('/login?'.length)).get('error') ?? undefined) : undefined;
  return { response, status: response.status, next, error };
}

/**
 * Drives the provider side of a login, from the provider's authorization URL to the
 * redirect back to the gateway: submits the dev login form as `login` and grants
 * consent. Returns the gateway callback URL (not yet visited).
 */
export async function atProvider(browser: Browser, authorizeUrl: string, login: string, gatewayOrigin: string): Promise<string> {
  let url = authorizeUrl;
  for (let hop = 0; hop < 20; hop++) {
    if (new URL(url).origin === gatewayOrigin) return url;
    const response = await browser.fetch(url);
    if (response.status >= 300 && response.status < 400) {
      url = new URL(response.headers.get('location')!, url).href;
      continue;
    }
    const html = await response.text();
    if (response.status !== 200) throw new Error(`provider answered ${response.status}: ${html.slice(0, 300)}`);
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    const prompt = /name="prompt" value="([^"]+)"/.exec(html)?.[1];
    if (!action || !prompt) throw new Error(`unexpected provider page: ${html.slice(0, 300)}`);
    const form = new URLSearchParams(prompt === 'login' ? { prompt, login, password: 'any' } : { prompt });
    const submitted = await browser.fetch(new URL(action.replace(/&amp;/g, '&'), url).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
    });
    if (submitted.status < 300 || submitted.status >= 400) throw new Error(`provider form answered ${submitted.status}`);
    url = new URL(submitted.headers.get('location')!, url).href;
  }
  throw new Error('too many hops at the provider');
}

/** Starts a login at the gateway and returns the provider URL it redirects to. */
export async function startLogin(browser: Browser, gatewayUrl: string, provider: string, next?: string): Promise<string> {
  const response = await browser.fetch(`${gatewayUrl}/auth/sso/${provider}/login${next === undefined ? '' : `?next=${encodeURIComponent(next)}`}`);
  if (response.status !== 302) throw new Error(`login answered ${response.status}: ${await response.text()}`);
  return response.headers.get('location')!;
}

/** A whole login: gateway → provider (login + consent) → gateway callback. */
export async function signIn(browser: Browser, gatewayUrl: string, provider: string, login: string, next?: string): Promise<LoginOutcome> {
  const authorize = await startLogin(browser, gatewayUrl, provider, next);
  const callback = await atProvider(browser, authorize, login, new URL(gatewayUrl).origin);
  return outcomeOf(await browser.fetch(callback));
}
