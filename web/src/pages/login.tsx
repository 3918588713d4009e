import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, get, post, seg, type Principal, type Provider } from '../api.ts';
import { useLocation } from '../router.ts';
import { Button, Notice, Page } from '../ui.tsx';

/** Sign-in: the local form, one button per SSO provider, and the error a failed SSO login passed back. */
export function LoginPage(props: { onSignedIn: (me: Principal) => void }) {
  const loc = useLocation();
  const ssoError = loc.query.get('error');
  const [providers, setProviders] = useState<Provider[]>([]);
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const nameInput = useRef<HTMLInputElement>(null);
  const passwordInput = useRef<HTMLInputElement>(null);

  useEffect(() => {
    // No providers configured, or no SSO at all on this gateway: show only the local form.
    get<Provider[]>('/api/auth/providers', { background: true })
      .then((p) => setProviders(Array.isArray(p) ? p : []))
      .catch(() => setProviders([]));
    nameInput.current?.focus();
  }, []);

  const submit = async (ev: Event) => {
    ev.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const me = await post<Principal>('/api/auth/login', { name: name.trim(), password });
      props.onSignedIn(me);
    } catch (e) {
      setError(loginError(e));
      setPassword('');
      passwordInput.current?.focus();
    } finally {
      setBusy(false);
    }
  };

  const next = loc.query.get('next');
  return (
    <div class="login">
      <Page title="Sign in">
        {ssoError && <Notice kind="error">Single sign-on failed: {ssoError.slice(0, 300)}</Notice>}
        {next && !ssoError && <p class="muted">Sign in to continue.</p>}
        <form class="card stack" onSubmit={submit} aria-describedby={error ? 'login-error' : undefined}>
          <div class="field">
            <label for="login-name">User name</label>
            <input id="login-name" name="username" ref={nameInput} autocomplete="username" required
              autocapitalize="none" spellcheck={false}
              value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </div>
          <div class="field">
            <label for="login-password">Password</label>
            <input id="login-password" name="password" type="password" ref={passwordInput} autocomplete="current-password" required
              value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
          </div>
          {error && <Notice kind="error" id="login-error">{error}</Notice>}
          <Button type="submit" variant="primary" busy={busy} busyLabel="Signing in…">Sign in</Button>
        </form>
        {providers.length > 0 && (
          <div class="sso">
            <p class="or"><span>or</span></p>
            <ul class="stack">
              {providers.map((p) => (
                <li key={p.id}>
                  <a class="btn block" href={`/auth/sso/${seg(p.id)}/login${next ? `?next=${encodeURIComponent(next)}` : ''}`}>
                    Sign in with {p.name}
                  </a>
                </li>
              ))}
            </ul>
          </div>
        )}
      </Page>
    </div>
  );
}

function loginError(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 401) return 'Wrong user name or password.';
    if (e.status === 429) return 'Too many sign-in attempts. Wait a minute, then try again.';
    if (e.status === 403) return e.message || 'This account may not sign in.';
    return e.message;
  }
  return e instanceof Error ? e.message : String(e);
}
