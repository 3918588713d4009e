/**
 * Real-browser tests: playwright-core driving the system's Chromium (Debian package `chromium`).
 * No browser is ever downloaded. Without Chromium the UI tests are skipped with a loud warning,
 * except in CI (`CI=true`), where a missing browser fails the run.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** Where Debian's `chromium` package installs the browser. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Screenshots of every UI test land here (gitignored; CI keeps it as an artifact). */
export const ARTIFACTS_DIR = path.resolve(import.meta.dirname, '../../test-artifacts');

/** Generous per-test time limit: a browser launch plus a few page loads. */
export const UI_TEST_TIMEOUT_MS = 60_000;

let warned = false;

/**
 * True when a browser is available. Throws in CI when it is missing, so a missing install step
 * fails the run instead of silently skipping every browser test.
 */
export function browserAvailable(): boolean {
  if (existsSync(CHROMIUM_PATH)) return true;
  if (process.env.CI === 'true') {
    throw new Error(`UI tests need Chromium at ${CHROMIUM_PATH} (apt-get install -y chromium); CI must install it.`);
  }
  if (!warned) {
    warned = true;
    const bar = '!'.repeat(78);
    console.warn(`\n${bar}\n!! SKIPPING THE WEB UI TESTS: no Chromium at ${CHROMIUM_PATH}.\n!! Install it with: apt-get install -y chromium\n${bar}\n`);
  }
  return false;
}

export interface TestBrowser {
  browser: Browser;
  /** A fresh context (own cookies) with a page, for one user. */
  newPage(opts?: { width?: number; height?: number }): Promise<{ context: BrowserContext; page: Page }>;
  close(): Promise<void>;
}

/**
 * Launches headless Chromium with no background network traffic. Playwright gives every launch a
 * fresh temporary profile and deletes it on close.
 */
export async function launchBrowser(): Promise<TestBrowser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  return {
    browser,
    async newPage(opts = {}) {
      const context = await browser.newContext({
        viewport: { width: opts.width ?? 1280, height: opts.height ?? 800 },
        locale: 'en-GB',
        timezoneId: 'UTC',
      });
      const page = await context.newPage();
      page.setDefaultTimeout(10_000);
      return { context, page };
    },
    async close() {
      await browser.close().catch(() => undefined);
    },
  };
}

/** Saves a full-page screenshot as `test-artifacts/<name>.png` and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const file = path.join(ARTIFACTS_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
