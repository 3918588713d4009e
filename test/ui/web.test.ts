/**
 * The web UI in a real browser (Chromium through playwright-core) against a real gateway on port 0:
 * sign-in, administration of users and the proxy, and that a non-admin never reaches admin pages.
 * Nothing is mocked; the two upstream apps behind /proxy are plain HTTP servers.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { UI_TEST_TIMEOUT_MS, browserAvailable, launchBrowser, screenshot, type TestBrowser } from './browser.ts';
import { signIn, startUiGateway, type UiGateway } from './fixtures.ts';

/** A plain upstream app that answers every request with its own name. */
async function upstream(name: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(`upstream ${name} saw ${req.url}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe.skipIf(!browserAvailable())('web UI in a real browser', { timeout: UI_TEST_TIMEOUT_MS }, () => {
  let gw: UiGateway;
  let b: TestBrowser;

  beforeAll(async () => {
    gw = await startUiGateway();
    b = await launchBrowser();
  }, UI_TEST_TIMEOUT_MS);

  afterAll(async () => {
    await b?.close();
    await gw?.close();
  });

  test('sign in: a wrong password is refused with a message, the right one lets the admin in', async () => {
    const { context, page } = await b.newPage();
    await page.goto(`${gw.url}/`);
    await page.waitForURL(/\/login$/);
    await page.getByLabel('User name').fill('admin');
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.getByRole('alert').innerText()).resolves.toContain('Wrong user name or password');
    await screenshot(page, 'sign-in-wrong-password');

    await page.getByLabel('Password').fill(gw.adminPassword);
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/');
    const nav = page.getByRole('navigation', { name: 'Main' });
    await expect(nav.getByRole('link', { name: 'Users' }).isVisible()).resolves.toBe(true);
    await expect(nav.getByText('admin', { exact: true }).isVisible()).resolves.toBe(true);
    await screenshot(page, 'home-admin');

    // Signing out returns to the sign-in page and the session is gone.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/login$/);
    const me = await page.request.get(`${gw.url}/api/me`);
    expect(me.status()).toBe(401);
    await context.close();
  });

  test('an admin creates a user, who signs in and never sees the admin pages', async () => {
    const admin = await b.newPage();
    await signIn(admin.page, gw.url, 'admin', gw.adminPassword);
    await admin.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' }).click();
    await admin.page.getByRole('heading', { name: 'Users' }).waitFor();
    await admin.page.getByRole('button', { name: 'New user' }).click();
    await admin.page.getByLabel('User name').fill('alice');
    await admin.page.getByLabel('Password', { exact: true }).fill('alice-password-1');
    await admin.page.getByLabel('Roles').fill('ROLE_WONDERLAND');
    await admin.page.getByRole('button', { name: 'Create user' }).click();
    await admin.page.getByText('User alice created.').waitFor();
    const row = admin.page.locator('tr[data-user="alice"]');
    await expect(row.innerText()).resolves.toContain('ROLE_WONDERLAND');
    await screenshot(admin.page, 'admin-users');

    const alice = await b.newPage();
    await signIn(alice.page, gw.url, 'alice', 'alice-password-1');
    const nav = alice.page.getByRole('navigation', { name: 'Main' });
    await expect(nav.getByText('alice', { exact: true }).isVisible()).resolves.toBe(true);
    await expect(nav.getByRole('link', { name: 'Users' }).count()).resolves.toBe(0);
    await expect(alice.page.getByText('Admin', { exact: true }).count()).resolves.toBe(0);
    await screenshot(alice.page, 'home-user');

    // Following a link to an admin page leads nowhere, and the API refuses anyway.
    for (const path of ['/admin/users', '/admin/proxy', '/admin']) {
      await alice.page.evaluate(`history.pushState(null, '', ${JSON.stringify(path)}); dispatchEvent(new PopStateEvent('popstate'))`);
      await alice.page.getByRole('heading', { name: 'Page not found' }).waitFor();
      await expect(alice.page.getByRole('button', { name: 'New user' }).count()).resolves.toBe(0);
    }
    await screenshot(alice.page, 'non-admin-admin-page');
    const api = await alice.page.request.get(`${gw.url}/api/admin/users`);
    expect(api.status()).toBe(403);

    // The admin resets alice's password; the old one stops working.
    await row.getByRole('button', { name: 'Edit alice' }).click();
    await admin.page.getByLabel('New password for alice').fill('alice-password-2');
    await admin.page.getByRole('button', { name: 'Set password' }).click();
    await admin.page.getByText('Password of alice changed.').waitFor();
    const bob = await b.newPage();
    await bob.page.goto(`${gw.url}/`);
    await bob.page.getByLabel('User name').fill('alice');
    await bob.page.getByLabel('Password').fill('alice-password-1');
    await bob.page.getByRole('button', { name: 'Sign in' }).click();
    await bob.page.getByText('Wrong user name or password.').waitFor();
    await bob.page.getByLabel('Password').fill('alice-password-2');
    await bob.page.getByRole('button', { name: 'Sign in' }).click();
    await bob.page.getByRole('button', { name: 'Sign out' }).waitFor();

    // Deleting alice ends her sessions: her next action lands on the sign-in page.
    await admin.page.getByRole('button', { name: 'Delete user' }).click();
    await admin.page.getByRole('button', { name: 'Delete alice' }).click();
    await admin.page.getByText('User alice deleted.').waitFor();
    await admin.page.locator('tr[data-user="alice"]').waitFor({ state: 'detached' });

    await Promise.all([admin.context.close(), alice.context.close(), bob.context.close()]);
  });

  test('changing the proxy URL in the admin page changes where /proxy goes', async () => {
    const one = await upstream('one');
    const two = await upstream('two');
    try {
      const { context, page } = await b.newPage();
      await signIn(page, gw.url, 'admin', gw.adminPassword);
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Proxy' }).click();
      await page.getByRole('heading', { name: 'Proxy' }).waitFor();

      await page.getByLabel('Target URL').fill(one.url);
      await page.getByRole('button', { name: 'Save' }).click();
      await page.getByText(`Currently forwarding to ${one.url}`).waitFor();
      let res = await page.request.get(`${gw.url}/proxy/hello?x=1`);
      expect(res.status()).toBe(200);
      expect(await res.text()).toBe('upstream one saw /hello?x=1');

      await page.getByLabel('Target URL').fill(two.url);
      await page.getByRole('button', { name: 'Save' }).click();
      await page.getByText(`Currently forwarding to ${two.url}`).waitFor();
      await screenshot(page, 'admin-proxy');
      const tab = await context.newPage();
      await tab.goto(`${gw.url}/proxy/hello`);
      await expect(tab.locator('body').innerText()).resolves.toBe('upstream two saw /hello');
      await tab.close();

      await page.getByRole('button', { name: 'Disable the proxy' }).click();
      await page.getByText('The proxy is disabled.', { exact: true }).first().waitFor();
      res = await page.request.get(`${gw.url}/proxy/hello`);
      expect(res.status()).toBe(501);
      expect(await res.text()).toBe('The proxy is disabled.');
      await context.close();
    } finally {
      await one.close();
      await two.close();
    }
  });

  test('my sessions: end another browser\'s session, then sign out everywhere', async () => {
    const here = await b.newPage();
    const there = await b.newPage();
    await signIn(here.page, gw.url, 'admin', gw.adminPassword);
    await signIn(there.page, gw.url, 'admin', gw.adminPassword);
    await here.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'My sessions' }).click();
    await here.page.getByRole('heading', { name: 'My sessions' }).waitFor();
    const rows = here.page.locator('tbody tr');
    await rows.first().waitFor();
    await expect(rows.count()).resolves.toBeGreaterThanOrEqual(2);
    await expect(rows.first().innerText()).resolves.toContain('This browser');
    await screenshot(here.page, 'my-sessions');

    // End the other browser's session (older sessions of earlier tests are listed too).
    const theirs = (await (await there.page.request.get(`${gw.url}/api/me/sessions`)).json()) as Array<{ id: string; current: boolean }>;
    const otherId = theirs.find((x) => x.current)!.id;
    const other = here.page.locator(`tbody tr[data-session="${otherId}"]`);
    const before = await rows.count();
    await other.getByRole('button', { name: 'Sign out' }).click();
    await here.page.getByRole('button', { name: 'End session' }).click();
    await expect.poll(() => rows.count()).toBe(before - 1);
    // The other browser finds itself signed out at its next request.
    await there.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'My sessions' }).click();
    await there.page.waitForURL(/\/login/);

    await here.page.getByRole('button', { name: 'Sign out everywhere' }).click();
    await here.page.getByRole('button', { name: 'Yes, sign out everywhere' }).click();
    await here.page.waitForURL(/\/login$/);
    expect((await here.page.request.get(`${gw.url}/api/me`)).status()).toBe(401);
    await Promise.all([here.context.close(), there.context.close()]);
  });

  test('groups: members receive the group\'s roles', async () => {
    const { context, page } = await b.newPage();
    const made = await page.request.post(`${gw.url}/api/admin/users`, {
      headers: { authorization: gw.gateway.adminAuth },
      data: { name: 'dave', password: 'dave-password-1' },
    });
    expect(made.status()).toBe(201);
    await signIn(page, gw.url, 'admin', gw.adminPassword);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Groups' }).click();
    await page.getByRole('button', { name: 'New group' }).click();
    await page.getByLabel('Group name').fill('operators');
    await page.getByLabel('Roles').fill('ROLE_OPS');
    await page.getByLabel('Members').fill('dave');
    await page.getByRole('button', { name: 'Create group' }).click();
    await page.getByText('Group operators created.').waitFor();
    await expect(page.locator('tr[data-group="operators"]').innerText()).resolves.toContain('dave');
    await screenshot(page, 'admin-groups');
    const me = await page.request.get(`${gw.url}/api/me`, {
      headers: { authorization: `Basic ${Buffer.from('dave:dave-password-1').toString('base64')}` },
    });
    expect((await me.json()).roles).toContain('ROLE_OPS');
    await context.close();
  });

  test('keyboard only: sign in, skip to content, open a page and create a user', async () => {
    const { context, page } = await b.newPage();
    const focusedText = () => page.evaluate('document.activeElement && (document.activeElement.getAttribute("aria-label") || document.activeElement.textContent || document.activeElement.id)');
    await page.goto(`${gw.url}/`);
    await page.waitForURL(/\/login$/);
    // The user name field has focus on arrival.
    await page.keyboard.type('admin');
    await page.keyboard.press('Tab');
    await page.keyboard.type(gw.adminPassword);
    await page.keyboard.press('Enter');
    await page.locator('nav#site-nav').waitFor({ state: 'attached' });

    // Signed in, focus lands on the start page's heading.
    await expect.poll(() => page.evaluate('document.activeElement.tagName')).toBe('H1');

    // On a fresh page load the first Tab reaches the skip link, which moves focus past the navigation.
    await page.reload();
    await page.locator('nav#site-nav').waitFor({ state: 'attached' });
    await page.keyboard.press('Tab');
    await expect(focusedText()).resolves.toBe('Skip to content');
    await page.keyboard.press('Enter');
    await expect(page.evaluate('document.activeElement.id')).resolves.toBe('main');

    // A navigation link opened with Enter puts focus on the new page's heading.
    await page.getByRole('link', { name: 'Users', exact: true }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Users' }).waitFor();
    await expect.poll(() => page.evaluate('document.activeElement.tagName')).toBe('H1');
    await page.keyboard.press('Tab');
    await expect(focusedText()).resolves.toBe('New user');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.evaluate('document.activeElement.id')).toBe('new-user-name');
    await page.keyboard.type('kim');
    await page.keyboard.press('Tab');
    await page.keyboard.type('kim-password-1');
    await page.keyboard.press('Tab');
    await page.keyboard.type('ROLE_OPS');
    await page.keyboard.press('Enter');
    await page.getByText('User kim created.').waitFor();
    await context.close();
  });

  test('phone width: the menu folds behind a button and the pages stay readable', async () => {
    const { context, page } = await b.newPage({ width: 390, height: 844 });
    await signIn(page, gw.url, 'admin', gw.adminPassword);
    const menu = page.getByRole('button', { name: 'Menu' });
    await expect(menu.isVisible()).resolves.toBe(true);
    await expect(page.locator('nav#site-nav').isVisible()).resolves.toBe(false);
    await menu.click();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' }).click();
    await page.getByRole('heading', { name: 'Users' }).waitFor();
    // Nothing overflows sideways.
    const overflow = await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth');
    expect(overflow).toBe(0);
    await screenshot(page, 'phone-users');
    await context.close();
  });
});
