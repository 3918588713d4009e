import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { del, get, patch, post, seg, type User } from '../api.ts';
import { useSession } from '../session.ts';
import { Button, ConfirmButton, EditRow, EditToggle, LoadError, Loading, Notice, Page, Roles, Time, parseList, useAction, useResource, useAutoFocus } from '../ui.tsx';

/** Admin: local users — create, roles, password reset, disable, delete. */
export function AdminUsersPage() {
  const users = useResource(() => get<User[]>('/api/admin/users'), []);
  const [creating, setCreating] = useState(false);
  const [flash, setFlash] = useState<string>();
  const [editing, setEditing] = useState<string | null>(null);
  const list = users.data;
  return (
    <Page title="Users" actions={!creating && <Button variant="primary" onClick={() => setCreating(true)}>New user</Button>}>
      {flash && <Notice kind="ok">{flash}</Notice>}
      {creating && (
        <CreateUser
          onCancel={() => setCreating(false)}
          onCreated={async (u) => {
            setCreating(false);
            await users.reload();
            setFlash(`User ${u.name} created.`);
          }}
        />
      )}
      <LoadError error={users.error} retry={users.reload} />
      {!list && users.loading && <Loading label="Loading users…" />}
      {list && (
        <table class="table">
          <caption class="sr-only">Users</caption>
          <thead>
            <tr><th scope="col">Name</th><th scope="col">Roles</th><th scope="col">Status</th><th scope="col">Created</th><th scope="col"><span class="sr-only">Actions</span></th></tr>
          </thead>
          <tbody>
            {list.map((u) => (
              <UserRow key={u.name} u={u} open={editing === u.name}
                onToggle={() => setEditing(editing === u.name ? null : u.name)}
                onChanged={async (msg) => {
                  await users.reload();
                  setFlash(msg);
                }} />
            ))}
          </tbody>
        </table>
      )}
    </Page>
  );
}

function CreateUser(props: { onCreated: (u: User) => void; onCancel: () => void }) {
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [roles, setRoles] = useState('');
  const action = useAction();
  const focusRef = useAutoFocus<HTMLInputElement>();
  const submit = async (ev: Event) => {
    ev.preventDefault();
    let created: User | undefined;
    const body: { name: string; password?: string; roles?: string[] } = { name: name.trim() };
    if (password) body.password = password;
    const r = parseList(roles);
    if (r.length) body.roles = r;
    if (await action.run(async () => (created = await post<User>('/api/admin/users', body)))) {
      props.onCreated(created ?? { name: body.name, roles: r, disabled: false, createdAt: new Date().toISOString() });
    }
  };
  return (
    <form class="card stack" onSubmit={submit} aria-labelledby="new-user-title">
      <h2 id="new-user-title">New user</h2>
      <div class="grid">
        <div class="field">
          <label for="new-user-name">User name</label>
          <input id="new-user-name" required autocomplete="off" autocapitalize="none" spellcheck={false} ref={focusRef}
            value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="new-user-password">Password</label>
          <input id="new-user-password" type="password" autocomplete="new-password" aria-describedby="new-user-password-hint"
            value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
          <small id="new-user-password-hint" class="hint">Leave empty for a user who signs in only through single sign-on.</small>
        </div>
        <div class="field">
          <label for="new-user-roles">Roles</label>
          <input id="new-user-roles" placeholder="ROLE_ADMIN, ROLE_OPS" autocapitalize="characters" spellcheck={false}
            aria-describedby="new-user-roles-hint" value={roles} onInput={(e) => setRoles(e.currentTarget.value)} />
          <small id="new-user-roles-hint" class="hint">Separated by commas. Every user has ROLE_USER.</small>
        </div>
      </div>
      {action.error && <Notice kind="error">{action.error}</Notice>}
      <div class="row">
        <Button type="submit" variant="primary" busy={action.busy} busyLabel="Creating…">Create user</Button>
        <Button variant="plain" onClick={props.onCancel}>Cancel</Button>
      </div>
    </form>
  );
}

