/**
 * The browser terminal end to end: a real gateway, a real agent enrolled through the admin
 * page's enrollment command (in-process, with its in-process SSH server and a real PTY),
 * and xterm.js in Chromium. Nothing is mocked.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runAgent, silentLogger, type Agent } from '../../src/agent/index.ts';
import { UI_TEST_TIMEOUT_MS, browserAvailable, launchBrowser, screenshot, type TestBrowser } from './browser.ts';
import { signIn, startUiGateway, type UiGateway } from './fixtures.ts';

/** What the terminal shows, row by row (xterm's DOM renderer). */
async function screenText(page: Page): Promise<string> {
  return page.locator('.xterm-rows').innerText();
}

/** Waits until the terminal's session is open. */
async function connected(page: Page): Promise<void> {
  await page.locator('.term-box[data-state="open"]').waitFor();
}

/**
 * Types a line into the terminal and waits for `pattern` in what it shows. Patterns match
 * the command's output, never its echo (`$((6*7))` echoes as typed, prints 42).
 */
async function run(page: Page, line: string, pattern: RegExp): Promise<RegExpMatchArray> {
  await page.locator('.xterm-helper-textarea').focus();
  await page.keyboard.type(`${line}\n`);
  const deadline = Date.now() + 10_000;
  let shown = '';
  for (;;) {
    shown = await screenText(page);
    const m = pattern.exec(shown);
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`the terminal never showed ${pattern} after "${line}"; it shows:\n${shown.trimEnd()}`);
    await page.waitForTimeout(100);
  }
}

/** `stty size` inside the shell, through a marker that the echoed command line cannot match. */
async function sttySize(page: Page, tag: string): Promise<{ rows: number; cols: number }> {
  const m = await run(page, `echo "${tag}=$(stty size)"`, new RegExp(`${tag}=(\\d+) (\\d+)`));
  return { rows: Number(m[1]), cols: Number(m[2]) };
}

