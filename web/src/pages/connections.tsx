import { del, get, seg, type Connection } from '../api.ts';
import { navigate, useLocation } from '../router.ts';
import { ConfirmButton, LoadError, Loading, Notice, Page, useResource } from '../ui.tsx';

const AUTH_LABEL: Record<Connection['auth'], string> = {
  none: 'No sign-in needed',
  bearer: 'Shared token, kept by the gateway',
  'oauth2.1': 'OAuth 2.1, with your own authorization',
  'oauth2.1-static': 'OAuth 2.1, with your own authorization',
};

/** The gateway's authorize endpoint, which sends the browser back to `returnTo` afterwards. */
export function authorizeHref(name: string, returnTo = location.pathname): string {
  return `/api/connections/${seg(name)}/authorize?return_to=${encodeURIComponent(returnTo)}`;
}

const isOAuth = (c: Connection) => c.auth === 'oauth2.1' || c.auth === 'oauth2.1-static';

/** Upstream connections (MCP and other OAuth resources), with authorize / re-authorize / forget. */
export function ConnectionsPage() {
  const loc = useLocation();
  const conns = useResource(() => get<Connection[]>('/api/connections'), []);
  // A failed authorization comes back as ?connection=NAME&connection_error=TEXT.
  const failedName = loc.query.get('connection');
  const failure = loc.query.get('connection_error');
  if (conns.missing) return <Page title="Connections"><Notice>Connections are not available on this gateway.</Notice></Page>;
  const list = conns.data;
  return (
    <Page title="Connections">
      <p class="muted">Tool servers the gateway reaches for you. Authorize one once; the gateway keeps your tokens fresh and adds them to your requests.</p>
      {failure && (
        <Notice kind="error">
          Authorizing {failedName ?? 'the connection'} failed: {failure.slice(0, 300)}{' '}
          <button type="button" class="btn plain small" onClick={() => navigate(loc.path, { replace: true })}>Dismiss</button>
        </Notice>
      )}
      <LoadError error={conns.error} retry={conns.reload} />
      {!list && conns.loading && <Loading />}
      {list && list.length === 0 && <p class="empty">No connections are configured.</p>}
      {list && list.length > 0 && (
        <ul class="cards wide" aria-label="Connections">
          {list.map((c) => (
            <li class="card" key={c.name} data-connection={c.name}>
              <div class="device-head">
                <h2 class="device-name">{c.name}</h2>
                {isOAuth(c) && (
                  <span class={`status ${c.authorized ? 'online' : 'offline'}`}>
                    <span class="dot" aria-hidden="true" />{c.authorized ? 'Authorized' : 'Not authorized'}
                  </span>
                )}
              </div>
              <dl class="facts">
                <dt>Server</dt><dd class="break">{c.url}</dd>
                <dt>Sign-in</dt><dd>{AUTH_LABEL[c.auth] ?? c.auth}</dd>
                <dt>Use it at</dt><dd><code class="break">{`${location.origin}/connections/${seg(c.name)}/`}</code></dd>
              </dl>
              {isOAuth(c) && (
                <div class="row">
                  <a class={`btn ${c.authorized ? '' : 'primary'}`} href={authorizeHref(c.name, loc.path)}
                    aria-label={`${c.authorized ? 'Re-authorize' : 'Authorize'} ${c.name}`}>
                    {c.authorized ? 'Re-authorize' : 'Authorize'}
                  </a>
                  {c.authorized && (
                    <ConfirmButton label="Forget" question={`Forget your authorization for ${c.name}?`} confirmLabel="Forget it"
                      busyLabel="Forgetting…" onConfirm={async () => {
                        await del(`/api/connections/${seg(c.name)}/authorization`);
                        await conns.reload();
                      }} />
                  )}
                </div>
              )}
            </li>
          ))}
        </ul>
      )}
    </Page>
  );
}
