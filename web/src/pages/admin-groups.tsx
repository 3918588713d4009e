import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { del, get, patch, post, seg, type Group } from '../api.ts';
import { Button, ConfirmButton, EditRow, EditToggle, LoadError, Loading, Notice, Page, Roles, parseList, useAction, useResource, useAutoFocus } from '../ui.tsx';

/** Admin: groups, whose members receive the group's roles. */
export function AdminGroupsPage() {
  const groups = useResource(() => get<Group[]>('/api/admin/groups'), []);
  const [creating, setCreating] = useState(false);
  const [flash, setFlash] = useState<string>();
  const [editing, setEditing] = useState<string | null>(null);
  if (groups.missing) return <Page title="Groups"><Notice>Groups are not available on this gateway.</Notice></Page>;
  const list = groups.data;
  const changed = async (msg: string) => {
    await groups.reload();
    setFlash(msg);
  };
  return (
    <Page title="Groups" actions={!creating && <Button variant="primary" onClick={() => setCreating(true)}>New group</Button>}>
      <p class="muted">Members of a group receive its roles.</p>
      {flash && <Notice kind="ok">{flash}</Notice>}
      {creating && (
        <GroupForm
          onCancel={() => setCreating(false)}
          onSaved={async (name) => {
            setCreating(false);
            await changed(`Group ${name} created.`);
          }}
        />
      )}
      <LoadError error={groups.error} retry={groups.reload} />
      {!list && groups.loading && <Loading label="Loading groups…" />}
      {list && list.length === 0 && <p class="empty">No groups yet.</p>}
      {list && list.length > 0 && (
        <table class="table">
          <caption class="sr-only">Groups</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Roles</th><th scope="col">Members</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
            {list.map((g) => (
              <Fragment key={g.name}>
                <tr data-group={g.name}>
                  <th scope="row" data-label="Name">{g.name}</th>
                  <td data-label="Roles"><Roles roles={g.roles ?? []} /></td>
                  <td data-label="Members">{g.members?.length ? g.members.join(', ') : <span class="muted">none</span>}</td>
                  <td class="actions">
                    <EditToggle name={g.name} open={editing === g.name} onToggle={() => setEditing(editing === g.name ? null : g.name)} />
                  </td>
                </tr>
                {editing === g.name && (
                  <EditRow name={g.name} colSpan={4}>
                      <GroupForm group={g} onCancel={() => setEditing(null)} onSaved={async () => {
                        setEditing(null);
                        await changed(`Group ${g.name} saved.`);
                      }} />
                      <div class="row">
                        <ConfirmButton label="Delete group" question={`Delete group ${g.name}?`} confirmLabel={`Delete ${g.name}`}
                          busyLabel="Deleting…" onConfirm={async () => {
                            await del(`/api/admin/groups/${seg(g.name)}`);
                            setEditing(null);
                            await changed(`Group ${g.name} deleted.`);
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

function GroupForm(props: { group?: Group; onSaved: (name: string) => void; onCancel: () => void }) {
  const g = props.group;
  const [name, setName] = useState(g?.name ?? '');
  const [roles, setRoles] = useState((g?.roles ?? []).join(', '));
  const [members, setMembers] = useState((g?.members ?? []).join(', '));
  const action = useAction();
  const focusRef = useAutoFocus<HTMLInputElement>();
  const id = g ? `group-${g.name.replace(/[^\w-]/g, '_')}` : 'new-group';
  return (
    <form class="card stack" aria-label={g ? `Edit group ${g.name}` : 'New group'} onSubmit={async (ev) => {
      ev.preventDefault();
      const body = { roles: parseList(roles), members: parseList(members) };
      const ok = await action.run(() =>
        g ? patch(`/api/admin/groups/${seg(g.name)}`, body) : post('/api/admin/groups', { name: name.trim(), ...body }),
      );
      if (ok) props.onSaved(name.trim());
    }}>
      {!g && <h2>New group</h2>}
      <div class="grid">
        {!g && (
          <div class="field">
            <label for={`${id}-name`}>Group name</label>
            <input id={`${id}-name`} required ref={focusRef} spellcheck={false} value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </div>
        )}
        <div class="field">
          <label for={`${id}-roles`}>Roles</label>
          <input id={`${id}-roles`} spellcheck={false} placeholder="ROLE_OPS" value={roles} onInput={(e) => setRoles(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for={`${id}-members`}>Members</label>
          <input id={`${id}-members`} spellcheck={false} placeholder="alice, bob" aria-describedby={`${id}-members-hint`}
            value={members} onInput={(e) => setMembers(e.currentTarget.value)} />
          <small id={`${id}-members-hint`} class="hint">User names, separated by commas.</small>
        </div>
      </div>
      {action.error && <Notice kind="error">{action.error}</Notice>}
      <div class="row">
        <Button type="submit" variant="primary" busy={action.busy} busyLabel="Saving…">{g ? 'Save group' : 'Create group'}</Button>
        <Button variant="plain" onClick={props.onCancel}>Cancel</Button>
      </div>
    </form>
  );
}
