import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.ts';
import { ConfigError } from '../../src/errors.ts';

function file(text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-config-'));
  const name = path.join(dir, 'portcullis.yaml');
  writeFileSync(name, text);
  return name;
}

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('has defaults that need nothing', () => {
    const config = loadConfig();
    expect(config.listen).toBe('127.0.0.1:8080');
    expect(config.url).toBe('http://127.0.0.1:8080');
    expect(config.database).toBe(`sqlite:${path.resolve('data', 'portcullis.db')}`);
    expect(config.jwt).toMatchObject({ algorithm: 'RS512', ttl: 300 });
    expect(config.security.enabled).toBe(true);
    expect(config.proxy.url).toBeNull();
    expect(Object.isFrozen(config) && Object.isFrozen(config.jwt)).toBe(true);
  });

  it('reads YAML and lets PORTCULLIS_* variables override it', () => {
    const config = loadConfig({
      file: file('listen: 0.0.0.0:9000\nproxy:\n  url: http://app.internal:3000/\njwt:\n  algorithm: ES256\n'),
      env: { PORTCULLIS_LISTEN: '127.0.0.1:9001', PORTCULLIS_SECURITY_ENABLED: 'false', PORTCULLIS_URL: 'https://gw.example.com' },
    });
    expect(config.listen).toBe('127.0.0.1:9001');
    expect(config.port).toBe(9001);
    expect(config.proxy.url).toBe('http://app.internal:3000');
    expect(config.jwt.algorithm).toBe('ES256');
    expect(config.security.enabled).toBe(false);
    expect(config.url).toBe('https://gw.example.com');
  });

  it.each([
    ['listen: nowhere\n', 'listen'],
    ['jwt:\n  algorithm: HS256\n', 'jwt.algorithm'],
    ['jwt:\n  ttl: -5\n', 'jwt.ttl'],
    ['proxy:\n  url: ftp://x\n', 'proxy.url'],
    ['database: mysql://x\n', 'database'],
    ['unknownKey: 1\n', '(root)'],
    ['security:\n  enabled: maybe\n', 'security.enabled'],
    ['sessions:\n  ttl: "long"\n', 'sessions.ttl'],
    ['- a\n- b\n', '(root)'],
    ['a: [\n', '(file)'],
  ])('stops on %j naming the key %s', (yaml, key) => {
    const error = errorOf(() => loadConfig({ file: file(yaml) }));
    expect(error.key).toBe(key);
    expect(error.message).toContain(key);
  });

  it('names the variable when an environment value is bad', () => {
    const error = errorOf(() => loadConfig({ env: { PORTCULLIS_SECURITY_ENABLED: 'perhaps' } }));
    expect(error.key).toBe('security.enabled');
    expect(error.message).toContain('PORTCULLIS_SECURITY_ENABLED');
  });

  it('requires both halves of a configured key pair and readable PEM files', () => {
    expect(errorOf(() => loadConfig({ overrides: { jwt: { privateKey: '-----BEGIN PRIVATE KEY-----\n' } } })).key).toBe('jwt.publicKey');
    expect(errorOf(() => loadConfig({ overrides: { jwt: { privateKey: '/nonexistent.pem', publicKey: '/nonexistent.pem' } } })).key).toBe('jwt.privateKey');
  });

  it('reports a missing file clearly', () => {
    expect(errorOf(() => loadConfig({ file: '/nonexistent/portcullis.yaml' })).message).toMatch(/cannot read/);
  });
});