function UserRow(props: { u: User; open: boolean; onToggle: () => void; onChanged: (msg: string) => Promise<void> }) {
  const { u } = props;
  return (
    <Fragment>
      <tr data-user={u.name}>
        <th scope="row" data-label="Name">
          {u.name}
          {u.email && <div class="muted small">{u.email}</div>}
        </th>
        <td data-label="Roles">
          <Roles roles={u.roles} />
          {u.groups && u.groups.length > 0 && <div class="muted small">groups: {u.groups.join(', ')}</div>}
        </td>
        <td data-label="Status">{u.disabled ? <span class="badge warn">Disabled</span> : 'Active'}</td>
        <td data-label="Created"><Time at={u.createdAt} /></td>
        <td class="actions">
          <EditToggle name={u.name} open={props.open} onToggle={props.onToggle} />
        </td>
      </tr>
      {props.open && (
        <EditRow name={u.name} colSpan={5}><EditUser u={u} onChanged={props.onChanged} /></EditRow>
      )}
    </Fragment>
  );
}

function EditUser(props: { u: User; onChanged: (msg: string) => Promise<void> }) {
  const { u } = props;
  const me = useSession().me;
  const path = `/api/admin/users/${seg(u.name)}`;
  const [roles, setRoles] = useState(u.roles.filter((r) => r !== 'ROLE_USER').join(', '));
  const [password, setPassword] = useState('');
  const rolesAction = useAction();
  const pwAction = useAction();
  const disableAction = useAction();
  const id = u.name.replace(/[^\w-]/g, '_');
  return (
    <div class="stack edit">
      <form class="inline-form" onSubmit={async (ev) => {
        ev.preventDefault();
        if (await rolesAction.run(() => patch(path, { roles: parseList(roles) }))) await props.onChanged(`Roles of ${u.name} saved.`);
      }}>
        <div class="field">
          <label for={`roles-${id}`}>Roles of {u.name}</label>
          <input id={`roles-${id}`} spellcheck={false} value={roles} onInput={(e) => setRoles(e.currentTarget.value)} />
        </div>
        <Button type="submit" busy={rolesAction.busy} busyLabel="Saving…">Save roles</Button>
        {rolesAction.error && <Notice kind="error">{rolesAction.error}</Notice>}
      </form>
      <form class="inline-form" onSubmit={async (ev) => {
        ev.preventDefault();
        if (await pwAction.run(() => patch(path, { password }))) {
          setPassword('');
          await props.onChanged(`Password of ${u.name} changed.`);
        }
      }}>
        <div class="field">
          <label for={`pw-${id}`}>New password for {u.name}</label>
          <input id={`pw-${id}`} type="password" autocomplete="new-password" required
            value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        </div>
        <Button type="submit" busy={pwAction.busy} busyLabel="Saving…">Set password</Button>
        {pwAction.error && <Notice kind="error">{pwAction.error}</Notice>}
      </form>
      <div class="row">
        {u.name !== me.name && (
          <Button busy={disableAction.busy} busyLabel="Saving…"
            onClick={async () => {
              if (await disableAction.run(() => patch(path, { disabled: !u.disabled }))) {
                await props.onChanged(`${u.name} ${u.disabled ? 'enabled' : 'disabled'}.`);
              }
            }}>
            {u.disabled ? 'Enable account' : 'Disable account'}
          </Button>
        )}
        {u.name !== me.name && (
          <ConfirmButton label="Delete user" question={`Delete ${u.name}? This cannot be undone.`} confirmLabel={`Delete ${u.name}`}
            busyLabel="Deleting…" onConfirm={async () => {
              await del(path);
              await props.onChanged(`User ${u.name} deleted.`);
            }} />
        )}
        {disableAction.error && <Notice kind="error">{disableAction.error}</Notice>}
      </div>
    </div>
  );
}
