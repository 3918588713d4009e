import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Ending a terminal session means ending every process it started, not just the shell.
 * The shell runs as the leader of its own session (node-pty and `detached: true` both
 * call setsid), so its session id is its pid. Signalling the process group alone misses
 * job-control jobs (an interactive shell puts `sleep 1000 &` in a group of its own), so
 * on Linux every process whose session id is the leader's is found in /proc too.
 * Processes that left the session themselves (setsid, daemons) are out of reach, as
 * they are for sshd.
 */

const POLL_MS = 25;
/** /proc entries read between yields to the event loop (~10 µs each). */
const SCAN_BATCH = 256;

function procStat(pid: number | string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
}

/** "pid (comm) state ppid pgrp session ..."; comm may hold spaces and parentheses. */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/**
 * Live processes (zombies are already dead) whose session id is `sid`. Synchronous
 * reads of /proc are several times cheaper than async ones (no thread-pool hop per
 * file); yielding every batch keeps a large process table from stalling other sessions.
 */
async function sessionMembers(sid: number): Promise<number[]> {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const found: number[] = [];
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    if (i % SCAN_BATCH === SCAN_BATCH - 1) await new Promise((r) => setImmediate(r));
    if (name.charCodeAt(0) > 57 || !/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    const stat = procStat(pid);
    if (stat === undefined) continue;
    const fields = statFields(stat);
    if (fields[0] === 'Z' || fields[0] === 'X') continue;
    if (Number(fields[3]) === sid) found.push(pid);
  }
  return found;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = procStat(pid);
  if (stat === undefined) return process.platform !== 'linux';
  const state = statFields(stat)[0];
  return state !== 'Z' && state !== 'X';
}

function send(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone, or not ours.
  }
}

/** Sends `signal` to the process group `sid` and to every other process of session `sid`. */
export async function signalSession(sid: number, signal: NodeJS.Signals): Promise<number[]> {
  if (!Number.isInteger(sid) || sid <= 1 || sid === process.pid) return [];
  send(-sid, signal);
  const members = await sessionMembers(sid);
  for (const pid of members) send(pid, signal);
  return members;
}

/**
 * SIGHUP to the whole session (what a closing terminal means to a shell), then SIGKILL
 * to whatever is left after `graceMs`. Resolves when nothing of the session is left.
 * The process table is scanned twice (at the start and at the end); in between only
 * the processes already found are polled, which is cheap.
 */
export async function terminateSession(sid: number, graceMs: number): Promise<void> {
  if (!Number.isInteger(sid) || sid <= 1 || sid === process.pid) return;
  const known = new Set([sid, ...(await signalSession(sid, 'SIGHUP'))]);
  // A stopped job ignores SIGHUP until it is continued.
  send(-sid, 'SIGCONT');
  for (const pid of known) send(pid, 'SIGCONT');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && [...known].some(isRunning)) await sleep(POLL_MS);
  // Whatever is still there now (including anything forked during the grace period).
  const left = await sessionMembers(sid);
  send(-sid, 'SIGKILL');
  for (const pid of left) send(pid, 'SIGKILL');
  for (const pid of known) if (isRunning(pid)) send(pid, 'SIGKILL');
}
