import type { ComponentChildren, ComponentType } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, get, isMissing, onUnauthorized, post, type Principal } from './api.ts';
import { isServerPath, match, navigate, useLocation } from './router.ts';
import { ANONYMOUS_NAME, SessionContext, useSession, type Features, type SessionState } from './session.ts';
import { Button, Loading, Notice, Page, ProgressBar } from './ui.tsx';
import { LoginPage } from './pages/login.tsx';
import { HomePage } from './pages/home.tsx';
import { ConnectionsPage } from './pages/connections.tsx';
import { SessionsPage } from './pages/sessions.tsx';
import { AdminUsersPage } from './pages/admin-users.tsx';
import { AdminGroupsPage } from './pages/admin-groups.tsx';
import { AdminDevicesPage } from './pages/admin-devices.tsx';
import { AdminProxyPage } from './pages/admin-proxy.tsx';
import { AdminConnectionsPage } from './pages/admin-connections.tsx';

const NO_FEATURES: Features = {
  devices: false, connections: false, sessions: false,
  adminGroups: false, adminDevices: false, adminConnections: false, adminProxy: false,
};

/** Probes one endpoint: present unless it answers 404 (other errors still show the page, which reports them). */
async function probe(path: string): Promise<boolean> {
  try {
    await get(path, { background: true });
    return true;
  } catch (e) {
    return !isMissing(e);
  }
}

async function probeFeatures(isAdmin: boolean): Promise<Features> {
  const admin = (p: string) => (isAdmin ? probe(p) : Promise.resolve(false));
  const [devices, connections, sessions, adminGroups, adminDevices, adminConnections, adminProxy] = await Promise.all([
    probe('/api/devices'), probe('/api/connections'), probe('/api/me/sessions'),
    admin('/api/admin/groups'), admin('/api/admin/devices'), admin('/api/admin/connections'), admin('/api/admin/proxy'),
  ]);
  return { devices, connections, sessions, adminGroups, adminDevices, adminConnections, adminProxy };
}

/** A safe place to go after signing in: a path on this site, never another origin. */
export function safeNext(next: string | null): string {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\') || next.startsWith('/login')) return '/';
  return next;
}

type Auth =
  | { state: 'loading' }
  | { state: 'error'; message: string }
  | { state: 'out' }
  | { state: 'in'; me: Principal; features: Features | null };

