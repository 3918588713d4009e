import { get, type Device } from '../api.ts';
import { useSession } from '../session.ts';
import { LoadError, Loading, Page, Roles, Time, useResource } from '../ui.tsx';

/** How often the device list refreshes, so online state follows the agents without a reload. */
export const DEVICE_POLL_MS = 3000;

/** Start page: the devices the user may open, with live online state. */
export function HomePage() {
  const s = useSession();
  if (!s.features.devices) {
    return (
      <Page title="Welcome">
        <p>You are signed in as <strong>{s.me.name}</strong>.</p>
        <ul class="links">
          {s.features.connections && <li><a href="/account/connections">Your connections</a></li>}
          {s.features.sessions && !s.anonymous && <li><a href="/account/sessions">Your sessions</a></li>}
          {s.isAdmin && <li><a href="/admin/users">Administration</a></li>}
        </ul>
      </Page>
    );
  }
  return <DeviceList />;
}

function DeviceList() {
  const s = useSession();
  const devices = useResource((background) => get<Device[]>('/api/devices', { background }), [], DEVICE_POLL_MS);
  const list = devices.data;
  const online = list?.filter((d) => d.online).length ?? 0;
  return (
    <Page title="Devices">
      {list && list.length > 0 && (
        <p class="muted" aria-live="polite">{online} of {list.length} online</p>
      )}
      <LoadError error={devices.error} retry={devices.reload} />
      {!list && devices.loading && <Loading label="Loading devices…" />}
      {list && list.length === 0 && (
        <div class="empty">
          <p>No devices are available to you yet.</p>
          {s.isAdmin && s.features.adminDevices && <p><a href="/admin/devices">Enroll a device</a> to open its shell here.</p>}
          {!s.isAdmin && <p>Ask an administrator to give you access to a device.</p>}
        </div>
      )}
      {list && list.length > 0 && (
        <ul class="cards" aria-label="Devices">
          {list.map((d) => <DeviceCard key={d.id} d={d} />)}
        </ul>
      )}
    </Page>
  );
}

function DeviceCard({ d }: { d: Device }) {
  return (
    <li class={`card device ${d.online ? 'is-online' : 'is-offline'}`} data-device={d.id}>
      <div class="device-head">
        <h2 class="device-name">{d.name}</h2>
        <Status online={d.online} />
      </div>
      <dl class="facts">
        {d.hostname && <><dt>Host</dt><dd>{d.hostname}</dd></>}
        <dt>Last seen</dt><dd>{d.online ? 'now' : <Time at={d.lastSeenAt} />}</dd>
        {d.agentVersion && <><dt>Agent</dt><dd>{d.agentVersion}</dd></>}
        <dt>Allowed</dt><dd><Roles roles={d.allowedRoles} /></dd>
      </dl>
      {d.online ? (
        <a class="btn primary" href={`/devices/${encodeURIComponent(d.id)}`} aria-label={`Open a terminal on ${d.name}`}>
          Open terminal
        </a>
      ) : (
        <p class="muted small">The terminal opens when the device's agent is connected.</p>
      )}
    </li>
  );
}

/** Online/offline as text and a dot (never colour alone). */
export function Status(props: { online: boolean }) {
  return (
    <span class={`status ${props.online ? 'online' : 'offline'}`}>
      <span class="dot" aria-hidden="true" />
      {props.online ? 'Online' : 'Offline'}
    </span>
  );
}
