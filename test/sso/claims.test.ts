import { describe, expect, it } from 'vitest';
import { claimValue, compileGroupPatterns, domainAllowed, listClaim, safeReturnPath, stringClaim, userNameFrom } from '../../src/sso/claims.ts';
import { loginMessage } from '../../src/sso/errors.ts';
import { normalizeExpiry } from '../../src/sso/tokens.ts';

/** Unit tier: the pure rules behind claim mapping, no I/O. */
describe('claim mapping', () => {
  const claims = {
    sub: 'abc',
    id: 583231,
    realm_access: { roles: ['admin', 'user'] },
    'https://example.com/roles': ['ns-role'],
    'a.b': 'flat',
    a: { c: 1 },
    groups: 'eng, ops,,eng',
    empty: '  ',
  };

  it('follows dotted paths into nested objects, falling back to the flat claim', () => {
    expect(claimValue(claims, 'realm_access.roles')).toEqual(['admin', 'user']);
    expect(claimValue(claims, 'https://example.com/roles')).toEqual(['ns-role']);
    expect(claimValue(claims, 'a.b')).toBe('flat');
    expect(claimValue(claims, 'a.c')).toBe(1);
    expect(claimValue(claims, 'missing.path')).toBeUndefined();
    expect(claimValue(claims, '__proto__')).toBeUndefined();
    expect(claimValue(claims, 'constructor.name')).toBeUndefined();
  });

  it('reads strings and numbers as single claims, ignoring blanks', () => {
    expect(stringClaim(claims, 'id')).toBe('583231');
    expect(stringClaim(claims, 'sub')).toBe('abc');
    expect(stringClaim(claims, 'empty')).toBeUndefined();
    expect(stringClaim(claims, 'realm_access')).toBeUndefined();
  });

  it('splits a string list claim on its separator, trims and de-duplicates; absent is not empty', () => {
    expect(listClaim(claims, 'groups', ',')).toEqual(['eng', 'ops']);
    expect(listClaim(claims, 'realm_access.roles', ',')).toEqual(['admin', 'user']);
    expect(listClaim({ r: 'a;b' }, 'r', ';')).toEqual(['a', 'b']);
    expect(listClaim({ r: 'a b' }, 'r', ',')).toEqual(['a b']);
    expect(listClaim({ r: [] }, 'r', ',')).toEqual([]);
    expect(listClaim(claims, 'nothing', ',')).toBeUndefined();
    expect(listClaim({ r: Array.from({ length: 1000 }, (_, i) => `g${i}`) }, 'r', ',')).toHaveLength(256);
  });

  it('checks email domains case-insensitively, with * for any', () => {
    expect(domainAllowed('a@Example.COM', ['example.com'])).toBe(true);
    expect(domainAllowed('a@sub.example.com', ['example.com'])).toBe(false);
    expect(domainAllowed('a@evil.com', ['example.com'])).toBe(false);
    expect(domainAllowed('a@evil.com', ['*'])).toBe(true);
    expect(domainAllowed('no-at', ['example.com'])).toBe(false);
  });

  it('matches blocked groups by exact name, shell wildcard, or regular expression', () => {
    const blocked = compileGroupPatterns(['admins', 'team-*', 'g?', '^ext-[0-9]+$', 'a.b']);
    expect(blocked('admins')).toBe(true);
    expect(blocked('admins2')).toBe(false);
    expect(blocked('team-red')).toBe(true);
    expect(blocked('the-team-red')).toBe(false);
    expect(blocked('g1')).toBe(true);
    expect(blocked('g12')).toBe(false);
    expect(blocked('ext-42')).toBe(true);
    expect(blocked('ext-4a')).toBe(false);
    // No regex characters: "." is literal, not "any character".
    expect(blocked('a.b')).toBe(true);
    expect(blocked('axb')).toBe(false);
  });

  it('derives a valid user name from a provider user name or email', () => {
    expect(userNameFrom('alice')).toBe('alice');
    expect(userNameFrom('Alice Liddell')).toBe('Alice-Liddell');
    expect(userNameFrom('alice@example.com')).toBe('alice@example.com');
    expect(userNameFrom('__x')).toBe('x');
    expect(userNameFrom('ünïcødé')).toMatch(/^[A-Za-z0-9][A-Za-z0-9_.@+-]*$/);
    expect(userNameFrom('---')).toBeUndefined();
    expect(userNameFrom('x'.repeat(500))!.length).toBe(190);
  });

  it('returns only to same-site relative paths', () => {
    expect(safeReturnPath('/devices?a=1#t')).toBe('/devices?a=1#t');
    expect(safeReturnPath('//evil.example')).toBe('/');
    // Dot segments that normalise to a protocol-relative URL (regression: an open redirect).
    expect(safeReturnPath('/.//evil.example')).toBe('/');
    expect(safeReturnPath('/a/..//evil.example')).toBe('/');
    expect(safeReturnPath('/%2e//evil.example')).toBe('/');
    expect(safeReturnPath('/\\evil.example')).toBe('/');
    expect(safeReturnPath('https://evil.example/')).toBe('/');
    expect(safeReturnPath('/a\nb')).toBe('/');
    expect(safeReturnPath(undefined)).toBe('/');
    expect(safeReturnPath(['/x'])).toBe('/');
  });

  it('makes login messages single-line and capped', () => {
    expect(loginMessage('a\r\nb\u2028c')).toBe('a b c');
    expect(loginMessage('x'.repeat(500))).toHaveLength(200);
  });

  it('normalizes token expiry: expires_at, else expires_in, else one hour', () => {
    expect(normalizeExpiry({ expires_at: 2_000_000_000 }, 0)).toBe(2_000_000_000_000);
    expect(normalizeExpiry({ expires_in: 60 }, 1000)).toBe(61_000);
    expect(normalizeExpiry({}, 1000)).toBe(3_601_000);
    expect(normalizeExpiry({ expires_at: 2_000_000_000, expires_in: 60 }, 0)).toBe(2_000_000_000_000);
  });
});
