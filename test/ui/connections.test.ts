/**
 * Connections in a real browser against a real gateway: an admin adds an MCP server behind
 * its own OAuth authorization server from the admin page; a user authorizes it from the
 * connections page and comes back to it authorized. The MCP server and its authorization
 * server are the connections suite's real in-process fixtures.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AuthServer } from '../connections/fixtures/auth-server.ts';
import { ResourceServer } from '../connections/fixtures/mcp-server.ts';
import { UI_TEST_TIMEOUT_MS, browserAvailable, launchBrowser, screenshot, type TestBrowser } from './browser.ts';
import { signIn, startUiGateway, type UiGateway } from './fixtures.ts';

describe.skipIf(!browserAvailable())('connections in a real browser', { timeout: UI_TEST_TIMEOUT_MS }, () => {
  let gw: UiGateway;
  let b: TestBrowser;
  let as: AuthServer;
  let resource: ResourceServer;

  beforeAll(async () => {
    as = new AuthServer();
    await as.listen();
    resource = new ResourceServer(as);
    await resource.listen();
    gw = await startUiGateway();
    b = await launchBrowser();
    const made = await fetch(`${gw.url}/api/admin/users`, {
      method: 'POST',
      headers: { authorization: gw.gateway.adminAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'erin', password: 'erin-password-1' }),
    });
    expect(made.status).toBe(201);
  }, UI_TEST_TIMEOUT_MS);

  afterAll(async () => {
    await b?.close();
    await gw?.close();
    await resource?.close();
    await as?.close();
  });

  test('an admin adds an OAuth connection; a user authorizes it and comes back authorized', async () => {
    const admin = await b.newPage();
    await signIn(admin.page, gw.url, 'admin', gw.adminPassword);
    await admin.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Manage Connections' }).click();
    await admin.page.getByRole('heading', { name: 'Manage connections' }).waitFor();
    await admin.page.getByRole('button', { name: 'New connection' }).click();
    await admin.page.getByLabel('Name', { exact: true }).fill('tools');
    await admin.page.getByLabel('Server URL').fill(resource.url);
    await admin.page.getByLabel('Authentication').selectOption('oauth2.1');
    await admin.page.getByRole('button', { name: 'Create connection' }).click();
    await admin.page.getByText('Connection tools created.').waitFor();
    const row = admin.page.locator('tr[data-connection="tools"]');
    await expect(row.innerText()).resolves.toContain(`via ${as.issuer}`);
    await row.getByRole('button', { name: 'Edit tools' }).click();
    await expect(admin.page.getByLabel(/Redirect URI/).inputValue()).resolves.toBe(`${gw.url}/api/connections/tools/callback`);
    await screenshot(admin.page, 'admin-connections');
    await admin.context.close();

    const user = await b.newPage();
    // Signed in at the authorization server already: it consents at once.
    await user.context.addCookies([{ name: 'as_user', value: 'erin', url: as.origin }]);
    await signIn(user.page, gw.url, 'erin', 'erin-password-1');
    await user.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Connections', exact: true }).click();
    const card = user.page.locator('li[data-connection="tools"]');
    await expect(card.innerText()).resolves.toContain('Not authorized');
    await card.getByRole('link', { name: 'Authorize tools' }).click();
    await user.page.waitForURL(`${gw.url}/account/connections`);
    await card.getByText('Authorized', { exact: true }).waitFor();
    await expect(card.getByRole('link', { name: 'Re-authorize tools' }).isVisible()).resolves.toBe(true);
    await screenshot(user.page, 'connections');

    // Forgetting the authorization takes the user back to "Not authorized".
    await card.getByRole('button', { name: 'Forget' }).click();
    await user.page.getByRole('button', { name: 'Forget it' }).click();
    await card.getByText('Not authorized').waitFor();
    await user.context.close();
  });
});
