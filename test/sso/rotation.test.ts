import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestGateway } from '../helpers/gateway.ts';
import { Browser, signIn } from './helpers/browser.ts';
import { startOp, type TestOp } from './helpers/op.ts';
import { gatewayWithOp, json } from './helpers/setup.ts';

/** The provider rotates its signing key between two logins; the gateway refetches its JWKS once and carries on. */
describe('provider key rotation', () => {
  let op: TestOp;
  let gw: TestGateway;

  beforeAll(async () => {
    op = await startOp();
    op.accounts.set('alice', { email: 'alice@example.com', email_verified: true, preferred_username: 'alice' });
    op.accounts.set('bob', { email: 'bob@example.com', email_verified: true, preferred_username: 'bob' });
    gw = await gatewayWithOp(op, [{ id: 'op' }, { id: 'op2' }]);
  });
  afterAll(async () => {
    await gw?.close();
    await op?.close();
  });

  const whoAmI = async (b: Browser) => (await json(await b.fetch(`${gw.url}/api/me`))).name;

  it('accepts an ID token signed with a new key id', async () => {
    const first = new Browser();
    expect((await signIn(first, gw.url, 'op', 'alice')).status).toBe(302);
    await op.rotateKey();
    const second = new Browser();
    const outcome = await signIn(second, gw.url, 'op', 'alice');
    expect(outcome.status).toBe(302);
    expect(await whoAmI(second)).toBe('alice');
  });

  it('accepts an ID token whose key changed under the same key id (the signature fails first)', async () => {
    const first = new Browser();
    expect((await signIn(first, gw.url, 'op2', 'bob')).status).toBe(302);
    await op.rotateKey({ sameKid: true });
    const second = new Browser();
    expect((await signIn(second, gw.url, 'op2', 'bob')).status).toBe(302);
    expect(await whoAmI(second)).toBe('bob');
  });
});
