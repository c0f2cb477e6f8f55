/**
 * One Myelin server for the federation benchmark, run as its own process (so its RSS is its
 * own), driven over IPC by bench/suites/federation.ts:
 *   → { cmd: 'start', name, dataDir, caFile }        ← { ok, clientPort, fedPort }
 *   → { cmd: 'dns', dns }                             (the static DNS view: other servers' ports)
 *   → { cmd: 'populate', roomId, n, prefix }          ← { ok, ms }   n local members join a room
 *   → { cmd: 'partition', cut }                      outgoing federation requests fail while cut
 *   → { cmd: 'wake', destination }                   the sender retries a destination at once
 *   → { cmd: 'rss-reset' } ← { ok, rss }  → { cmd: 'rss-peak' } ← { ok, peak, rss, atPeak, now }
 *     (atPeak / now: process.memoryUsage() in MB at the peak and now)
 *   → { cmd: 'stop' }                                 ← { ok } and exit
 * RSS is sampled every 20 ms; the peak is kept since the last reset. With MYELIN_BENCH_CPU_PROF=dir
 * the process profiles itself from start to stop and writes `<name>-<pid>.cpuprofile` there.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8';
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
/**
 * MYELIN_BENCH_HEAP_PROF=dir: a sampling heap profile from rss-reset to rss-peak, written as
 * `<name>-<pid>.heapprofile`, of the allocations no minor GC freed (promoted or still live).
 */
const heapProfDir = process.env['MYELIN_BENCH_HEAP_PROF'];
let heapSession: Session | undefined;
let server: Myelin | undefined;
let peak = process.memoryUsage().rss;
/** process.memoryUsage() when the peak RSS was sampled (heap, external, array buffers). */
let peakUsage = process.memoryUsage();
/** MYELIN_BENCH_TRACE_MEM=ms: process.memoryUsage() (MB) to stderr every ms while a peak is tracked. */
const traceMemMs = Number(process.env['MYELIN_BENCH_TRACE_MEM'] ?? 0);
/** MYELIN_BENCH_HEAP_SNAPSHOT=dir and MYELIN_BENCH_HEAP_SNAPSHOT_MB=n: one heap snapshot when RSS first exceeds n MB. */
const snapDir = process.env['MYELIN_BENCH_HEAP_SNAPSHOT'];
const snapMb = Number(process.env['MYELIN_BENCH_HEAP_SNAPSHOT_MB'] ?? 0);
let snapped = false;
let tracking = false;
let lastTrace = 0;
const mb = (n: number): number => Math.round(n / 104857.6) / 10;
const usageLine = (u: NodeJS.MemoryUsage): string =>
  `rss ${mb(u.rss)} heapTotal ${mb(u.heapTotal)} heapUsed ${mb(u.heapUsed)} external ${mb(u.external)} arrayBuffers ${mb(u.arrayBuffers)}`;
const sampler = setInterval(() => {
  const u = process.memoryUsage();
  if (u.rss > peak) {
    peak = u.rss;
    peakUsage = u;
  }
  if (tracking && traceMemMs && Date.now() - lastTrace >= traceMemMs) {
    lastTrace = Date.now();
    const spaces = getHeapSpaceStatistics()
      .filter((sp) => sp.space_size > 1048576)
      .map((sp) => `${sp.space_name.replace('_space', '')} ${mb(sp.space_used_size)}/${mb(sp.space_size)}`)
      .join(', ');
    process.stderr.write(`${serverName} mem ${new Date().toISOString().slice(11, 23)} ${usageLine(u)} (${spaces})\n`);
  }
  if (tracking && snapDir && !snapped && snapMb && u.rss > snapMb * 1048576) {
    snapped = true;
    const file = writeHeapSnapshot(join(snapDir, `${serverName}-${process.pid}-${Math.round(u.rss / 1048576)}MB.heapsnapshot`));
    process.stderr.write(`${serverName}: heap snapshot ${file} (${usageLine(u)})\n`);
  }
}, 20);
sampler.unref();
/**
 * MYELIN_BENCH_TRACE_GC=1: each full garbage collection (kind, ms, old space and heap after) to
 * stderr while a peak is tracked; `minor`: scavenges too.
 */
const traceGc = process.env['MYELIN_BENCH_TRACE_GC'] ?? '';
if (traceGc) {
  const kinds: Record<number, string> = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };
  new PerformanceObserver((list) => {
    if (!tracking) return;
    for (const e of list.getEntries()) {
      const kind = ((e as unknown as { detail?: unknown }).detail as { kind?: number } | undefined)?.kind ?? 0;
      if (kind === 1 && !traceGc.includes('minor')) continue;
      const old = getHeapSpaceStatistics().find((sp) => sp.space_name === 'old_space');
      process.stderr.write(`${serverName} gc ${kinds[kind] ?? kind} ${e.duration.toFixed(1)} ms; old ${mb(old?.space_used_size ?? 0)}; ${usageLine(process.memoryUsage())}\n`);
    }
  }).observe({ entryTypes: ['gc'] });
}

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
          if (heapProfDir) {
            heapSession ??= new Session();
            heapSession.connect();
            // Objects a scavenge freed are left out: what remains was promoted (or is still live).
            await heapSession.post('HeapProfiler.startSampling', { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true } as never);
          }
          peakUsage = process.memoryUsage();
          peak = peakUsage.rss;
          tracking = true;
          reply({ ok: true, rss: peak });
          break;
        case 'rss-peak': {
          const u = process.memoryUsage();
          if (u.rss > peak) {
            peak = u.rss;
            peakUsage = u;
          }
          tracking = false;
          if (heapSession) {
            const { profile } = await heapSession.post('HeapProfiler.stopSampling');
            writeFileSync(join(heapProfDir!, `${serverName}-${process.pid}.heapprofile`), JSON.stringify(profile));
            heapSession.disconnect();
            heapSession = undefined;
          }
          reply({ ok: true, peak, rss: u.rss, atPeak: usageLine(peakUsage), now: usageLine(u) });
          break;
        }
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
