/**
 * Run inside a network namespace by mdns.test.ts: starts a Myelin with mDNS on, asks for
 * _matrix._tcp.local like a client app would, then stops the server and waits for its goodbye.
 * Prints one JSON line with what it saw.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import makeMdns from 'multicast-dns';
import { Myelin } from '../../src/app.js';
import { Writable } from 'node:stream';

const dir = mkdtempSync(join(tmpdir(), 'myelin-mdns-'));
const server = await Myelin.create({
  dataDir: dir,
  env: {},
  logDestination: new Writable({ write: (_c, _e, cb) => cb() }),
  overrides: {
    server_name: 'box.example',
    listeners: { client: { bind: '127.0.0.1', port: 0 }, federation: { bind: '127.0.0.1', port: 0 }, metrics: { enabled: false } },
    mdns: { enabled: true, instance_name: 'Kitchen box', interface: '127.0.0.1' },
  },
});
await server.start();
const clientPort = server.address('client')!.port;
const q = makeMdns({ interface: '127.0.0.1', bind: '0.0.0.0' });
const seen: { name: string; type: string; ttl?: number; data: unknown }[] = [];
q.on('response', (res) => {
  for (const r of [...res.answers, ...(res.additionals ?? [])] as { name: string; type: string; ttl?: number; data: unknown }[]) {
    seen.push({ name: r.name, type: r.type, ttl: r.ttl, data: r.data });
  }
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
await sleep(300);
seen.length = 0; // drop the start-up announcement: only answers to our query count
q.query({ questions: [{ name: '_matrix._tcp.local', type: 'PTR' }] });
await sleep(1000);
const answered = [...seen];
seen.length = 0;
await server.stop();
await sleep(500);
const goodbye = [...seen];
q.destroy();
rmSync(dir, { recursive: true, force: true });
process.stdout.write(`${JSON.stringify({ clientPort, answered, goodbye })}\n`);
process.exit(0);
