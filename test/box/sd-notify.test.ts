/**
 * sd_notify: a fake service manager (a unix datagram socket the test binds, named by
 * NOTIFY_SOCKET) hears READY=1 once the server listens, WATCHDOG=1 every half WATCHDOG_USEC, and
 * STOPPING=1 at shutdown, with nothing after it. Both transports: datagrams from the process
 * itself, and the systemd-notify fallback.
 */
import { existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Myelin } from '../../src/app.js';
import { datagramTransport, systemdNotifyTransport } from '../../src/box/sd-notify.js';
import { memoryLog, tempDir } from '../_util/server.js';

interface Receiver {
  messages: { at: number; text: string }[];
  close(): void;
}

type DgramSocket = { bind(p: string): void; on(ev: 'data', fn: (b: Buffer) => void): void; close(): void };
let unixSocket: { DgramSocket: new () => DgramSocket } | undefined;
try {
  unixSocket = createRequire(import.meta.url)('node-unix-socket') as typeof unixSocket;
} catch {
  unixSocket = undefined;
}

function receiver(path: string): Receiver {
  const sock = new unixSocket!.DgramSocket();
  const messages: Receiver['messages'] = [];
  sock.on('data', (b: Buffer) => messages.push({ at: Date.now(), text: b.toString() }));
  sock.bind(path);
  return { messages, close: () => sock.close() };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(20);
  }
}

describe.skipIf(!unixSocket)('sd_notify', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('tells a fake systemd READY=1, WATCHDOG=1 at half the interval, and STOPPING=1', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const socketPath = join(dir, 'notify.sock');
    const r = receiver(socketPath);
    const logs: string[] = [];
    const server = await Myelin.create({
      dataDir: join(dir, 'data'),
      env: { NOTIFY_SOCKET: socketPath, WATCHDOG_USEC: '400000', WATCHDOG_PID: String(process.pid) },
      logDestination: memoryLog(logs),
      overrides: {
        server_name: 'localhost',
        listeners: { client: { bind: '127.0.0.1', port: 0 }, federation: { bind: '127.0.0.1', port: 0 }, metrics: { enabled: false } },
      },
    });
    try {
      expect(server.ctx.box.sdNotify.watchdogIntervalMs).toBe(200);
      await sleep(300);
      expect(r.messages).toEqual([]); // nothing before the listeners are up
      await server.start();
      await waitFor(() => r.messages.some((m) => m.text.includes('READY=1')), 5000);
      const ready = r.messages.find((m) => m.text.includes('READY=1'))!;
      expect(ready.text.split('\n')).toContain(`MAINPID=${process.pid}`);
      expect(ready.text).toMatch(/STATUS=serving localhost/);
      await sleep(1100);
      const pings = r.messages.filter((m) => m.text === 'WATCHDOG=1');
      // ~200 ms apart: about 6 in 1.1 s; generous bounds for a busy machine.
      expect(pings.length).toBeGreaterThanOrEqual(3);
      expect(pings.length).toBeLessThanOrEqual(9);
      await server.stop();
      await waitFor(() => r.messages.some((m) => m.text === 'STOPPING=1'), 5000);
      const stoppingAt = r.messages.findIndex((m) => m.text === 'STOPPING=1');
      await sleep(500);
      expect(r.messages.slice(stoppingAt + 1)).toEqual([]);
      expect(r.messages.filter((m) => m.text.includes('READY=1'))).toHaveLength(1);
    } finally {
      await server.stop();
      r.close();
    }
  }, 30_000);

  it('does nothing without NOTIFY_SOCKET, and ignores WATCHDOG_USEC meant for another process', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const server = await Myelin.create({
      dataDir: dir,
      env: { WATCHDOG_USEC: '400000' },
      logDestination: memoryLog([]),
      overrides: { server_name: 'localhost', listeners: { client: { port: 0 }, federation: { port: 0 }, metrics: { enabled: false } } },
    });
    expect(server.ctx.box.sdNotify.enabled).toBe(false);
    await server.stop();
    const other = await Myelin.create({
      dataDir: dir,
      env: { NOTIFY_SOCKET: join(dir, 'x.sock'), WATCHDOG_USEC: '400000', WATCHDOG_PID: String(process.pid + 1) },
      logDestination: memoryLog([]),
      overrides: { server_name: 'localhost', listeners: { client: { port: 0 }, federation: { port: 0 }, metrics: { enabled: false } } },
    });
    expect(other.ctx.box.sdNotify.watchdogIntervalMs).toBeUndefined();
    await other.stop();
  });

  it('datagram transport reaches an abstract-namespace socket too', async () => {
    const name = `myelin-test-${process.pid}-${Date.now()}`;
    const r = receiver(`\0${name}`);
    const tr = datagramTransport(`@${name}`)!;
    try {
      await tr.send('READY=1');
      await waitFor(() => r.messages.length === 1, 3000);
      expect(r.messages[0]!.text).toBe('READY=1');
    } finally {
      tr.close();
      r.close();
    }
  });

  it.skipIf(!existsSync('/usr/bin/systemd-notify') && !existsSync('/bin/systemd-notify'))(
    'the systemd-notify fallback sends the same messages',
    async () => {
      const dir = tempDir();
      dirs.push(dir);
      const socketPath = join(dir, 'notify.sock');
      const r = receiver(socketPath);
      const tr = systemdNotifyTransport(socketPath)!;
      try {
        await tr.send(`READY=1\nSTATUS=hello`);
        await waitFor(() => r.messages.length >= 1, 5000);
        const text = r.messages.map((m) => m.text).join('\n');
        expect(text).toContain('READY=1');
        expect(text).toContain('STATUS=hello');
        expect(text).toContain(`MAINPID=${process.pid}`);
      } finally {
        r.close();
      }
    },
  );
});
