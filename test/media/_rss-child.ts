/**
 * A Myelin server in its own process for memory measurements (no vitest imports here): sends
 * `{ url }` over IPC once listening; answers `sample-start` / `sample-stop` with the highest RSS
 * seen in between (sampled every 50 ms, after a GC), and `stop` by shutting down.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Myelin } from '../../src/app.js';

const dataDir = mkdtempSync(join(tmpdir(), 'myelin-rss-'));
const server = await Myelin.create({
  dataDir,
  env: {},
  logDestination: new Writable({ write: (_c, _e, cb) => cb() }),
  overrides: {
    server_name: 'rss.test',
    log_level: 'warn',
    registration: 'open',
    password_hashing: { scrypt_log_n: 12 },
    rate_limits: { registration: { per_second: 100, burst: 100 } },
    listeners: { client: { bind: '127.0.0.1', port: 0 }, federation: { enabled: false }, metrics: { enabled: false } },
  },
});
const urls = await server.start();
let peak = 0;
let timer: NodeJS.Timeout | undefined;
const gc = (globalThis as { gc?: () => void }).gc;
// Garbage (already released chunks) is collected before each sample: what is measured is memory
// still held, not how lazily V8 collects.
const sample = () => {
  gc?.();
  peak = Math.max(peak, process.memoryUsage().rss);
};
process.on('message', async (msg: { type: string }) => {
  if (msg.type === 'sample-start') {
    gc?.();
    peak = process.memoryUsage().rss;
    timer = setInterval(sample, 50);
    process.send!({ type: 'sampling', rss: peak });
  } else if (msg.type === 'sample-stop') {
    clearInterval(timer);
    sample();
    process.send!({ type: 'peak', rss: peak });
  } else if (msg.type === 'stop') {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
    process.exit(0);
  }
});
process.send!({ type: 'ready', url: urls.client });
