/**
 * Unsecured development mode (`security.enabled: false`) in a real browser: everyone is
 * `anonymousUser` with admin rights, so there is no sign-in, no sign-out and no session list.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { UI_TEST_TIMEOUT_MS, browserAvailable, launchBrowser, type TestBrowser } from './browser.ts';
import { ensureUiBuilt } from './fixtures.ts';

describe.skipIf(!browserAvailable())('unsecured mode in a real browser', { timeout: UI_TEST_TIMEOUT_MS }, () => {
  let gw: TestGateway;
  let b: TestBrowser;

  beforeAll(async () => {
    await ensureUiBuilt();
    gw = await startTestGateway({ config: { security: { enabled: false } } });
    b = await launchBrowser();
  }, UI_TEST_TIMEOUT_MS);

  afterAll(async () => {
    await b?.close();
    await gw?.close();
  });

  test('opens without sign-in, as an administrator, with nothing to sign out of', async () => {
    const { context, page } = await b.newPage();
    await page.goto(`${gw.url}/`);
    const nav = page.getByRole('navigation', { name: 'Main' });
    await nav.waitFor();
    expect(new URL(page.url()).pathname).toBe('/');
    await expect(page.locator('.me-name').innerText()).resolves.toBe('anonymousUser');
    await expect(page.getByRole('button', { name: 'Sign out' }).count()).resolves.toBe(0);
    await expect(nav.getByRole('link', { name: 'My sessions' }).count()).resolves.toBe(0);
    await nav.getByRole('link', { name: 'Users', exact: true }).click();
    await page.getByRole('heading', { name: 'Users' }).waitFor();
    await context.close();
  });
});
