import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ClientMetadata } from 'oidc-provider';
import type { ConfigInput } from '../../../src/config/index.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import type { TestOp } from './op.ts';

type SsoInput = NonNullable<ConfigInput['sso']>;
export type ProviderInput = NonNullable<SsoInput['providers']>[number];

export const secretOf = (id: string) => `secret-of-${id}`;

/**
 * A gateway whose OIDC providers are clients of `op` (same issuer, one client per
 * provider id), registered at the provider once the gateway's URL is known.
 */
export async function gatewayWithOp(
  op: TestOp,
  providers: Array<Partial<ProviderInput> & { id: string }>,
  options: { sso?: Omit<SsoInput, 'providers'>; config?: ConfigInput; now?: () => number; backchannel?: string[] } = {},
): Promise<TestGateway> {
  const list = providers.map((p) => ({ type: 'oidc' as const, issuer: op.issuer, clientId: `client-${p.id}`, clientSecret: secretOf(p.id), ...p })) as ProviderInput[];
  const gw = await startTestGateway({
    config: { ...options.config, sso: { ...options.sso, providers: list } },
    ...(options.now ? { now: options.now } : {}),
  });
  const clients: ClientMetadata[] = list
    .filter((p) => p.type === 'oidc')
    .map((p) => ({
      client_id: p.clientId,
      client_secret: p.clientSecret,
      redirect_uris: [`${gw.url}/auth/sso/${p.id}/callback`],
      post_logout_redirect_uris: [`${gw.url}/`],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: p.tokenEndpointAuthMethod === 'client_secret_post' ? 'client_secret_post' : 'client_secret_basic',
      ...(options.backchannel?.includes(p.id) ? { backchannel_logout_uri: `${gw.url}/auth/sso/backchannel-logout`, backchannel_logout_session_required: true } : {}),
    }));
  await op.setClients(clients);
  return gw;
}

/** A tiny HTTP server for tests: images, webhooks, fake APIs. */
export async function startServer(handler: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A 1×1 PNG. */
export const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');

export async function json<T = any>(response: Response): Promise<T> {
  return (await response.json()) as T;
}
