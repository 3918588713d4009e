/** A small client-side router on the history API. */
import { useEffect, useState } from 'preact/hooks';

type Listener = () => void;
const listeners = new Set<Listener>();

function notify() {
  for (const l of listeners) l();
}
window.addEventListener('popstate', notify);

/** Navigates inside the app without a page load. */
export function navigate(to: string, opts: { replace?: boolean } = {}) {
  const current = location.pathname + location.search;
  if (to === current) return;
  if (opts.replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  window.scrollTo(0, 0);
  notify();
}

/** The current location, re-rendering on every navigation. */
export function useLocation(): { path: string; query: URLSearchParams } {
  const [, setTick] = useState(0);
  useEffect(() => {
    const l = () => setTick((n) => n + 1);
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

/**
 * Turns clicks on same-origin `<a href>` into in-app navigations.
 * Links to gateway endpoints (`/api/`, `/auth/`, `/proxy`, `/connections/`) and
 * links with a target or modifier key keep the browser's behaviour.
 */
export function interceptLinks(root: HTMLElement) {
  root.addEventListener('click', (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const a = (ev.target as Element | null)?.closest?.('a');
    if (!a || a.target || a.hasAttribute('download') || a.dataset.external !== undefined) return;
    // In-page anchors (the skip link) keep the browser's behaviour.
    if (a.getAttribute('href')?.startsWith('#')) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || isServerPath(url.pathname)) return;
    ev.preventDefault();
    navigate(url.pathname + url.search);
  });
}

/** Paths that the gateway itself answers, never the app. */
export function isServerPath(path: string) {
  return /^\/(api|auth|proxy|connections|\.well-known|healthz|readyz)(\/|$)/.test(path);
}

/** Matches `pattern` like `/devices/:id` against `path`; returns the decoded params or null. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const split = (x: string) => x.replace(/\/+$/, '').split('/');
  const p = split(pattern);
  const s = split(path);
  if (p.length !== s.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    const pi = p[i] ?? '';
    const si = s[i] ?? '';
    if (pi.startsWith(':')) {
      if (!si) return null;
      try {
        params[pi.slice(1)] = decodeURIComponent(si);
      } catch {
        return null;
      }
    } else if (pi !== si) return null;
  }
  return params;
}
