/** Shared building blocks: pages, buttons with progress, notices, hooks for loading data. */
import type { ButtonHTMLAttributes, ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { errorText, isMissing, onPending } from './api.ts';

/** False until the first page has shown: a fresh load starts at the top (skip link first). */
let navigatedInApp = false;

/** Sets the document title and renders the page heading, focused on navigation for screen readers. */
export function Page(props: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  const h1 = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${props.title} · Portcullis`;
    if (!navigatedInApp) {
      navigatedInApp = true;
      return;
    }
    // After an in-app navigation, move focus to the new page's heading so keyboard and
    // screen-reader users land on it (unless something on the page already took focus).
    if (document.activeElement === document.body || document.activeElement?.closest('nav')) h1.current?.focus();
  }, [props.title]);
  return (
    <section class="page" aria-labelledby="page-title">
      <header class="page-head">
        <h1 id="page-title" tabIndex={-1} ref={h1}>{props.title}</h1>
        {props.actions && <div class="page-actions">{props.actions}</div>}
      </header>
      {props.children}
    </section>
  );
}

type ButtonProps = Omit<ButtonHTMLAttributes<HTMLButtonElement>, 'type'> & {
  busy?: boolean;
  busyLabel?: string;
  variant?: 'primary' | 'danger' | 'plain';
  type?: 'button' | 'submit';
  disabled?: boolean;
};

/** A button that shows a spinner and stays disabled while its action runs. */
export function Button({ busy, busyLabel, variant, children, type = 'button', disabled, class: cls, ...rest }: ButtonProps) {
  return (
    <button
      {...rest}
      type={type}
      class={['btn', variant ?? '', busy ? 'busy' : '', typeof cls === 'string' ? cls : ''].join(' ').trim()}
      disabled={disabled || busy}
      aria-busy={busy ? 'true' : undefined}
    >
      {busy && <span class="spinner" aria-hidden="true" />}
      {busy && busyLabel ? busyLabel : children}
    </button>
  );
}

/** A message for the user: errors are announced at once, other notices politely. */
export function Notice(props: { kind?: 'error' | 'ok' | 'info' | 'warn'; children: ComponentChildren; id?: string }) {
  const kind = props.kind ?? 'info';
  return (
    <div id={props.id} class={`notice ${kind}`} role={kind === 'error' ? 'alert' : 'status'}>
      {props.children}
    </div>
  );
}

/** Loading placeholder with a spinner. */
export function Loading(props: { label?: string }) {
  return (
    <p class="loading" role="status">
      <span class="spinner" aria-hidden="true" /> {props.label ?? 'Loading…'}
    </p>
  );
}

/** A thin bar at the top of the window while foreground API calls run longer than a moment. */
export function ProgressBar() {
  const [show, setShow] = useState(false);
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    return onPending((n) => {
      clearTimeout(timer);
      if (n > 0) timer = setTimeout(() => setShow(true), 150);
      else setShow(false);
    });
  }, []);
  return show ? <div class="progress" role="progressbar" aria-label="Working" /> : null;
}

export interface Resource<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  /** True when the endpoint does not exist on this gateway (feature not built or not configured). */
  missing: boolean;
  reload: () => Promise<void>;
}

/**
 * Loads data with `load`, optionally polling every `pollMs` (paused while the tab is hidden).
 * A failed poll keeps the last data and shows the error.
 */
export function useResource<T>(load: (background: boolean) => Promise<T>, deps: unknown[], pollMs?: number): Resource<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<unknown>();
  const [loading, setLoading] = useState(true);
  const gen = useRef(0);
  const run = useCallback(async (background: boolean) => {
    const mine = ++gen.current;
    if (!background) setLoading(true);
    try {
      const d = await load(background);
      if (mine === gen.current) {
        setData(d);
        setError(undefined);
      }
    } catch (e) {
      if (mine === gen.current) setError(e);
    } finally {
      if (mine === gen.current) setLoading(false);
    }
  }, deps);
  useEffect(() => {
    setData(undefined);
    void run(false);
    if (!pollMs) return;
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') void run(true);
    }, pollMs);
    const onVisible = () => document.visibilityState === 'visible' && void run(true);
    document.addEventListener('visibilitychange', onVisible);
    return () => {
      clearInterval(timer);
      document.removeEventListener('visibilitychange', onVisible);
      gen.current++;
    };
  }, [run, pollMs]);
  return { data, error, loading, missing: isMissing(error), reload: () => run(false) };
}

/**
 * Wraps an async action: `busy` while it runs, `error` if it failed.
 * Returns true when the action succeeded.
 */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const mounted = useRef(true);
  useEffect(() => () => void (mounted.current = false), []);
  const run = useCallback(async (fn: () => Promise<unknown>): Promise<boolean> => {
    setBusy(true);
    setError(undefined);
    try {
      await fn();
      return true;
    } catch (e) {
      if (mounted.current) setError(errorText(e));
      return false;
    } finally {
      if (mounted.current) setBusy(false);
    }
  }, []);
  return { run, busy, error, setError };
}

/** A read-only command with a copy button (falls back to selecting the text). */
export function CopyField(props: { value: string; label: string; id: string }) {
  const [copied, setCopied] = useState(false);
  const input = useRef<HTMLTextAreaElement>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.value);
      setCopied(true);
    } catch {
      // Clipboard API needs a secure context: select the text so Ctrl+C works.
      input.current?.focus();
      input.current?.select();
    }
  };
  useEffect(() => {
    if (!copied) return;
    const t = setTimeout(() => setCopied(false), 2000);
    return () => clearTimeout(t);
  }, [copied]);
  return (
    <div class="copy-field">
      <label for={props.id}>{props.label}</label>
      <div class="copy-row">
        <textarea id={props.id} ref={input} readOnly rows={2} spellcheck={false} value={props.value}
          onFocus={(e) => e.currentTarget.select()} />
        <Button onClick={copy} aria-describedby={props.id}>{copied ? 'Copied' : 'Copy'}</Button>
      </div>
      <span class="sr-only" role="status">{copied ? 'Copied to the clipboard' : ''}</span>
    </div>
  );
}

/** A delete button that asks for confirmation inline before calling `onConfirm`. */
export function ConfirmButton(props: { label: string; confirmLabel: string; question: string; onConfirm: () => Promise<unknown>; busyLabel?: string }) {
  const [asking, setAsking] = useState(false);
  const action = useAction();
  const cancel = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) cancel.current?.focus();
  }, [asking]);
  if (!asking) return <Button variant="danger" onClick={() => setAsking(true)}>{props.label}</Button>;
  return (
    <span class="confirm" role="group" aria-label={props.question}>
      <span class="confirm-q">{props.question}</span>
      <Button variant="danger" busy={action.busy} busyLabel={props.busyLabel ?? 'Working…'}
        onClick={async () => {
          if (await action.run(props.onConfirm)) setAsking(false);
        }}>
        {props.confirmLabel}
      </Button>
      <button type="button" class="btn plain" ref={cancel} onClick={() => setAsking(false)} disabled={action.busy}>Cancel</button>
      {action.error && <Notice kind="error">{action.error}</Notice>}
    </span>
  );
}

/** Splits a comma- or space-separated list of roles or names. */
const editRowId = (name: string) => `edit-${name.replace(/[^\w-]/g, '_')}`;

/** The Edit/Close button of an admin table row; it controls the EditRow of the same name. */
export function EditToggle(props: { name: string; open: boolean; onToggle: () => void }) {
  return (
    <Button onClick={props.onToggle} aria-expanded={props.open} aria-controls={editRowId(props.name)} aria-label={`Edit ${props.name}`}>
      {props.open ? 'Close' : 'Edit'}
    </Button>
  );
}

/** The row an EditToggle opens below its table row. */
export function EditRow(props: { name: string; colSpan: number; children: ComponentChildren }) {
  return (
    <tr class="edit-row">
      <td colSpan={props.colSpan} id={editRowId(props.name)}>{props.children}</td>
    </tr>
  );
}

export function parseList(s: string): string[] {
  return [...new Set(s.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean))];
}

/** Renders roles as small badges. */
export function Roles(props: { roles: string[] }) {
  if (!props.roles.length) return <span class="muted">none</span>;
  return (
    <span class="roles">
      {props.roles.map((r) => <span class="badge" key={r}>{r}</span>)}
    </span>
  );
}

/** "3 minutes ago" style relative time, with the exact time as a tooltip. */
export function Time(props: { at: string | null | undefined }) {
  if (!props.at) return <span class="muted">never</span>;
  const d = new Date(props.at);
  if (Number.isNaN(d.getTime())) return <span>{props.at}</span>;
  return <time dateTime={d.toISOString()} title={d.toLocaleString()}>{relative(d)}</time>;
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
function relative(d: Date): string {
  const s = Math.round((d.getTime() - Date.now()) / 1000);
  const abs = Math.abs(s);
  if (abs < 45) return s > 0 ? 'in a moment' : 'just now';
  if (abs < 3600) return rtf.format(Math.round(s / 60), 'minute');
  if (abs < 86400) return rtf.format(Math.round(s / 3600), 'hour');
  if (abs < 86400 * 30) return rtf.format(Math.round(s / 86400), 'day');
  return d.toLocaleDateString();
}

/** Shows a load error, unless it is the "feature missing" case that the caller handles. */
export function LoadError(props: { error: unknown; retry?: () => void }) {
  if (!props.error) return null;
  return (
    <Notice kind="error">
      {errorText(props.error)}{' '}
      {props.retry && <button type="button" class="btn plain small" onClick={props.retry}>Retry</button>}
    </Notice>
  );
}

/**
 * Focuses the element when it appears. The `autofocus` attribute only works on page load,
 * not for a form shown later, so forms opened by a button use this.
 */
export function useAutoFocus<T extends HTMLElement>() {
  const ref = useRef<T>(null);
  useEffect(() => ref.current?.focus(), []);
  return ref;
}
