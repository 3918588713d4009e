/**
 * Addresses typed or bookmarked in the browser (full page loads of app paths) against a real
 * gateway: they rely on its fallback to index.html for every non-API path.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { UI_TEST_TIMEOUT_MS, browserAvailable, launchBrowser, screenshot, type TestBrowser } from './browser.ts';
import { signIn, startUiGateway, type UiGateway } from './fixtures.ts';

describe.skipIf(!browserAvailable())('deep links in a real browser', { timeout: UI_TEST_TIMEOUT_MS }, () => {
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

  test('a signed-out visitor is sent to sign in, then on to the page they asked for', async () => {
    const { context, page } = await b.newPage();
    await page.goto(`${gw.url}/admin/users`);
    await page.waitForURL(/\/login\?next=%2Fadmin%2Fusers$/);
    await expect(page.title()).resolves.toBe('Sign in · Portcullis');
    await page.getByLabel('User name').fill('admin');
    await page.getByLabel('Password').fill(gw.adminPassword);
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/admin\/users$/);
    await page.getByRole('heading', { name: 'Users' }).waitFor();
    // A reload keeps the page.
    await page.reload();
    await page.getByRole('heading', { name: 'Users' }).waitFor();
    await context.close();
  });

  test('the sign-in page shows the error a failed single sign-on passed back', async () => {
    const { context, page } = await b.newPage();
    await page.goto(`${gw.url}/login?error=${encodeURIComponent('Your e-mail domain is not allowed.')}`);
    await expect(page.getByRole('alert').innerText()).resolves.toContain('Your e-mail domain is not allowed.');
    await screenshot(page, 'sign-in-sso-error');
    await context.close();
  });

  test('a non-admin who types an admin address sees no admin page', async () => {
    const admin = await b.newPage();
    const created = await admin.page.request.post(`${gw.url}/api/admin/users`, {
      headers: { authorization: gw.gateway.adminAuth },
      data: { name: 'carol', password: 'carol-password-1' },
    });
    expect(created.status()).toBe(201);
    await admin.context.close();

    const { context, page } = await b.newPage();
    await signIn(page, gw.url, 'carol', 'carol-password-1');
    for (const path of ['/admin/users', '/admin/groups', '/admin/proxy', '/admin']) {
      await page.goto(`${gw.url}${path}`);
      await page.getByRole('heading', { name: 'Page not found' }).waitFor();
      await expect(page.getByRole('button', { name: /^New / }).count()).resolves.toBe(0);
    }
    await screenshot(page, 'non-admin-admin-page');
    await context.close();
  });
});
