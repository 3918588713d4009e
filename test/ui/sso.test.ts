/**
 * Single sign-on from the sign-in page in a real browser: a real OpenID provider in this
 * process (oidc-provider with its login and consent forms), a real gateway, Chromium.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Page } from 'playwright-core';
import { ADMIN_PASSWORD, type TestGateway } from '../helpers/gateway.ts';
import { startOp, type TestOp } from '../sso/helpers/op.ts';
import { gatewayWithOp } from '../sso/helpers/setup.ts';
import { UI_TEST_TIMEOUT_MS, browserAvailable, launchBrowser, screenshot, type TestBrowser } from './browser.ts';
import { ensureUiBuilt } from './fixtures.ts';

/** The provider's own pages: the dev login form (any password), then consent. */
async function atProvider(page: Page, gatewayOrigin: string, login: string) {
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any');
  await page.locator('button[type="submit"]').click();
  // Consent, unless the provider remembers it.
  const consent = page.locator('form button[type="submit"]');
  await Promise.race([
    page.waitForURL((url) => url.origin === gatewayOrigin),
    consent.waitFor().then(() => consent.click()),
  ]);
  await page.waitForURL((url) => url.origin === gatewayOrigin);
}

describe.skipIf(!browserAvailable())('single sign-on in a real browser', { timeout: UI_TEST_TIMEOUT_MS }, () => {
  let op: TestOp;
  let gw: TestGateway;
  let b: TestBrowser;

  beforeAll(async () => {
    await ensureUiBuilt();
    op = await startOp();
    op.accounts.set('alice', { email: 'alice@example.com', email_verified: true, name: 'Alice Liddell', preferred_username: 'alice' });
    op.accounts.set('dave', { email: 'dave@elsewhere.test', email_verified: true, preferred_username: 'dave' });
    gw = await gatewayWithOp(op, [
      { id: 'op', name: 'Example OP' },
      { id: 'corp', name: 'Corp Login', allowedDomains: ['example.com'] },
    ]);
    b = await launchBrowser();
  }, UI_TEST_TIMEOUT_MS);

  afterAll(async () => {
    await b?.close();
    await gw?.close();
    await op?.close();
  });

  test('the sign-in page has one button per provider, and one of them signs the user in', async () => {
    const { context, page } = await b.newPage();
    await page.goto(`${gw.url}/`);
    await page.waitForURL(/\/login$/);
    const buttons = page.locator('.sso a');
    await expect.poll(() => buttons.allInnerTexts()).toEqual(['Sign in with Example OP', 'Sign in with Corp Login']);
    // The local form is still there for local accounts.
    await expect(page.getByLabel('User name').isVisible()).resolves.toBe(true);
    await screenshot(page, 'sign-in');

    await page.getByRole('link', { name: 'Sign in with Example OP' }).click();
    await atProvider(page, new URL(gw.url).origin, 'alice');
    await page.locator('nav#site-nav').waitFor({ state: 'attached' });
    const me = await (await page.request.get(`${gw.url}/api/me`)).json();
    expect(me.roles).toContain('ROLE_USER');
    await expect(page.locator('.me-name').innerText()).resolves.toBe(me.name);
    await context.close();
  });

  test('a refused single sign-on comes back to the sign-in page with its reason', async () => {
    const { context, page } = await b.newPage();
    await page.goto(`${gw.url}/`);
    await page.getByRole('link', { name: 'Sign in with Corp Login' }).click();
    await atProvider(page, new URL(gw.url).origin, 'dave');
    await page.waitForURL(/\/login\?error=/);
    const alert = page.getByRole('alert');
    await expect(alert.innerText()).resolves.toMatch(/^Single sign-on failed: \S/);
    await screenshot(page, 'sign-in-sso-refused');
    // And the local form still works afterwards.
    await page.getByLabel('User name').fill('admin');
    await page.getByLabel('Password').fill(ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('nav#site-nav').waitFor({ state: 'attached' });
    await context.close();
  });
});
