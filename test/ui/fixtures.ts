/**
 * The real gateway for the browser tests, serving the built UI from web/dist.
 * The UI is rebuilt first when its sources are newer than the build, so a test never
 * drives a stale bundle.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Page } from 'playwright-core';
import { ADMIN_PASSWORD, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const WEB = path.join(ROOT, 'web');
const BUILT = path.join(WEB, 'dist', 'index.html');
/** How long to wait for another test file's build of the UI. */
const BUILD_LOCK_WAIT_MS = 60_000;

export interface UiGateway {
  url: string;
  adminPassword: string;
  gateway: TestGateway;
  close(): Promise<void>;
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'dist' || entry.name === 'node_modules') continue;
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

function uiIsFresh(): boolean {
  return existsSync(BUILT) && statSync(BUILT).mtimeMs >= newestMtime(WEB);
}

/** Builds web/dist if missing or stale; one test file builds while the others wait. */
export async function ensureUiBuilt(): Promise<void> {
  if (uiIsFresh()) return;
  const lock = path.join(ROOT, 'test-artifacts', '.ui-build.lock');
  mkdirSync(path.dirname(lock), { recursive: true });
  const deadline = Date.now() + BUILD_LOCK_WAIT_MS;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (Date.now() > deadline) rmSync(lock, { recursive: true, force: true });
      await sleep(200);
    }
  }
  try {
    if (uiIsFresh()) return;
    // process.execPath is the project's pinned Node under the test runner.
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'web/vite.config.ts', '--logLevel', 'warn'], {
      cwd: ROOT,
      stdio: 'inherit',
    });
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Starts a real gateway (SQLite in a temporary directory, port 0) with the built UI. */
export async function startUiGateway(): Promise<UiGateway> {
  await ensureUiBuilt();
  const gateway = await startTestGateway();
  return {
    url: gateway.url,
    adminPassword: ADMIN_PASSWORD,
    gateway,
    close: () => gateway.close(),
  };
}

/** Opens the start page, signs in through the form it leads to, and waits for the signed-in shell. */
export async function signIn(page: Page, base: string, name: string, password: string): Promise<void> {
  await page.goto(`${base}/`);
  await page.waitForURL(/\/login$/);
  await page.getByLabel('User name').fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => url.pathname !== '/login');
  // The navigation exists once signed in (folded behind "Menu" at phone width).
  await page.locator('nav#site-nav').waitFor({ state: 'attached' });
}
