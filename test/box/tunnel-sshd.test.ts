/**
 * The reverse tunnel against a real OpenSSH sshd on loopback: requests to the relay's port reach
 * Myelin; the tunnel comes back by itself after the relay is killed or frozen; a client that
 * retries loses no message; unknown and mismatching host keys are refused.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, TEST_OVERRIDES } from '../client/_client.js';
import { startServer, type TestServer } from '../_util/server.js';
import type { TunnelStatus } from '../../src/box/index.js';
import { freePort, SSHD, TestSshd } from './_sshd.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<number> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
  return Date.now() - start;
}

const BACKOFF_MAX_MS = 2000;

function tunnelOverrides(sshd: TestSshd, remotePort: number, extra: Record<string, unknown> = {}) {
  return {
    ...TEST_OVERRIDES,
    tunnel: {
      enabled: true,
      host: '127.0.0.1',
      port: sshd.port,
      user: sshd.user,
      private_key_file: sshd.clientKey,
      host_key: sshd.fingerprint(),
      forward: { client: remotePort, federation: false, metrics: false },
      keepalive_interval_ms: 500,
      keepalive_count_max: 3,
      ready_timeout_ms: 3000,
      backoff_initial_ms: 100,
      backoff_max_ms: BACKOFF_MAX_MS,
      ...extra,
    },
  };
}

describe.skipIf(!SSHD)('reverse tunnel through a real sshd', () => {
  let sshd: TestSshd;
  let remotePort: number;
  let t: TestServer | undefined;

  beforeAll(async () => {
    remotePort = await freePort();
    sshd = new TestSshd(await freePort(), [remotePort]);
    await sshd.start();
  });

  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  afterAll(async () => {
    await sshd?.close();
  });

  const status = (): TunnelStatus => t!.server.ctx.box.tunnelStatus()!;

  it('forwards the relay port to the client listener, and comes back after the relay is killed or frozen', async () => {
    t = await startServer({ overrides: tunnelOverrides(sshd, remotePort) });
    await waitFor('tunnel up', () => status().state === 'up', 15_000);
    expect(status().hostKeyFingerprint).toBe(sshd.fingerprint());
    expect(status().forwards).toEqual([{ name: 'client', remotePort, boundPort: remotePort, localPort: Number(new URL(t.clientUrl).port) }]);

    // A request to the relay's port is answered by Myelin.
    const viaRelay = `http://127.0.0.1:${remotePort}`;
    const versions = await fetch(`${viaRelay}/_matrix/client/versions`);
    expect(versions.status).toBe(200);
    expect(((await versions.json()) as { versions: string[] }).versions).toContain('v1.11');
    expect(status().bytesIn).toBeGreaterThan(0);
    expect(status().bytesOut).toBeGreaterThan(0);

    const metrics = await t.server.ctx.metrics.registry.metrics();
    expect(metrics).toMatch(/^myelin_tunnel_enabled 1$/m);
    expect(metrics).toMatch(/^myelin_tunnel_up 1$/m);
    expect(metrics).toMatch(/^myelin_tunnel_bytes_total\{direction="in"\} [1-9]/m);

    // A client that retries every request until it is answered, through the relay.
    const alice = new TestClient(viaRelay);
    await alice.register('alice');
    const room = (await alice.post('/_matrix/client/v3/createRoom', {})).body.room_id as string;
    const sendWithRetry = async (i: number) => {
      for (;;) {
        try {
          const r = await alice.put(`/_matrix/client/v3/rooms/${encodeURIComponent(room)}/send/m.room.message/txn${i}`, {
            msgtype: 'm.text',
            body: `message ${i}`,
          });
          if (r.status === 200) return;
        } catch {
          // connection refused or reset while the relay is away
        }
        await sleep(100);
      }
    };

    // Relay killed (sshd and its sessions) in the middle of a conversation, then back.
    let sent = 0;
    const sender = (async () => {
      for (let i = 0; i < 20; i++) {
        await sendWithRetry(i);
        sent = i + 1;
        await sleep(50);
      }
    })();
    await waitFor('a few messages', () => sent >= 5, 20_000);
    await sshd.kill();
    await waitFor('tunnel noticed the relay is gone', () => status().state !== 'up', 10_000);
    expect(status().lastError).toBeTruthy();
    const sentDuringOutage = sent;
    await sleep(1500);
    expect(sent - sentDuringOutage).toBeLessThanOrEqual(1); // nothing gets through while the relay is down
    await sshd.start();
    // Back-off is capped at BACKOFF_MAX_MS, plus the connection set-up.
    const took = await waitFor('tunnel back up after restart', () => status().state === 'up', BACKOFF_MAX_MS + 10_000);
    expect(took).toBeLessThan(BACKOFF_MAX_MS + 10_000);
    expect(status().reconnects).toBe(1);
    await sender;

    const msgs = await alice.get(`/_matrix/client/v3/rooms/${encodeURIComponent(room)}/messages?dir=f&limit=100`);
    const bodies = (msgs.body.chunk as { type: string; content: { body?: string } }[])
      .filter((e) => e.type === 'm.room.message')
      .map((e) => e.content.body);
    expect(bodies).toEqual(Array.from({ length: 20 }, (_, i) => `message ${i}`));

    // Relay frozen (SIGSTOP): no FIN, no RST; the keepalives notice within seconds.
    sshd.signalAll('SIGSTOP');
    const noticed = await waitFor('keepalive timeout', () => status().state !== 'up', 10_000);
    expect(noticed).toBeLessThan(500 * 3 + 3000);
    sshd.signalAll('SIGCONT');
    await waitFor('tunnel back up after SIGCONT', () => status().state === 'up', BACKOFF_MAX_MS + 15_000);
    expect(status().reconnects).toBe(2);
    expect((await fetch(`${viaRelay}/_matrix/client/versions`)).status).toBe(200);
    const after = await t.server.ctx.metrics.registry.metrics();
    expect(after).toMatch(/^myelin_tunnel_reconnects_total 2$/m);
  }, 120_000);

  it('refuses a relay whose host key does not match the pinned one', async () => {
    const other = new TestSshd(await freePort(), []); // only for a different key
    const wrong = other.fingerprint();
    await other.close();
    t = await startServer({ overrides: tunnelOverrides(sshd, remotePort, { host_key: wrong }) });
    await waitFor('a refused attempt', () => status().failedAttempts >= 2, 15_000);
    expect(status().state).toBe('reconnecting');
    expect(status().lastError).toMatch(/does not match the pinned tunnel.host_key/);
    expect(t.logs.some((l) => l.includes('does not match'))).toBe(true);
    await expect(fetch(`http://127.0.0.1:${remotePort}/_matrix/client/versions`)).rejects.toThrow();
  }, 60_000);

  it('reports a port the relay does not permit, and keeps retrying', async () => {
    const forbidden = await freePort();
    t = await startServer({ overrides: tunnelOverrides(sshd, forbidden) });
    await waitFor('two refused attempts', () => status().failedAttempts >= 2, 15_000);
    expect(status().state).toBe('reconnecting');
    expect(status().lastError).toMatch(new RegExp(`relay refused to listen on port ${forbidden} for client`));
  }, 60_000);

  it('refuses an unknown host key unless accept_unknown_host_key is set, and then warns', async () => {
    t = await startServer({ overrides: tunnelOverrides(sshd, remotePort, { host_key: undefined }) });
    await waitFor('a refused attempt', () => status().failedAttempts >= 1, 15_000);
    expect(status().lastError).toMatch(/unknown relay host key SHA256:/);
    expect(status().lastError).toContain(sshd.fingerprint());
    await t.close();

    t = await startServer({ overrides: tunnelOverrides(sshd, remotePort, { host_key: undefined, accept_unknown_host_key: true }) });
    await waitFor('tunnel up', () => status().state === 'up', 15_000);
    const warning = t.logs.map((l) => JSON.parse(l)).find((l) => l.msg?.includes('TUNNEL HOST KEY NOT PINNED'));
    expect(warning?.level).toBe(40);
    expect(warning?.fingerprint).toBe(sshd.fingerprint());
  }, 60_000);
});
