import { readdir, readFile } from 'node:fs/promises';
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

/** Live processes (zombies are already dead) whose session id is `sid`. */
async function sessionMembers(sid: number): Promise<number[]> {
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return [];
  }
  const found: number[] = [];
  await Promise.all(
    entries.map(async (name) => {
      if (!/^\d+$/.test(name)) return;
      const pid = Number(name);
      if (pid === process.pid) return;
      const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => undefined);
      if (stat === undefined) return;
      // "pid (comm) state ppid pgrp session ..."; comm may hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z' || fields[0] === 'X') return;
      if (Number(fields[3]) === sid) found.push(pid);
    }),
  );
  return found;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function isZombie(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'Z' || state === 'X';
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

/** True while any process of session `sid` (or the leader itself) is still running. */
export async function sessionAlive(sid: number): Promise<boolean> {
  if (isAlive(sid) && !(await isZombie(sid))) return true;
  return (await sessionMembers(sid)).length > 0;
}

/**
 * SIGHUP to the whole session (what a closing terminal means to a shell), then SIGKILL
 * to whatever is left after `graceMs`. Resolves when nothing of the session is left.
 */
export async function terminateSession(sid: number, graceMs: number): Promise<void> {
  await signalSession(sid, 'SIGHUP');
  // A stopped job ignores SIGHUP until it is continued.
  await signalSession(sid, 'SIGCONT');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!(await sessionAlive(sid))) return;
    await sleep(POLL_MS);
  }
  await signalSession(sid, 'SIGKILL');
}
