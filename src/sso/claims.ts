/**
 * Pure helpers that turn a provider's claims into gateway decisions. No I/O here, so
 * every rule is unit-tested on its own.
 */

import { USER_NAME, safeReturnPath as safeRelativePath } from '../identity/index.ts';

export type Claims = Readonly<Record<string, unknown>>;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A claim by name: a dotted name is first followed as a path into nested objects
 * (`realm_access.roles`); if that finds nothing, the flat claim of that exact name is
 * used (namespaced claims such as `https://example.com/roles` contain dots).
 */
export function claimValue(claims: Claims, name: string): unknown {
  if (name.includes('.')) {
    let node: unknown = claims;
    for (const part of name.split('.')) {
      if (!isObject(node) || !Object.hasOwn(node, part)) {
        node = undefined;
        break;
      }
      node = node[part];
    }
    if (node !== undefined && node !== null) return node;
  }
  return Object.hasOwn(claims, name) ? claims[name] : undefined;
}

/** A single string claim (numbers become strings, as GitHub's numeric `id`). */
export function stringClaim(claims: Claims, name: string): string | undefined {
  const value = claimValue(claims, name);
  if (typeof value === 'string') return value.trim() === '' ? undefined : value.trim();
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

/** The most entries a roles or groups claim may contribute; the rest is ignored. */
export const MAX_LIST_CLAIM = 256;

/**
 * A list claim (roles, groups): an array of strings, or a string split on `separator`.
 * `undefined` when the claim is absent, which callers distinguish from an empty list.
 */
export function listClaim(claims: Claims, name: string, separator: string): string[] | undefined {
  const value = claimValue(claims, name);
  let items: unknown[];
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) items = value;
  else if (typeof value === 'string') items = value.split(separator);
  else if (typeof value === 'number') items = [String(value)];
  else return undefined;
  const out: string[] = [];
  for (const item of items) {
    const text = typeof item === 'number' ? String(item) : typeof item === 'string' ? item.trim() : '';
    if (text !== '' && text.length <= 200 && !out.includes(text)) out.push(text);
    if (out.length >= MAX_LIST_CLAIM) break;
  }
  return out;
}

/** Whether `email`'s domain is allowed (`*` allows all). Both sides lower-case. */
export function domainAllowed(email: string, allowed: readonly string[]): boolean {
  if (allowed.includes('*')) return true;
  const at = email.lastIndexOf('@');
  if (at < 0) return false;
  const domain = email.slice(at + 1).toLowerCase();
  return allowed.some((d) => d.toLowerCase() === domain);
}

/** Characters that make a blocked-group pattern a regular expression (as the reference implementation decides). */
const REGEX_CHARS = /[\^$[\](){}+\\|]/;

function wildcardToRegExp(pattern: string): RegExp {
  const body = pattern.replace(/[.*+?^${}()|[\]\\]/g, (c) => (c === '*' ? '.*' : c === '?' ? '.' : '\\' + c));
  return new RegExp(`^${body}$`, 's');
}

/**
 * Compiles blocked-group patterns: an exact name; a shell wildcard with `*` and `?`; or,
 * when it holds any of `^ $ [ ] ( ) { } + \ |`, a regular expression searched anywhere
 * in the name (anchor it with `^…$` to match whole names).
 */
export function compileGroupPatterns(patterns: readonly string[]): (group: string) => boolean {
  const exact = new Set<string>();
  const tests: RegExp[] = [];
  for (const pattern of patterns) {
    if (pattern === '') continue;
    exact.add(pattern);
    if (REGEX_CHARS.test(pattern)) tests.push(new RegExp(pattern));
    else if (pattern.includes('*') || pattern.includes('?')) tests.push(wildcardToRegExp(pattern));
  }
  return (group) => exact.has(group) || tests.some((re) => re.test(group));
}


/**
 * A valid gateway user name from a provider's user name (or email): other characters
 * become `-`, leading punctuation is dropped, the length leaves room for a suffix.
 * Returns undefined when nothing usable remains.
 */
export function userNameFrom(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  const cleaned = raw
    .normalize('NFKC')
    .replace(/[^A-Za-z0-9_.@+-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 190)
    .replace(/[-.]+$/, '');
  return USER_NAME.test(cleaned) ? cleaned : undefined;
}

/** Whether a group name from a claim can be a gateway group name. */
export const validGroupName = (name: string) => USER_NAME.test(name);

/**
 * The path to return to after signing in: only a same-origin relative path (`/…`, not
 * `//host` or `/\host`, no control characters), else `/`.
 */
export function safeReturnPath(next: unknown): string {
  return safeRelativePath(next) ?? '/';
}