export function App() {
  const loc = useLocation();
  const [auth, setAuth] = useState<Auth>({ state: 'loading' });

  const load = useCallback(async () => {
    setAuth({ state: 'loading' });
    try {
      const me = await get<Principal>('/api/me', { quiet401: true });
      setAuth({ state: 'in', me, features: null });
    } catch (e) {
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) setAuth({ state: 'out' });
      else setAuth({ state: 'error', message: e instanceof Error ? e.message : String(e) });
    }
  }, []);

  useEffect(() => void load(), [load]);

  // Any 401 from the API means the session ended (expired, revoked elsewhere): back to sign-in.
  useEffect(() => onUnauthorized(() => setAuth((a) => (a.state === 'in' ? { state: 'out' } : a))), []);

  const isAdmin = auth.state === 'in' && auth.me.roles.includes('ROLE_ADMIN');
  const meName = auth.state === 'in' ? auth.me.name : null;

  const refreshFeatures = useCallback(() => {
    if (!meName) return;
    void probeFeatures(isAdmin).then((features) =>
      setAuth((a) => (a.state === 'in' && a.me.name === meName ? { ...a, features } : a)),
    );
  }, [meName, isAdmin]);

  useEffect(() => refreshFeatures(), [refreshFeatures]);

  // Signed out anywhere but the sign-in page: go there, remembering where we were.
  useEffect(() => {
    if (auth.state === 'out' && loc.path !== '/login') {
      const here = location.pathname + location.search;
      navigate(here === '/' ? '/login' : `/login?next=${encodeURIComponent(here)}`, { replace: true });
    }
  }, [auth.state, loc.path]);

  // Signed in (just now, or already, e.g. back from SSO) while on the sign-in page: go on.
  useEffect(() => {
    if (auth.state !== 'in' || loc.path !== '/login') return;
    const next = safeNext(loc.query.get('next'));
    if (isServerPath(next)) location.assign(next);
    else navigate(next, { replace: true });
  }, [auth.state, loc.path]);

  const session = useMemo<SessionState | null>(() => {
    if (auth.state !== 'in') return null;
    return {
      me: auth.me,
      features: auth.features ?? NO_FEATURES,
      isAdmin,
      anonymous: auth.me.name === ANONYMOUS_NAME,
      signOut: async () => {
        await post('/api/auth/logout');
        setAuth({ state: 'out' });
        navigate('/login', { replace: true });
      },
      signedOut: () => {
        setAuth({ state: 'out' });
        navigate('/login', { replace: true });
      },
      refreshFeatures,
    };
  }, [auth, isAdmin, refreshFeatures]);

  if (auth.state === 'loading') return <Shell><Loading label="Loading Portcullis…" /></Shell>;
  if (auth.state === 'error') {
    return (
      <Shell>
        <Page title="Cannot reach the gateway">
          <Notice kind="error">{auth.message}</Notice>
          <Button variant="primary" onClick={load}>Try again</Button>
        </Page>
      </Shell>
    );
  }
  if (auth.state === 'out' || loc.path === '/login') {
    // Signed in on the sign-in page: the effect above moves on.
    if (auth.state === 'in') return <Shell><Loading /></Shell>;
    return (
      <Shell>
        <LoginPage onSignedIn={(me) => setAuth({ state: 'in', me, features: null })} />
      </Shell>
    );
  }
  if (!session || auth.features === null) return <Shell><Loading /></Shell>;
  return (
    <SessionContext.Provider value={session}>
      <Shell nav={<Nav />}>
        <Routes />
      </Shell>
    </SessionContext.Provider>
  );
}

function Shell(props: { nav?: ComponentChildren; children: ComponentChildren }) {
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <ProgressBar />
      {props.nav ?? (
        <header class="topbar">
          <span class="brand"><Logo /> Portcullis</span>
        </header>
      )}
      <main id="main" tabIndex={-1}>{props.children}</main>
    </>
  );
}

function Logo() {
  return (
    <svg class="logo" viewBox="0 0 24 24" width="22" height="22" aria-hidden="true">
      <path fill="currentColor" d="M3 3h18v3h-1v15h-2V6h-3v15h-2V6h-2v15H9V6H6v15H4V6H3z" />
    </svg>
  );
}

interface NavItem { href: string; label: string; show: boolean; /** Read before the label by screen readers only. */ srPrefix?: string }

function Nav() {
  const s = useSession();
  const loc = useLocation();
  const [open, setOpen] = useState(false);
  const f = s.features;
  const main: NavItem[] = [
    { href: '/', label: f.devices ? 'Devices' : 'Home', show: true },
    { href: '/account/connections', label: 'Connections', show: f.connections },
    { href: '/account/sessions', label: 'My sessions', show: f.sessions && !s.anonymous },
  ];
  const admin: NavItem[] = [
    { href: '/admin/users', label: 'Users', show: s.isAdmin },
    { href: '/admin/groups', label: 'Groups', show: s.isAdmin && f.adminGroups },
    { href: '/admin/devices', label: 'Devices', srPrefix: 'Manage ', show: s.isAdmin && f.adminDevices },
    { href: '/admin/proxy', label: 'Proxy', show: s.isAdmin && f.adminProxy },
    { href: '/admin/connections', label: 'Connections', srPrefix: 'Manage ', show: s.isAdmin && f.adminConnections },
  ];
  // Close the phone menu after navigating.
  const lastPath = useRef(loc.path);
  useEffect(() => {
    if (lastPath.current !== loc.path) setOpen(false);
    lastPath.current = loc.path;
  }, [loc.path]);
  const current = (href: string) =>
    href === '/' ? loc.path === '/' || loc.path.startsWith('/devices/') : loc.path === href || loc.path.startsWith(href + '/');
  const link = (i: NavItem) => (
    <li key={i.href}>
      <a href={i.href} aria-current={current(i.href) ? 'page' : undefined}>
        {i.srPrefix && <span class="sr-only">{i.srPrefix}</span>}
        {i.label}
      </a>
    </li>
  );
  const signOut = useSignOut();
  return (
    <header class="topbar">
      <a class="brand" href="/"><Logo /> Portcullis</a>
      <button type="button" class="btn plain menu-toggle" aria-expanded={open} aria-controls="site-nav" onClick={() => setOpen(!open)}>
        Menu
      </button>
      <nav id="site-nav" class={open ? 'open' : ''} aria-label="Main">
        <ul>{main.filter((i) => i.show).map(link)}</ul>
        {s.isAdmin && (
          <>
            <span class="nav-sep" id="admin-nav-label">Admin</span>
            <ul aria-labelledby="admin-nav-label">{admin.filter((i) => i.show).map(link)}</ul>
          </>
        )}
        <div class="me">
          <span class="me-name" title={s.me.roles.join(', ')}>{s.me.name}</span>
          {!s.anonymous && (
            <Button class="small" busy={signOut.busy} busyLabel="Signing out…" onClick={signOut.go}>Sign out</Button>
          )}
        </div>
      </nav>
    </header>
  );
}

