/**
 * mDNS announcement, tested only inside a network namespace the test creates (loopback only,
 * multicast routed to lo), so no multicast leaves it. Without the privilege to create one, the
 * test is skipped and says why.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const NS = `myelin-mdns-${process.pid}`;

function tryCreateNamespace(): string | undefined {
  try {
    execFileSync('ip', ['netns', 'add', NS], { stdio: 'pipe' });
    execFileSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up'], { stdio: 'pipe' });
    execFileSync('ip', ['-n', NS, 'link', 'set', 'lo', 'multicast', 'on'], { stdio: 'pipe' });
    execFileSync('ip', ['-n', NS, 'route', 'add', '224.0.0.0/4', 'dev', 'lo'], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    spawnSync('ip', ['netns', 'del', NS]);
    return `cannot create a network namespace here (${((err as { stderr?: Buffer }).stderr?.toString() || (err as Error).message).trim()})`;
  }
}

// Probe once (create and delete) to decide; the namespace used is made in beforeAll.
const skipReason = tryCreateNamespace();
spawnSync('ip', ['netns', 'del', NS]);
if (skipReason) console.warn(`mdns.test.ts skipped: ${skipReason}`);

describe.skipIf(skipReason !== undefined)('mDNS announcement (inside a private network namespace)', () => {
  beforeAll(() => {
    const failed = tryCreateNamespace();
    if (failed) throw new Error(failed);
  });
  afterAll(() => {
    spawnSync('ip', ['netns', 'del', NS]);
  });

  it('answers a _matrix._tcp.local query with the client port and server name, and says goodbye at stop', () => {
    const r = spawnSync(
      'ip',
      ['netns', 'exec', NS, process.execPath, '--import', 'tsx', join(import.meta.dirname, '_mdns-probe.ts')],
      { encoding: 'utf8', timeout: 60_000, cwd: join(import.meta.dirname, '../..') },
    );
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    const ptr = out.answered.find((a: any) => a.type === 'PTR' && a.name === '_matrix._tcp.local');
    expect(ptr?.data).toBe('Kitchen box._matrix._tcp.local');
    const srv = out.answered.find((a: any) => a.type === 'SRV' && a.name === 'Kitchen box._matrix._tcp.local');
    expect(srv?.data.port).toBe(out.clientPort);
    const txt = out.answered.find((a: any) => a.type === 'TXT');
    expect(Buffer.from(txt.data[0].data ?? txt.data[0]).toString()).toBe('server_name=box.example');
    const a = out.answered.find((x: any) => x.type === 'A' && x.name === srv.data.target);
    expect(a?.data).toBe('127.0.0.1');
    const bye = out.goodbye.find((x: any) => x.type === 'PTR' && x.name === '_matrix._tcp.local');
    expect(bye?.ttl).toBe(0);
  }, 90_000);
});
