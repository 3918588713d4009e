import { del, get, seg, type Session } from '../api.ts';
import { useSession } from '../session.ts';
import { ConfirmButton, LoadError, Loading, Notice, Page, Time, useResource } from '../ui.tsx';

/** The signed-in user's own sessions, with per-session sign-out and sign-out-everywhere. */
export function SessionsPage() {
  const s = useSession();
  const sessions = useResource(() => get<Session[]>('/api/me/sessions'), []);
  if (sessions.missing) return <Page title="My sessions"><Notice>Session management is not available on this gateway.</Notice></Page>;
  // This browser first, then the most recently active.
  const list = sessions.data && [...sessions.data].sort((a, b) => Number(b.current) - Number(a.current) || (b.lastSeenAt ?? '').localeCompare(a.lastSeenAt ?? ''));
  return (
    <Page
      title="My sessions"
      actions={
        <ConfirmButton label="Sign out everywhere" question="Sign out of every browser, this one included?"
          confirmLabel="Yes, sign out everywhere" busyLabel="Signing out…"
          onConfirm={async () => {
            await del('/api/me/sessions');
            s.signedOut();
          }} />
      }
    >
      <p class="muted">Browsers where you are signed in as <strong>{s.me.name}</strong>.</p>
      <LoadError error={sessions.error} retry={sessions.reload} />
      {!list && sessions.loading && <Loading />}
      {list && list.length === 0 && <p>No sessions.</p>}
      {list && list.length > 0 && (
        <table class="table">
          <caption class="sr-only">Your sessions</caption>
          <thead><tr><th scope="col">Browser</th><th scope="col">Address</th><th scope="col">Signed in</th><th scope="col">Last active</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
            {list.map((x) => (
              <tr key={x.id} class={x.current ? 'current' : ''} data-session={x.id}>
                <td data-label="Browser">
                  <span title={x.userAgent ?? ''}>{describeAgent(x.userAgent)}</span>
                  {x.current && <span class="badge ok">This browser</span>}
                </td>
                <td data-label="Address">{x.ip ?? <span class="muted">unknown</span>}</td>
                <td data-label="Signed in"><Time at={x.createdAt} /></td>
                <td data-label="Last active"><Time at={x.lastSeenAt} /></td>
                <td class="actions">
                  {x.current ? (
                    <ConfirmButton label="Sign out" question="Sign out of this browser?" confirmLabel="Sign out"
                      busyLabel="Signing out…" onConfirm={s.signOut} />
                  ) : (
                    <ConfirmButton label="Sign out" question="End this session?" confirmLabel="End session"
                      busyLabel="Ending…"
                      onConfirm={async () => {
                        await del(`/api/me/sessions/${seg(x.id)}`);
                        await sessions.reload();
                      }} />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Page>
  );
}

/** "Firefox on Linux" from a user agent string; the full string stays in the tooltip. */
export function describeAgent(ua: string | null | undefined): string {
  if (!ua) return 'Unknown browser';
  const browser =
    /Edg\//.test(ua) ? 'Edge' :
    /OPR\//.test(ua) ? 'Opera' :
    /Firefox\//.test(ua) ? 'Firefox' :
    /(Chrome|Chromium)\//.test(ua) ? 'Chrome' :
    /Safari\//.test(ua) ? 'Safari' :
    /curl\//.test(ua) ? 'curl' : null;
  const os =
    /Android/.test(ua) ? 'Android' :
    /iPhone|iPad/.test(ua) ? 'iOS' :
    /Windows/.test(ua) ? 'Windows' :
    /Mac OS X|Macintosh/.test(ua) ? 'macOS' :
    /Linux/.test(ua) ? 'Linux' : null;
  if (browser && os) return `${browser} on ${os}`;
  return browser ?? os ?? ua.slice(0, 40);
}