describe.skipIf(!browserAvailable())('browser terminal', { timeout: UI_TEST_TIMEOUT_MS }, () => {
  let gw: UiGateway;
  let b: TestBrowser;
  let agent: Agent | undefined;
  let stateDir: string;
  let enrollToken: string;

  beforeAll(async () => {
    gw = await startUiGateway();
    b = await launchBrowser();
    stateDir = mkdtempSync(path.join(tmpdir(), 'portcullis-ui-agent-'));
  }, UI_TEST_TIMEOUT_MS);

  afterAll(async () => {
    await agent?.stop();
    await b?.close();
    await gw?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  const startAgent = async (token?: string) => {
    agent = await runAgent({
      server: gw.url,
      stateDir,
      ...(token ? { enrollToken: token } : {}),
      hostname: 'ui-test-host',
      logger: silentLogger,
      backoff: { baseMs: 50, capMs: 200 },
    });
  };

  test('an admin enrolls a device with the copied command; it comes online without a reload', async () => {
    const { context, page } = await b.newPage();
    await signIn(page, gw.url, 'admin', gw.adminPassword);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Manage Devices' }).click();
    await page.getByRole('heading', { name: 'Manage devices' }).waitFor();
    await page.getByRole('button', { name: 'New device' }).click();
    await page.getByLabel('Device name').fill('lab-box');
    await page.getByRole('button', { name: /Create and get the enrollment command/ }).click();
    const command = await page.getByLabel('Enrollment command').inputValue();
    expect(command).toMatch(/^npx portcullis agent --server \S+ --enroll \S+$/);
    await screenshot(page, 'admin-devices-enrollment');
    enrollToken = /--enroll (\S+)/.exec(command)![1]!;

    // The device list, left open, follows the agent coming online.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Devices', exact: true }).click();
    const card = page.locator('li.device', { hasText: 'lab-box' });
    await expect(card.innerText()).resolves.toContain('Offline');
    await startAgent(enrollToken);
    await card.getByText('Online').waitFor({ timeout: 15_000 });
    await expect(card.innerText()).resolves.toContain('ui-test-host');
    await screenshot(page, 'devices');
    await context.close();
  });

  test('open the terminal, run a command, and resize the window: stty size follows', async () => {
    const { context, page } = await b.newPage({ width: 1200, height: 800 });
    await signIn(page, gw.url, 'admin', gw.adminPassword);
    await page.getByRole('link', { name: 'Open a terminal on lab-box' }).click();
    await page.getByRole('heading', { name: 'Terminal · lab-box' }).waitFor();
    await connected(page);
    await run(page, 'echo "sum=$((6*7))"', /sum=42/);
    const before = await sttySize(page, 'before');
    expect(before.rows).toBe(await page.locator('.xterm-rows > div').count());
    await screenshot(page, 'terminal');

    await page.setViewportSize({ width: 700, height: 500 });
    await expect.poll(async () => (await sttySize(page, `after${Date.now()}`)).cols, { timeout: 10_000 }).toBeLessThan(before.cols);
    const after = await sttySize(page, 'final');
    expect(after.rows).toBeLessThan(before.rows);
    expect(after.rows).toBe(await page.locator('.xterm-rows > div').count());
    await context.close();
  });

  test('a user whose roles the device does not allow sees neither the device nor its terminal', async () => {
    const made = await fetch(`${gw.url}/api/admin/users`, {
      method: 'POST',
      headers: { authorization: gw.gateway.adminAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'guest', password: 'guest-password-1' }),
    });
    expect(made.status).toBe(201);
    const list = (await (await fetch(`${gw.url}/api/admin/devices`, { headers: { authorization: gw.gateway.adminAuth } })).json()) as Array<{ id: string; name: string }>;
    const id = list.find((d) => d.name === 'lab-box')!.id;

    const { context, page } = await b.newPage();
    await signIn(page, gw.url, 'guest', 'guest-password-1');
    await page.getByText('No devices are available to you yet.').waitFor();
    await page.goto(`${gw.url}/devices/${encodeURIComponent(id)}`);
    await expect(page.getByRole('alert').innerText()).resolves.toContain('you are not allowed to open it');
    await expect(page.locator('.term-box').getAttribute('data-state')).resolves.toBe('closed');
    await expect(page.getByRole('button', { name: /connect/i }).count()).resolves.toBe(0);
    await context.close();
  });

  test('when the shell exits the page says so and reconnect opens a new session', async () => {
    const { context, page } = await b.newPage();
    await signIn(page, gw.url, 'admin', gw.adminPassword);
    await page.getByRole('link', { name: 'Open a terminal on lab-box' }).click();
    await connected(page);
    await run(page, 'echo "first=$$"', /first=(\d+)/);
    await page.keyboard.type('exit 3\n');
    await page.getByText('The session ended (exit code 3).').waitFor();
    await screenshot(page, 'terminal-exited');
    await page.getByRole('button', { name: 'Reconnect' }).click();
    await connected(page);
    await run(page, 'echo "second=$((40+2))"', /second=42/);
    await context.close();
  });

  test('when the device goes offline the terminal says so, and reconnects once it is back', async () => {
    const { context, page } = await b.newPage();
    await signIn(page, gw.url, 'admin', gw.adminPassword);
    await page.getByRole('link', { name: 'Open a terminal on lab-box' }).click();
    await connected(page);
    await run(page, 'echo "alive=$((2+3))"', /alive=5/);
    await agent!.stop();
    agent = undefined;
    await page.locator('.term-status [role="alert"]').waitFor({ timeout: 15_000 });
    await expect(page.locator('.term-status').innerText()).resolves.toMatch(/offline/i);
    // No reconnect offered while the device is away.
    await expect.poll(() => page.getByRole('button', { name: 'Reconnect' }).count(), { timeout: 5_000 }).toBe(0);
    await screenshot(page, 'terminal-device-offline');

    await startAgent();
    await page.getByRole('button', { name: 'Reconnect' }).click({ timeout: 15_000 });
    await connected(page);
    await run(page, 'echo "back=$((3+4))"', /back=7/);
    await context.close();
  });
});
