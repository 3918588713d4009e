import '@xterm/xterm/css/xterm.css';
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, get, type Device } from '../api.ts';
import { Button, Notice, Page } from '../ui.tsx';
import { DEVICE_POLL_MS, Status } from './home.tsx';

/** Most input kept while a session is connecting (bytes). */
const MAX_PENDING_INPUT = 4096;

type Conn =
  | { state: 'connecting' }
  | { state: 'open' }
  | { state: 'closed'; kind: 'exit' | 'error' | 'info'; message: string };

/** Control messages the gateway sends as text frames (binary frames are terminal bytes). */
type Control = { type: 'exit'; code: number } | { type: 'error'; message: string };

function parseControl(text: string): Control | null {
  try {
    const m: unknown = JSON.parse(text);
    if (!m || typeof m !== 'object') return null;
    const o = m as Record<string, unknown>;
    if (o.type === 'exit' && typeof o.code === 'number') return { type: 'exit', code: o.code };
    if (o.type === 'error') return { type: 'error', message: typeof o.message === 'string' ? o.message : 'The session failed.' };
  } catch {
    // Ignore a malformed control frame rather than breaking the terminal.
  }
  return null;
}

function terminalUrl(id: string) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/api/devices/${encodeURIComponent(id)}/terminal`;
}

/** The browser terminal for one device: xterm.js over the gateway's terminal WebSocket. */
export function TerminalPage(props: { id?: string }) {
  const id = props.id ?? '';
  const [device, setDevice] = useState<Device | null | undefined>(undefined);
  const [conn, setConn] = useState<Conn>({ state: 'connecting' });
  const [attempt, setAttempt] = useState(0);
  const box = useRef<HTMLDivElement>(null);
  const termRef = useRef<{ term: Terminal; fit: FitAddon } | null>(null);
  const wsRef = useRef<WebSocket | null>(null);
  const wasOnline = useRef<boolean | null>(null);
  /** Re-reads the device's state at once (after a session ends, it may have gone offline). */
  const pollNow = useRef<() => void>(() => undefined);
  // Keys typed while the session is still connecting, sent once it opens (bounded).
  const pending = useRef<Uint8Array<ArrayBuffer>[]>([]);
  const queueInput = (data: Uint8Array<ArrayBuffer>) => {
    const size = pending.current.reduce((n, c) => n + c.length, 0);
    if (size + data.length <= MAX_PENDING_INPUT) pending.current.push(data);
  };

  // Follow the device's online state (the list is the caller's allowed devices).
  useEffect(() => {
    let stop = false;
    const poll = async (background: boolean) => {
      try {
        const list = await get<Device[]>('/api/devices', { background });
        if (!stop) setDevice(list.find((d) => d.id === id) ?? null);
      } catch (e) {
        if (!stop && e instanceof ApiError && e.status === 404) setDevice(null);
      }
    };
    void poll(false);
    pollNow.current = () => void poll(true);
    const t = setInterval(() => document.visibilityState === 'visible' && void poll(true), DEVICE_POLL_MS);
    return () => {
      stop = true;
      pollNow.current = () => undefined;
      clearInterval(t);
    };
  }, [id]);

  // One xterm for the life of the page; reconnecting reuses it.
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const term = new Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      scrollback: 5000,
      theme: { background: '#0d1117', foreground: '#e6edf3', cursor: '#e6edf3' },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el);
    // The shell gets every key, Tab included; Shift+Esc hands focus back to the page.
    term.attachCustomKeyEventHandler((ev) => {
      if (ev.type === 'keydown' && ev.key === 'Escape' && ev.shiftKey) {
        term.blur();
        document.getElementById('page-title')?.focus();
        return false;
      }
      return true;
    });
    termRef.current = { term, fit };
    let frame = 0;
    const refit = () => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(() => {
        try {
          fit.fit();
        } catch {
          // Not laid out yet (hidden): the next resize fits it.
        }
      });
    };
    refit();
    const ro = new ResizeObserver(refit);
    ro.observe(el);
    window.addEventListener('resize', refit);
    const encoder = new TextEncoder();
    const send = (data: Uint8Array<ArrayBuffer> | string) => {
      const ws = wsRef.current;
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(data);
      else if (ws && ws.readyState === WebSocket.CONNECTING && typeof data !== 'string') queueInput(data);
    };
    const subs = [
      term.onData((d) => send(encoder.encode(d))),
      // Binary input (some mouse reports) is one byte per char.
      term.onBinary((d) => send(Uint8Array.from(d, (c) => c.charCodeAt(0) & 0xff))),
      term.onResize(({ cols, rows }) => send(JSON.stringify({ type: 'resize', cols, rows }))),
    ];
    return () => {
      cancelAnimationFrame(frame);
      ro.disconnect();
      window.removeEventListener('resize', refit);
      for (const s of subs) s.dispose();
      term.dispose();
      termRef.current = null;
    };
  }, []);

  const deviceKnown = device !== undefined;
  const deviceOnline = !!device?.online;

  // Open the WebSocket once we know the device may be opened and is online; again on reconnect.
  useEffect(() => {
    const t = termRef.current;
    if (!t || !deviceKnown) return;
    if (device === null) {
      setConn({ state: 'closed', kind: 'error', message: 'This device does not exist, or you are not allowed to open it.' });
      return;
    }
    if (!deviceOnline && attempt === 0) {
      setConn({ state: 'closed', kind: 'info', message: 'The device is offline: its agent is not connected to the gateway.' });
      return;
    }
    let ended: Conn | null = null;
    setConn({ state: 'connecting' });
    pending.current = [];
    const ws = new WebSocket(terminalUrl(id));
    ws.binaryType = 'arraybuffer';
    wsRef.current = ws;
    ws.onopen = () => {
      setConn({ state: 'open' });
      t.term.reset();
      try {
        t.fit.fit();
      } catch {
        // Layout not ready; the ResizeObserver will fit and send the size.
      }
      ws.send(JSON.stringify({ type: 'resize', cols: t.term.cols, rows: t.term.rows }));
      for (const chunk of pending.current.splice(0)) ws.send(chunk);
      t.term.focus();
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') {
        const c = parseControl(ev.data);
        if (c?.type === 'exit') ended = { state: 'closed', kind: 'exit', message: `The session ended (exit code ${c.code}).` };
        else if (c?.type === 'error') ended = { state: 'closed', kind: 'error', message: c.message };
        if (ended) {
          setConn(ended);
          pollNow.current();
        }
      } else {
        t.term.write(new Uint8Array(ev.data as ArrayBuffer));
      }
    };
    ws.onclose = (ev) => {
      if (wsRef.current !== ws) return;
      wsRef.current = null;
      pollNow.current();
      if (ended) return;
      // The upgrade was refused or the link dropped: work out why from the API.
      void explainClose(id, ev).then((message) =>
        setConn((c) => (c.state === 'closed' ? c : { state: 'closed', kind: 'error', message })),
      );
    };
    return () => {
      if (wsRef.current === ws) wsRef.current = null;
      ws.onclose = null;
      ws.close(1000, 'page closed');
    };
    // deviceOnline is deliberately not a dependency: going offline must not reconnect by itself.
  }, [id, attempt, deviceKnown, device === null]);

  // A live session whose device drops out of the list or goes offline: say so at once.
  useEffect(() => {
    if (device === undefined) return;
    const online = !!device?.online;
    if (wasOnline.current === true && !online) {
      setConn((c) => (c.state === 'closed' ? c : { state: 'closed', kind: 'error', message: 'The device went offline.' }));
      wsRef.current?.close(1000, 'device offline');
    }
    wasOnline.current = online;
  }, [device]);

  const title = device ? `Terminal · ${device.name}` : 'Terminal';
  const closed = conn.state === 'closed';
  const canReconnect = closed && device !== null && deviceOnline;
  return (
    <div class="terminal-page">
      <Page
        title={title}
        actions={
          <>
            {device && <Status online={device.online} />}
            {canReconnect && (
              <Button variant="primary" onClick={() => setAttempt((n) => n + 1)}>
                {conn.kind === 'info' ? 'Connect' : 'Reconnect'}
              </Button>
            )}
            <a class="btn plain" href="/">All devices</a>
          </>
        }
      >
        <div class="term-status" aria-live="polite">
          {conn.state === 'connecting' && <Notice>Connecting…</Notice>}
          {closed && (
            <Notice kind={conn.kind === 'exit' || conn.kind === 'info' ? 'info' : 'error'}>
              {conn.message}
              {!canReconnect && device?.online === false && ' You can reconnect when it is back online.'}
            </Notice>
          )}
        </div>
        <div class={`term-box ${closed ? 'is-closed' : ''}`} ref={box} data-state={conn.state} role="region" aria-label="Terminal" aria-describedby="term-hint" />
        <p id="term-hint" class="muted small term-hint">Every key goes to the shell. <kbd>Shift</kbd>+<kbd>Esc</kbd> leaves the terminal.</p>
      </Page>
    </div>
  );
}

/** Turns an unexplained close into a message, by asking the API what changed. */
async function explainClose(id: string, ev: CloseEvent): Promise<string> {
  if (ev.reason) return ev.reason;
  try {
    const list = await get<Device[]>('/api/devices', { background: true });
    const d = list.find((x) => x.id === id);
    if (!d) return 'You are not allowed to open this device.';
    if (!d.online) return 'The device is offline.';
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return 'Your session has ended. Sign in again.';
  }
  return ev.code === 1000 ? 'The session was closed.' : 'The connection to the device was lost.';
}
