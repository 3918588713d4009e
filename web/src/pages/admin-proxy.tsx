import { useEffect, useState } from 'preact/hooks';
import { get, put } from '../api.ts';
import { Button, LoadError, Loading, Notice, Page, useAction, useResource } from '../ui.tsx';

interface ProxySetting { url: string | null }

/** Admin: the target of `/proxy`, changed at run time. */
export function AdminProxyPage() {
  const setting = useResource(() => get<ProxySetting>('/api/admin/proxy'), []);
  const [url, setUrl] = useState('');
  const save = useAction();
  const disable = useAction();
  const current = setting.data?.url ?? null;
  useEffect(() => {
    if (setting.data) setUrl(setting.data.url ?? '');
  }, [setting.data]);
  if (setting.missing) return <Page title="Proxy"><Notice>The proxy is not available on this gateway.</Notice></Page>;
  const apply = async (value: string | null) => {
    await put<ProxySetting>('/api/admin/proxy', { url: value });
    await setting.reload();
  };
  return (
    <Page title="Proxy">
      <p class="muted">
        Requests to <a href="/proxy/" target="_blank" rel="noopener">/proxy</a> are forwarded to this address, each with a signed token
        that names the caller and their roles.
      </p>
      <LoadError error={setting.error} retry={setting.reload} />
      {!setting.data && setting.loading && <Loading />}
      {setting.data && (
        <>
          <p id="proxy-state" role="status">
            {current ? <>Currently forwarding to <code class="break">{current}</code>.</> : 'The proxy is disabled.'}
          </p>
          <form class="card stack" onSubmit={async (ev) => {
            ev.preventDefault();
            await save.run(() => apply(url.trim()));
          }}>
            <div class="field">
              <label for="proxy-url">Target URL</label>
              <input id="proxy-url" type="url" required placeholder="http://127.0.0.1:3000" spellcheck={false}
                aria-describedby="proxy-url-hint" value={url} onInput={(e) => setUrl(e.currentTarget.value)} />
              <small id="proxy-url-hint" class="hint">An http or https URL. The path of /proxy/… is appended to it.</small>
            </div>
            {save.error && <Notice kind="error">{save.error}</Notice>}
            <div class="row">
              <Button type="submit" variant="primary" busy={save.busy} busyLabel="Saving…">Save</Button>
              {current && (
                <Button variant="danger" busy={disable.busy} busyLabel="Disabling…" onClick={async () => {
                        await disable.run(() => apply(null));
                }}>Disable the proxy</Button>
              )}
            </div>
            {disable.error && <Notice kind="error">{disable.error}</Notice>}
          </form>
        </>
      )}
    </Page>
  );
}
