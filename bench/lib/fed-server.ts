/**
 * One Myelin server for the federation benchmark, run as its own process (so its RSS is its
 * own), driven over IPC by bench/suites/federation.ts:
 *   → { cmd: 'start', name, dataDir, caFile }        ← { ok, clientPort, fedPort }
 *   → { cmd: 'dns', dns }                             (the static DNS view: other servers' ports)
 *   → { cmd: 'populate', roomId, n, prefix }          ← { ok, ms }   n local members join a room
 *   → { cmd: 'partition', cut }                      outgoing federation requests fail while cut
 *   → { cmd: 'wake', destination }                   the sender retries a destination at once
 *   → { cmd: 'rss-reset' } ← { ok, rss }  → { cmd: 'rss-peak' } ← { ok, peak, rss }
 *   → { cmd: 'stop' }                                 ← { ok } and exit
 * RSS is sampled every 20 ms; the peak is kept since the last reset. With MYELIN_BENCH_CPU_PROF=dir
 * the process profiles itself from start to stop and writes `<name>-<pid>.cpuprofile` there.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Myelin } from '../../src/app.js';
import { staticResolver, type StaticDnsRecords } from '../../src/federation/dns.js';

const dns: StaticDnsRecords = { a: {}, srv: {} };
const profDir = process.env['MYELIN_BENCH_CPU_PROF'];
/** MYELIN_BENCH_TRACE_JOIN=1: the join's progress log lines go to stderr. */
const traceJoin = !!process.env['MYELIN_BENCH_TRACE_JOIN'];
let profiler: Session | undefined;
let serverName = 'server';
if (profDir) {
  profiler = new Session();
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.setSamplingInterval', { interval: 1000 });
  await profiler.post('Profiler.start');
}
let server: Myelin | undefined;
let peak = process.memoryUsage().rss;
const sampler = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss);
}, 20);
sampler.unref();

const quiet = new Writable({
  write(chunk: Buffer, _enc, cb) {
    const s = chunk.toString();
    if (/"level":(50|60)/.test(s) || (traceJoin && /joining a room|joined room state|stored the state/.test(s))) process.stderr.write(s);
    cb();
  },
});

function reply(msg: Record<string, unknown>): void {
  process.send!(msg);
}

process.on('message', (msg: any) => {
  void (async () => {
    try {
      switch (msg.cmd) {
        case 'start': {
          serverName = msg.name;
          server = await Myelin.create({
            dataDir: msg.dataDir,
            env: {},
            logDestination: quiet,
            federation: { resolver: staticResolver(dns), senderBackoff: { baseMs: 200, maxMs: 2000 } },
            overrides: {
              server_name: msg.name,
              log_level: traceJoin ? 'info' : 'warn',
              registration: 'open',
              password_hashing: { scrypt_log_n: 12 },
              rate_limits: { login: { per_second: 10000, burst: 10000 }, registration: { per_second: 10000, burst: 10000 }, message: { per_second: 100000, burst: 100000 } },
              listeners: {
                client: { bind: '127.0.0.1', port: 0 },
                federation: { bind: '127.0.0.1', port: 0, tls: { cert_file: 'fed.crt', key_file: 'fed.key' } },
                metrics: { enabled: false },
              },
              federation: { ca_files: [msg.caFile], use_system_ca: false },
            },
          });
          await server.start();
          reply({ ok: true, clientPort: server.address('client')!.port, fedPort: server.address('federation')!.port });
          break;
        }
        case 'dns':
          Object.assign(dns.a!, msg.dns.a);
          Object.assign(dns.srv!, msg.dns.srv);
          reply({ ok: true });
          break;
        case 'populate': {
          const t0 = performance.now();
          const ctx = server!.ctx;
          for (let i = 0; i < msg.n; i++) {
            const user = `@${msg.prefix}${i}:${ctx.config.server_name}`;
            await ctx.roomEvents.send({ roomId: msg.roomId, type: 'm.room.member', sender: user, stateKey: user, content: { membership: 'join', displayname: `member ${i}` } });
          }
          reply({ ok: true, ms: performance.now() - t0 });
          break;
        }
        case 'partition': {
          // Outgoing federation requests fail while cut (the sender queues and backs off).
          const client = server!.ctx.federation.client as unknown as { request: unknown; __orig?: unknown };
          if (msg.cut) {
            client.__orig ??= client.request;
            client.request = async () => {
              throw new Error('network partition (bench)');
            };
          } else if (client.__orig) {
            client.request = client.__orig;
            delete client.__orig;
          }
          reply({ ok: true });
          break;
        }
        case 'wake':
          await server!.ctx.federationRooms.sender.destinationIsUp(msg.destination);
          reply({ ok: true });
          break;
        case 'rss-reset':
          peak = process.memoryUsage().rss;
          reply({ ok: true, rss: peak });
          break;
        case 'rss-peak':
          peak = Math.max(peak, process.memoryUsage().rss);
          reply({ ok: true, peak, rss: process.memoryUsage().rss });
          break;
        case 'stop':
          await server?.stop();
          if (profiler) {
            const { profile } = await profiler.post('Profiler.stop');
            writeFileSync(join(profDir!, `${serverName}-${process.pid}.cpuprofile`), JSON.stringify(profile));
          }
          reply({ ok: true });
          process.exit(0);
      }
    } catch (err) {
      reply({ ok: false, error: (err as Error).stack ?? String(err) });
    }
  })();
});
process.on('disconnect', () => process.exit(0));