function useSignOut() {
  const s = useSession();
  const [busy, setBusy] = useState(false);
  return {
    busy,
    go: async () => {
      setBusy(true);
      try {
        await s.signOut();
      } catch {
        // Even if the gateway could not be told, forget the session here.
        s.signedOut();
      } finally {
        setBusy(false);
      }
    },
  };
}

interface Route { path: string; component: ComponentType<Record<string, string>>; admin?: boolean }

const LazyTerminal = lazyPage(() => import('./pages/terminal.tsx').then((m) => m.TerminalPage));

const ROUTES: Route[] = [
  { path: '/', component: HomePage },
  { path: '/devices/:id', component: LazyTerminal },
  { path: '/account/connections', component: ConnectionsPage },
  { path: '/account/sessions', component: SessionsPage },
  { path: '/admin', component: AdminIndex, admin: true },
  { path: '/admin/users', component: AdminUsersPage, admin: true },
  { path: '/admin/groups', component: AdminGroupsPage, admin: true },
  { path: '/admin/devices', component: AdminDevicesPage, admin: true },
  { path: '/admin/proxy', component: AdminProxyPage, admin: true },
  { path: '/admin/connections', component: AdminConnectionsPage, admin: true },
];

function Routes() {
  const s = useSession();
  const loc = useLocation();
  for (const r of ROUTES) {
    const params = match(r.path, loc.path);
    if (!params) continue;
    // A user without ROLE_ADMIN never sees an admin page (the API refuses them anyway).
    if (r.admin && !s.isAdmin) break;
    const C = r.component;
    return <C key={r.path} {...params} />;
  }
  return <NotFound />;
}

function AdminIndex() {
  useEffect(() => navigate('/admin/users', { replace: true }), []);
  return null;
}

function NotFound() {
  return (
    <Page title="Page not found">
      <p>There is nothing here. <a href="/">Go to the start page</a>.</p>
    </Page>
  );
}

/** Loads a page's code on first use (keeps the terminal's code out of the main bundle). */
function lazyPage<P>(load: () => Promise<ComponentType<P>>): ComponentType<P> {
  let loaded: ComponentType<P> | undefined;
  return function Lazy(props: P) {
    const [C, setC] = useState<ComponentType<P> | undefined>(() => loaded);
    const [failed, setFailed] = useState(false);
    useEffect(() => {
      if (C) return;
      load().then((c) => {
        loaded = c;
        setC(() => c);
      }, () => setFailed(true));
    }, []);
    if (failed) return <Notice kind="error">This page could not be loaded. Reload the page to try again.</Notice>;
    if (!C) return <Loading />;
    return <C {...(props as P & object)} />;
  };
}
