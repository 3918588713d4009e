import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { del, get, patch, post, seg, type AdminConnection, type ConnectionAuth } from '../api.ts';
import { Button, ConfirmButton, EditRow, EditToggle, CopyField, LoadError, Loading, Notice, Page, useAction, useResource, useAutoFocus } from '../ui.tsx';

const AUTH_OPTIONS: { value: ConnectionAuth; label: string }[] = [
  { value: 'oauth2.1', label: 'OAuth 2.1, the gateway registers itself' },
  { value: 'oauth2.1-static', label: 'OAuth 2.1 with a client id and secret' },
  { value: 'bearer', label: 'A shared bearer token' },
  { value: 'none', label: 'None' },
];

/** Admin: upstream connections (MCP servers and other OAuth 2.1 resources). */
export function AdminConnectionsPage() {
  const conns = useResource(() => get<AdminConnection[]>('/api/admin/connections'), []);
  const [creating, setCreating] = useState(false);
  const [flash, setFlash] = useState<string>();
  const [editing, setEditing] = useState<string | null>(null);
  if (conns.missing) return <Page title="Manage connections"><Notice>Connections are not available on this gateway.</Notice></Page>;
  const list = conns.data;
  const changed = async (msg: string) => {
    await conns.reload();
    setFlash(msg);
  };
  return (
    <Page title="Manage connections" actions={!creating && <Button variant="primary" onClick={() => setCreating(true)}>New connection</Button>}>
      {flash && <Notice kind="ok">{flash}</Notice>}
      {creating && (
        <ConnectionForm onCancel={() => setCreating(false)} onSaved={async (name) => {
          setCreating(false);
          await changed(`Connection ${name} created. Users reach it at /connections/${name}/.`);
        }} />
      )}
      <LoadError error={conns.error} retry={conns.reload} />
      {!list && conns.loading && <Loading />}
      {list && list.length === 0 && !creating && <p class="empty">No connections yet.</p>}
      {list && list.length > 0 && (
        <table class="table">
          <caption class="sr-only">Connections</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Server</th><th scope="col">Authentication</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
            {list.map((c) => (
              <Fragment key={c.name}>
                <tr data-connection={c.name}>
                  <th scope="row" data-label="Name">{c.name}</th>
                  <td data-label="Server" class="break">{c.url}</td>
                  <td data-label="Authentication">
                    {c.auth}
                    {c.authorizationServer && <div class="muted small break">via {c.authorizationServer}</div>}
                  </td>
                  <td class="actions">
                    <EditToggle name={c.name} open={editing === c.name} onToggle={() => setEditing(editing === c.name ? null : c.name)} />
                  </td>
                </tr>
                {editing === c.name && (
                  <EditRow name={c.name} colSpan={4}>
                      {c.redirectUri && (
                        <CopyField id={`redirect-${c.name.replace(/[^\w-]/g, '_')}`} label="Redirect URI (register it with the authorization server)" value={c.redirectUri} />
                      )}
                      <ConnectionForm conn={c} onCancel={() => setEditing(null)} onSaved={async () => {
                        setEditing(null);
                        await changed(`Connection ${c.name} saved.`);
                      }} />
                      <div class="row">
                        <ConfirmButton label="Delete connection" question={`Delete ${c.name}? Users' tokens for it are deleted too.`}
                          confirmLabel={`Delete ${c.name}`} busyLabel="Deleting…" onConfirm={async () => {
                            await del(`/api/admin/connections/${seg(c.name)}`);
                            setEditing(null);
                            await changed(`Connection ${c.name} deleted.`);
                          }} />
                      </div>
                  </EditRow>
                )}
              </Fragment>
            ))}
          </tbody>
        </table>
      )}
    </Page>
  );
}

