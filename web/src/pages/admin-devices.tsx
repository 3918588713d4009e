import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { del, get, patch, post, seg, type AdminDevice, type Enrollment } from '../api.ts';
import { Button, ConfirmButton, EditRow, EditToggle, CopyField, LoadError, Loading, Notice, Page, Roles, Time, parseList, useAction, useResource, useAutoFocus } from '../ui.tsx';
import { DEVICE_POLL_MS, Status } from './home.tsx';

/** Admin: devices — enroll (with the command to copy), allowed roles, disable, delete. */
export function AdminDevicesPage() {
  const devices = useResource((background) => get<AdminDevice[]>('/api/admin/devices', { background }), [], DEVICE_POLL_MS);
  const [creating, setCreating] = useState(false);
  const [flash, setFlash] = useState<string>();
  const [editing, setEditing] = useState<string | null>(null);
  const [enrollment, setEnrollment] = useState<{ device: string; e: Enrollment } | null>(null);
  if (devices.missing) return <Page title="Devices"><Notice>Devices are not available on this gateway.</Notice></Page>;
  const list = devices.data;
  const changed = async (msg: string) => {
    await devices.reload();
    setFlash(msg);
  };
  return (
    <Page title="Manage devices" actions={!creating && <Button variant="primary" onClick={() => { setCreating(true); setEnrollment(null); }}>New device</Button>}>
      {flash && !enrollment && <Notice kind="ok">{flash}</Notice>}
      {enrollment && <EnrollmentPanel device={enrollment.device} e={enrollment.e} onDone={() => setEnrollment(null)} />}
      {creating && (
        <CreateDevice
          onCancel={() => setCreating(false)}
          onCreated={async (name, e) => {
            setCreating(false);
            setEnrollment({ device: name, e });
            await devices.reload();
          }}
        />
      )}
      <LoadError error={devices.error} retry={devices.reload} />
      {!list && devices.loading && <Loading label="Loading devices…" />}
      {list && list.length === 0 && !creating && <p class="empty">No devices yet. Create one, then run the enrollment command on it.</p>}
      {list && list.length > 0 && (
        <table class="table">
          <caption class="sr-only">Devices</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Host</th><th scope="col">Allowed roles</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
            {list.map((d) => (
              <Fragment key={d.id}>
                <tr data-device={d.id}>
                  <th scope="row" data-label="Name">{d.name}</th>
                  <td data-label="Status">
                    {d.disabled ? <span class="badge warn">Disabled</span> : <Status online={d.online} />}
                    {!d.online && <div class="muted small">last seen <Time at={d.lastSeenAt} /></div>}
                  </td>
                  <td data-label="Host">
                    {d.hostname ?? <span class="muted">not enrolled</span>}
                    {d.agentVersion && <div class="muted small">agent {d.agentVersion}</div>}
                    {d.enrolled === false && d.enrollment && (
                      <div class="muted small">
                        {d.enrollment.used ? 'token used' : new Date(d.enrollment.expiresAt).getTime() < Date.now() ? 'token expired' : <>token expires <Time at={d.enrollment.expiresAt} /></>}
                      </div>
                    )}
                    {!!d.sessions && <div class="muted small">{d.sessions} open terminal{d.sessions === 1 ? '' : 's'}</div>}
                  </td>
                  <td data-label="Allowed roles"><Roles roles={d.allowedRoles} /></td>
                  <td class="actions">
                    <EditToggle name={d.name} open={editing === d.id} onToggle={() => setEditing(editing === d.id ? null : d.id)} />
                  </td>
                </tr>
                {editing === d.id && (
                  <EditRow name={d.name} colSpan={5}>
                      <EditDevice d={d}
                        onEnrollment={(e) => setEnrollment({ device: d.name, e })}
                        onChanged={changed}
                        onDeleted={async () => {
                          setEditing(null);
                          await changed(`Device ${d.name} deleted.`);
                        }} />
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

function EnrollmentPanel(props: { device: string; e: Enrollment; onDone: () => void }) {
  return (
    <section class="card stack enrollment" aria-labelledby="enroll-title">
      <h2 id="enroll-title">Enroll {props.device}</h2>
      <p>Run this on the device, as the user whose shell it should open. The token works once; it expires <Time at={props.e.expiresAt} /> ({new Date(props.e.expiresAt).toLocaleString()}).</p>
      <CopyField id="enroll-command" label="Enrollment command" value={props.e.command} />
      <div class="row"><Button onClick={props.onDone}>Done</Button></div>
    </section>
  );
}

function CreateDevice(props: { onCreated: (name: string, e: Enrollment) => void; onCancel: () => void }) {
  const [name, setName] = useState('');
  const [roles, setRoles] = useState('');
  const action = useAction();
  const focusRef = useAutoFocus<HTMLInputElement>();
  return (
    <form class="card stack" aria-labelledby="new-device-title" onSubmit={async (ev) => {
      ev.preventDefault();
      const body: { name: string; allowedRoles?: string[] } = { name: name.trim() };
      const r = parseList(roles);
      if (r.length) body.allowedRoles = r;
      let res: { device: AdminDevice; enrollment: Enrollment } | undefined;
      if (await action.run(async () => (res = await post('/api/admin/devices', body))) && res) {
        props.onCreated(res.device.name, res.enrollment);
      }
    }}>
      <h2 id="new-device-title">New device</h2>
      <div class="grid">
        <div class="field">
          <label for="new-device-name">Device name</label>
          <input id="new-device-name" required ref={focusRef} spellcheck={false} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="new-device-roles">Allowed roles</label>
          <input id="new-device-roles" spellcheck={false} placeholder="ROLE_ADMIN" aria-describedby="new-device-roles-hint"
            value={roles} onInput={(e) => setRoles(e.currentTarget.value)} />
          <small id="new-device-roles-hint" class="hint">Who may open its terminal, separated by commas. Empty means ROLE_ADMIN only.</small>
        </div>
      </div>
      {action.error && <Notice kind="error">{action.error}</Notice>}
      <div class="row">
        <Button type="submit" variant="primary" busy={action.busy} busyLabel="Creating…">Create and get the enrollment command</Button>
        <Button variant="plain" onClick={props.onCancel}>Cancel</Button>
      </div>
    </form>
  );
}

function EditDevice(props: { d: AdminDevice; onChanged: (msg: string) => Promise<void>; onDeleted: () => Promise<void>; onEnrollment: (e: Enrollment) => void }) {
  const { d } = props;
  const path = `/api/admin/devices/${seg(d.id)}`;
  const [name, setName] = useState(d.name);
  const [roles, setRoles] = useState(d.allowedRoles.join(', '));
  const save = useAction();
  const toggle = useAction();
  const enroll = useAction();
  const id = d.id.replace(/[^\w-]/g, '_');
  return (
    <div class="stack edit">
      {d.hostKeyFingerprint && <p class="small">Pinned host key: <code class="break">{d.hostKeyFingerprint}</code></p>}
      <form class="grid" onSubmit={async (ev) => {
        ev.preventDefault();
        if (await save.run(() => patch(path, { name: name.trim(), allowedRoles: parseList(roles) }))) await props.onChanged(`Device ${name.trim()} saved.`);
      }}>
        <div class="field">
          <label for={`dev-name-${id}`}>Name</label>
          <input id={`dev-name-${id}`} required spellcheck={false} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for={`dev-roles-${id}`}>Allowed roles</label>
          <input id={`dev-roles-${id}`} spellcheck={false} value={roles} onInput={(e) => setRoles(e.currentTarget.value)} />
        </div>
        <div class="row">
          <Button type="submit" busy={save.busy} busyLabel="Saving…">Save device</Button>
        </div>
        {save.error && <Notice kind="error">{save.error}</Notice>}
      </form>
      <div class="row">
        <Button busy={toggle.busy} busyLabel="Saving…" onClick={async () => {
          if (await toggle.run(() => patch(path, { disabled: !d.disabled }))) await props.onChanged(`Device ${d.name} ${d.disabled ? 'enabled' : 'disabled'}.`);
        }}>{d.disabled ? 'Enable device' : 'Disable device'}</Button>
        <Button busy={enroll.busy} busyLabel="Creating token…" onClick={async () => {
          let e: Enrollment | undefined;
          const ok = await enroll.run(async () => {
            const r = await post<Enrollment | { enrollment: Enrollment }>(`${path}/enrollment`);
            e = 'enrollment' in r ? r.enrollment : r;
          });
          if (ok && e) props.onEnrollment(e);
        }}>New enrollment token</Button>
        <ConfirmButton label="Delete device" question={`Delete ${d.name}? Its agent will be refused.`} confirmLabel={`Delete ${d.name}`}
          busyLabel="Deleting…" onConfirm={async () => {
            await del(path);
            await props.onDeleted();
          }} />
      </div>
      {toggle.error && <Notice kind="error">{toggle.error}</Notice>}
      {enroll.error && <Notice kind="error">{enroll.error}</Notice>}
    </div>
  );
}
