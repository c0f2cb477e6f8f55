import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Myelin } from '../../src/app.js';
import { ConfigError } from '../../src/config/load.js';
import { decodeSigningKeyFile } from '../../src/protocol/signing.js';
import { memoryLog, tempDir } from '../_util/server.js';

const run = promisify(execFile);
const CLI = ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/main.ts')];

const dirs: string[] = [];
function dir() {
  const d = tempDir();
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function create(dataDir: string, overrides: Record<string, unknown> = {}) {
  return Myelin.create({ dataDir, env: {}, logDestination: memoryLog([]), overrides });
}

describe('first run', () => {
  it('creates the data directory with a commented config, a signing key and the database, then reuses them', async () => {
    const d = join(dir(), 'data');
    const first = await create(d, { server_name: 'box.example.org' });
    await first.stop();
    const yamlText = readFileSync(join(d, 'myelin.yaml'), 'utf8');
    expect(yamlText).toMatch(/^# Myelin configuration/);
    expect((parse(yamlText) as { server_name: string }).server_name).toBe('box.example.org');
    const keyText = readFileSync(join(d, 'signing.key'), 'utf8');
    expect(keyText).toMatch(/^ed25519 [A-Za-z0-9_]+ [A-Za-z0-9+/]{43}\n$/);
    const key = decodeSigningKeyFile(keyText);
    expect(key.keyId).toMatch(/^ed25519:[A-Za-z0-9_]+$/);
    expect(statSync(join(d, 'signing.key')).mode & 0o077).toBe(0);
    expect(existsSync(join(d, 'myelin.db'))).toBe(true);

    const second = await create(d);
    expect(second.ctx.signingKey.keyId).toBe(key.keyId);
    expect(second.config.server_name).toBe('box.example.org');
    await second.stop();
    expect(readFileSync(join(d, 'myelin.yaml'), 'utf8')).toBe(yamlText);
    expect(readFileSync(join(d, 'signing.key'), 'utf8')).toBe(keyText);
  });

  it('stopping right after start leaves nothing running against the closed database', async () => {
    const d = join(dir(), 'data');
    const lines: string[] = [];
    const server = await Myelin.create({ dataDir: d, env: {}, logDestination: memoryLog(lines), overrides: { server_name: 'quick.example' } });
    // No await between create and stop: start-up work (push evaluation catch-up) is still pending.
    await server.stop();
    await new Promise((r) => setTimeout(r, 300));
    const errors = lines.map((l) => JSON.parse(l) as { level: number; msg: string; err?: { message?: string } }).filter((l) => l.level >= 50);
    expect(errors.map((e) => `${e.msg}: ${e.err?.message ?? ''}`)).toEqual([]);
    expect(lines.some((l) => l.includes('"stopped"'))).toBe(true);
  });

  it('refuses a server_name that differs from the one the database belongs to', async () => {
    const d = dir();
    await (await create(d, { server_name: 'one.example' })).stop();
    await expect(create(d, { server_name: 'two.example' })).rejects.toThrow(ConfigError);
    await expect(create(d, { server_name: 'two.example' })).rejects.toThrow(/belongs to server_name "one.example"/);
  });

  it('`myelin init --server-name` creates everything explicitly and keeps existing files', async () => {
    const d = join(dir(), 'fresh');
    const out = await run(process.execPath, [...CLI, 'init', '--server-name', 'example.org', '--data-dir', d], {
      env: { ...process.env, MYELIN_LOG_LEVEL: 'warn' },
    });
    expect(out.stdout).toContain('Created');
    expect(out.stdout).toContain('Server name: example.org');
    expect((parse(readFileSync(join(d, 'myelin.yaml'), 'utf8')) as { server_name: string }).server_name).toBe('example.org');
    const key = readFileSync(join(d, 'signing.key'), 'utf8');
    const again = await run(process.execPath, [...CLI, 'init', '--server-name', 'example.org', '--data-dir', d], {
      env: { ...process.env, MYELIN_LOG_LEVEL: 'warn' },
    });
    expect(again.stdout).toContain('Kept existing');
    expect(readFileSync(join(d, 'signing.key'), 'utf8')).toBe(key);
    // Nothing ran against the database after it closed (push evaluation is stopped first).
    for (const o of [out, again]) expect(`${o.stdout}${o.stderr}`).not.toMatch(/"level":(50|60)|connection is not open/);
  });

  it('`myelin init` without a server name explains what to pass', async () => {
    const err = await run(process.execPath, [...CLI, 'init', '--data-dir', join(dir(), 'x')]).catch((e: unknown) => e);
    expect((err as { code: number }).code).toBe(2);
    expect((err as { stderr: string }).stderr).toContain('--server-name');
  });

  it('a bad config stops start-up with a message naming the key', async () => {
    const d = dir();
    const err = await run(process.execPath, [...CLI, 'start', '--data-dir', d], {
      env: { ...process.env, MYELIN_LISTENERS__CLIENT__PORT: 'http' },
    }).catch((e: unknown) => e);
    expect((err as { code: number }).code).toBe(78);
    expect((err as { stderr: string }).stderr).toContain('"listeners.client.port"');
    expect((err as { stderr: string }).stderr).toContain('"http"');
  });
});
