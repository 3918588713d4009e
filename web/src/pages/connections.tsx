import { get, seg, type Connection } from '../api.ts';
import { LoadError, Loading, Notice, Page, useResource } from '../ui.tsx';

const AUTH_LABEL: Record<Connection['auth'], string> = {
  none: 'No authentication',
  bearer: 'Shared token',
  'oauth2.1': 'OAuth 2.1',
  'oauth2.1-static': 'OAuth 2.1',
};

/** Where the gateway's authorize endpoint sends the browser back to. */
export function authorizeHref(name: string, returnTo = location.pathname): string {
  return `/api/connections/${seg(name)}/authorize?return_to=${encodeURIComponent(returnTo)}`;
}

/** Upstream connections (MCP and other OAuth resources), with authorize / re-authorize. */
export function ConnectionsPage() {
  const conns = useResource(() => get<Connection[]>('/api/connections'), []);
  if (conns.missing) return <Page title="Connections"><Notice>Connections are not available on this gateway.</Notice></Page>;
  const list = conns.data;
  return (
    <Page title="Connections">
      <p class="muted">Tool servers the gateway reaches for you. Authorize one once; the gateway keeps your tokens fresh.</p>
      <LoadError error={conns.error} retry={conns.reload} />
      {!list && conns.loading && <Loading />}
      {list && list.length === 0 && <p class="empty">No connections are configured.</p>}
      {list && list.length > 0 && (
        <ul class="cards" aria-label="Connections">
          {list.map((c) => {
            const oauth = c.auth === 'oauth2.1' || c.auth === 'oauth2.1-static';
            return (
              <li class="card" key={c.name} data-connection={c.name}>
                <div class="device-head">
                  <h2>{c.name}</h2>
                  {oauth && (
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
                {oauth && (
                  <a class={`btn ${c.authorized ? '' : 'primary'}`} href={authorizeHref(c.name)}
                    aria-label={`${c.authorized ? 'Re-authorize' : 'Authorize'} ${c.name}`}>
                    {c.authorized ? 'Re-authorize' : 'Authorize'}
                  </a>
                )}
              </li>
            );
          })}
        </ul>
      )}
    </Page>
  );
}
