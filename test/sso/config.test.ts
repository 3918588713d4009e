import { describe, expect, it } from 'vitest';
import { loadConfig, type ConfigInput } from '../../src/config/index.ts';

/** Unit tier: operator mistakes in sso configuration stop the start, naming the key. */
describe('sso configuration', () => {
  const load = (sso: ConfigInput['sso']) => loadConfig({ overrides: { sso } });
  const keyOf = (sso: unknown) => {
    try {
      load(sso as ConfigInput['sso']);
      return 'accepted';
    } catch (error) {
      return (error as { key?: string }).key;
    }
  };
  const oidc = { id: 'kc', type: 'oidc', issuer: 'https://kc.example.com/realms/main', clientId: 'portcullis', clientSecret: 's' } as const;

  it('fills defaults', () => {
    const config = load({ providers: [oidc] });
    expect(config.sso.firstUserAdmin).toBe(true);
    expect(config.sso.refreshMargin).toBe(300);
    const p = config.sso.providers[0]!;
    expect(p.signUp).toBe(true);
    expect(p.allowedDomains).toEqual(['*']);
    expect(p.claims).toMatchObject({ email: 'email', roles: 'roles', groups: 'groups', rolesSeparator: ',', groupsSeparator: ',' });
    expect(p.roles.enabled).toBe(false);
    expect(p.maxSessionsPerUser).toBe(10);
  });

  it('keeps an issuer exactly as given (some end with a slash)', () => {
    expect(load({ providers: [{ ...oidc, issuer: 'https://tenant.auth0.example/' }] }).sso.providers[0]!.issuer).toBe('https://tenant.auth0.example/');
  });

  it('names the bad key', () => {
    expect(keyOf({ providers: [{ ...oidc, issuer: undefined }] })).toBe('sso.providers.0.issuer');
    expect(keyOf({ providers: [{ ...oidc, issuer: 'http://kc.example.com' }] })).toBe('sso.providers.0.issuer');
    expect(keyOf({ providers: [{ ...oidc, issuer: 'http://127.0.0.1:8080' }] })).toBe('accepted');
    expect(keyOf({ providers: [{ ...oidc, tokenEndpoint: 'https://x.example/token' }] })).toBe('sso.providers.0.tokenEndpoint');
    expect(keyOf({ providers: [{ ...oidc, typo: 1 }] })).toBe('sso.providers.0');
    expect(keyOf({ providers: [{ ...oidc, authorizeParams: { state: 'x' } }] })).toBe('sso.providers.0.authorizeParams');
    expect(keyOf({ providers: [{ ...oidc, groups: { blocked: ['(unclosed'] } }] })).toBe('sso.providers.0.groups.blocked.0');
    expect(keyOf({ providers: [{ ...oidc, roles: { enabled: true } }] })).toBe('sso.providers.0.roles');
    expect(keyOf({ providers: [oidc, { ...oidc }] })).toBe('sso.providers.1.id');
    expect(keyOf({ providers: [{ id: 'gen', type: 'oauth2', clientId: 'c', authorizationEndpoint: 'https://x.example/a', tokenEndpoint: 'https://x.example/t' }] })).toBe(
      'sso.providers.0.userinfoEndpoint',
    );
    expect(keyOf({ providers: [{ id: 'gh', type: 'github', clientId: 'c', issuer: 'https://github.com' }] })).toBe('sso.providers.0.issuer');
    expect(keyOf({ providers: [{ ...oidc, clientSecret: undefined, tokenEndpointAuthMethod: 'client_secret_basic' }] })).toBe('sso.providers.0.clientSecret');
    expect(keyOf({ providers: [], unknown: true })).toBe('sso');
  });
});