function ConnectionForm(props: { conn?: AdminConnection; onSaved: (name: string) => void; onCancel: () => void }) {
  const c = props.conn;
  const [name, setName] = useState(c?.name ?? '');
  const [url, setUrl] = useState(c?.url ?? '');
  const [auth, setAuth] = useState<ConnectionAuth>(c?.auth ?? 'oauth2.1');
  const [token, setToken] = useState('');
  const [clientId, setClientId] = useState(c?.clientId ?? '');
  const [clientSecret, setClientSecret] = useState('');
  const [scope, setScope] = useState(c?.scope ?? '');
  const action = useAction();
  const focusRef = useAutoFocus<HTMLInputElement>();
  const id = c ? `conn-${c.name.replace(/[^\w-]/g, '_')}` : 'new-conn';
  const oauth = auth === 'oauth2.1' || auth === 'oauth2.1-static';
  const keepHint = c ? 'Leave empty to keep the current one.' : undefined;
  return (
    <form class="card stack" aria-label={c ? `Edit connection ${c.name}` : 'New connection'} onSubmit={async (ev) => {
      ev.preventDefault();
      const body: Record<string, string | null> = { url: url.trim(), auth };
      if (auth === 'bearer' && token) body.token = token;
      if (auth === 'oauth2.1-static') {
        if (clientId.trim()) body.clientId = clientId.trim();
        if (clientSecret) body.clientSecret = clientSecret;
      }
      if (oauth && (scope.trim() || c?.scope)) body.scope = scope.trim() || null;
      const ok = await action.run(() =>
        c ? patch(`/api/admin/connections/${seg(c.name)}`, body) : post('/api/admin/connections', { name: name.trim(), ...body }),
      );
      if (ok) props.onSaved(name.trim());
    }}>
      {!c && <h2>New connection</h2>}
      <div class="grid">
        {!c && (
          <div class="field">
            <label for={`${id}-name`}>Name</label>
            <input id={`${id}-name`} required ref={focusRef} spellcheck={false} pattern="[A-Za-z0-9][A-Za-z0-9._\-]*"
              aria-describedby={`${id}-name-hint`} value={name} onInput={(e) => setName(e.currentTarget.value)} />
            <small id={`${id}-name-hint`} class="hint">Letters, digits, dots, dashes: it becomes the path /connections/NAME/.</small>
          </div>
        )}
        <div class="field">
          <label for={`${id}-url`}>Server URL</label>
          <input id={`${id}-url`} type="url" required spellcheck={false} placeholder="https://mcp.example.com/mcp"
            value={url} onInput={(e) => setUrl(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for={`${id}-auth`}>Authentication</label>
          <select id={`${id}-auth`} value={auth} onChange={(e) => setAuth(e.currentTarget.value as ConnectionAuth)}>
            {AUTH_OPTIONS.map((o) => <option value={o.value} key={o.value}>{o.label}</option>)}
          </select>
        </div>
        {auth === 'bearer' && (
          <div class="field">
            <label for={`${id}-token`}>Bearer token</label>
            <input id={`${id}-token`} type="password" autocomplete="off" required={!c} aria-describedby={keepHint && `${id}-token-hint`}
              value={token} onInput={(e) => setToken(e.currentTarget.value)} />
            {keepHint && <small id={`${id}-token-hint`} class="hint">{keepHint}</small>}
          </div>
        )}
        {auth === 'oauth2.1-static' && (
          <>
            <div class="field">
              <label for={`${id}-client-id`}>Client id</label>
              <input id={`${id}-client-id`} required spellcheck={false} autocomplete="off" value={clientId} onInput={(e) => setClientId(e.currentTarget.value)} />
            </div>
            <div class="field">
              <label for={`${id}-client-secret`}>Client secret</label>
              <input id={`${id}-client-secret`} type="password" autocomplete="off" aria-describedby={keepHint && `${id}-secret-hint`}
                value={clientSecret} onInput={(e) => setClientSecret(e.currentTarget.value)} />
              {keepHint && <small id={`${id}-secret-hint`} class="hint">{keepHint}</small>}
            </div>
          </>
        )}
        {oauth && (
          <div class="field">
            <label for={`${id}-scope`}>Scope</label>
            <input id={`${id}-scope`} spellcheck={false} placeholder="optional" value={scope} onInput={(e) => setScope(e.currentTarget.value)} />
          </div>
        )}
      </div>
      {c && <p class="hint">Changing the URL, the authentication or the client deletes every user's tokens: they authorize again.</p>}
      {!c && oauth && <p class="hint">Creating an OAuth connection discovers its authorization server{auth === 'oauth2.1' ? ' and registers the gateway as a client' : ''}: this can take a few seconds.</p>}
      {action.error && <Notice kind="error">{action.error}</Notice>}
      <div class="row">
        <Button type="submit" variant="primary" busy={action.busy} busyLabel={c ? 'Saving…' : oauth ? 'Discovering…' : 'Creating…'}>{c ? 'Save connection' : 'Create connection'}</Button>
        <Button variant="plain" onClick={props.onCancel}>Cancel</Button>
      </div>
    </form>
  );
}
