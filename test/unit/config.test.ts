import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configTemplate } from '../../src/config/first-run.js';
import { applyEnvOverrides, ConfigError, loadConfig, parseByteSize, validateConfig } from '../../src/config/load.js';
import { parse } from 'yaml';
import { tempDir } from '../_util/server.js';

function load(yaml: string, env: NodeJS.ProcessEnv = {}) {
  const dir = tempDir();
  const configPath = join(dir, 'myelin.yaml');
  writeFileSync(configPath, yaml);
  return loadConfig({ dataDir: dir, configPath, env });
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('applies defaults fit for a small board', () => {
    const c = load('server_name: example.org\n');
    expect(c.listeners.client).toEqual({ enabled: true, bind: '0.0.0.0', port: 8008 });
    expect(c.listeners.federation).toEqual({ enabled: true, bind: '0.0.0.0', port: 8448 });
    expect(c.listeners.metrics).toEqual({ enabled: true, bind: '127.0.0.1', port: 9092 });
    expect(c.database.engine).toBe('sqlite');
    expect(c.database.synchronous).toBe('FULL');
    expect(c.database.path).toBe(join(c.data_dir, 'myelin.db'));
    expect(c.registration).toBe('closed');
    expect(c.log_level).toBe('info');
    expect(c.max_request_body).toBe(50 * 1024 * 1024);
    expect(c.public_baseurl).toBe('https://example.org/');
  });

  it('derives a local public_baseurl for localhost and IP literals', () => {
    expect(load('server_name: localhost\n').public_baseurl).toBe('http://localhost:8008/');
    expect(load('server_name: "127.0.0.1:8448"\nlisteners: {client: {port: 9000}}\n').public_baseurl).toBe(
      'http://127.0.0.1:9000/',
    );
  });

  it('names a missing required key', () => {
    const msg = errorOf(() => load('log_level: info\n'));
    expect(msg).toContain('Missing required configuration key "server_name"');
    expect(msg).toContain('a string');
  });

  it('names an unknown key, its value and the allowed keys', () => {
    const msg = errorOf(() => load('server_name: example.org\nlisteners:\n  clinet:\n    port: 8008\n'));
    expect(msg).toContain('Unknown configuration key "listeners.clinet"');
    expect(msg).toContain('{"port":8008}');
    expect(msg).toContain('client, federation, metrics');
  });

  it('names a wrong type with the value and what is allowed', () => {
    const msg = errorOf(() => load('server_name: example.org\nlisteners:\n  client:\n    port: 70000\n'));
    expect(msg).toContain('"listeners.client.port"');
    expect(msg).toContain('70000');
    expect(msg).toContain('an integer from 0 to 65535');
    const msg2 = errorOf(() => load('server_name: example.org\nregistration: maybe\n'));
    expect(msg2).toContain('"registration"');
    expect(msg2).toContain('"maybe"');
    expect(msg2).toContain('one of "closed", "token", "open"');
    const msg3 = errorOf(() => load('server_name: example.org\nlisteners: {client: {enabled: "yes"}}\n'));
    expect(msg3).toContain('"listeners.client.enabled"');
    expect(msg3).toContain('true or false');
  });

  it('rejects a bad server_name', () => {
    expect(errorOf(() => load('server_name: "exa mple.org"\n'))).toContain('"server_name"');
  });

  it('requires database.url for postgres', () => {
    expect(errorOf(() => load('server_name: example.org\ndatabase: {engine: postgres}\n'))).toContain('database.url');
  });

  it('rejects invalid YAML and duplicate keys with the file name', () => {
    expect(errorOf(() => load('server_name: [oops\n'))).toContain('not valid YAML');
    expect(errorOf(() => load('server_name: a.org\nserver_name: b.org\n'))).toContain('not valid YAML');
  });

  it('applies MYELIN_* environment overrides with type conversion', () => {
    const c = load('server_name: example.org\n', {
      MYELIN_LISTENERS__CLIENT__PORT: '18008',
      MYELIN_LISTENERS__METRICS__ENABLED: 'false',
      MYELIN_REGISTRATION: 'open',
      MYELIN_DATA_DIR: '/ignored/here',
      MYELIN_TEST_POSTGRES_URL: 'postgres://x',
    });
    expect(c.listeners.client.port).toBe(18008);
    expect(c.listeners.metrics.enabled).toBe(false);
    expect(c.registration).toBe('open');
  });

  it('rejects an unknown MYELIN_* environment variable, naming it', () => {
    const msg = errorOf(() => load('server_name: example.org\n', { MYELIN_LISTENERS__CLIENT__PROT: '1' }));
    expect(msg).toContain('MYELIN_LISTENERS__CLIENT__PROT');
    expect(msg).toContain('listeners.client.prot');
  });

  it('validates environment values like file values', () => {
    const msg = errorOf(() => load('server_name: example.org\n', { MYELIN_LISTENERS__CLIENT__PORT: 'eighty' }));
    expect(msg).toContain('"listeners.client.port"');
    expect(msg).toContain('"eighty"');
  });

  it('parses byte sizes', () => {
    expect(parseByteSize(1234)).toBe(1234);
    expect(parseByteSize('512k')).toBe(512 * 1024);
    expect(parseByteSize('50M')).toBe(50 * 1024 * 1024);
    expect(parseByteSize('1GiB')).toBe(1024 ** 3);
    expect(errorOf(() => validateConfig({ server_name: 'a.org', max_request_body: 'lots' }, '/tmp'))).toContain(
      'max_request_body',
    );
  });

  it('takes extra keys for /.well-known/matrix/client, but not m.homeserver', () => {
    const extra = { 'm.identity_server': { base_url: 'https://id.a.org' } };
    expect(validateConfig({ server_name: 'a.org', well_known: { client_extra: extra } }, '/tmp').well_known.client_extra).toEqual(extra);
    expect(validateConfig({ server_name: 'a.org' }, '/tmp').well_known.client_extra).toEqual({});
    expect(errorOf(() => validateConfig({ server_name: 'a.org', well_known: { client_extra: { 'm.homeserver': { base_url: 'https://x.org' } } } }, '/tmp'))).toContain('well_known.client_extra');
  });

  it('checks the support contacts of /.well-known/matrix/support', () => {
    const support = (s: unknown) => validateConfig({ server_name: 'a.org', well_known: { support: s } }, '/tmp').well_known.support;
    expect(support({ contacts: [{ matrix_id: '@admin:a.org' }] })).toEqual({ contacts: [{ matrix_id: '@admin:a.org', role: 'm.role.admin' }] });
    expect(support({ support_page: 'https://a.org/help' })).toEqual({ support_page: 'https://a.org/help' });
    expect(errorOf(() => support({}))).toContain('needs "contacts" or "support_page"');
    expect(errorOf(() => support({ contacts: [{ role: 'm.role.admin' }] }))).toContain('"well_known.support.contacts.0" needs "matrix_id" or "email_address"');
    expect(errorOf(() => support({ contacts: [] }))).toContain('well_known.support.contacts');
    expect(errorOf(() => support({ contacts: [{ matrix_id: 'admin' }] }))).toContain('well_known.support.contacts.0.matrix_id');
    expect(errorOf(() => support({ support_page: 'help.html' }))).toContain('well_known.support.support_page');
  });

  it('keeps environment overrides off the original object', () => {
    const raw = { server_name: 'a.org' };
    const out = applyEnvOverrides(raw, { MYELIN_LOG_LEVEL: 'debug' });
    expect(out).toEqual({ server_name: 'a.org', log_level: 'debug' });
    expect(raw).toEqual({ server_name: 'a.org' });
  });

  it('the generated template is valid and documents every top-level key it sets', () => {
    const text = configTemplate('example.org', 'x'.repeat(24));
    const parsed = parse(text) as Record<string, unknown>;
    const c = validateConfig(parsed, '/tmp/x');
    expect(c.server_name).toBe('example.org');
    for (const key of Object.keys(parsed)) expect(text).toMatch(new RegExp(`#[^\\n]*\\n(#[^\\n]*\\n)*${key}:`));
  });
});
