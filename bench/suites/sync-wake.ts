/**
 * /sync long-poll wakes: ROOM_SIZE users in one room (an in-process server on SQLite in a temp
 * data directory) long-poll /sync with the load bench's inline filter; one member sends a
 * message, which wakes the others. Figures (CPU of this process, server and client together):
 *   - a round: the other members' long-polls waiting, one send, every woken /sync answered;
 *   - a round of the same send with nobody long-polling (the send's own share);
 *   - an incremental /sync (timeout 0) after one new message;
 *   - the response of a woken /sync built in-process (`SyncService.sync`, no HTTP), with 1 and
 *     with 5 new messages from several senders whose member events the device already has.
 * MYELIN_BENCH_ROUNDS (default 400) rounds of each. MYELIN_BENCH_DIST=1 runs the built server
 * (dist/, for CPU profiles with its line numbers); MYELIN_BENCH_ONLY=<text> runs only the
 * figures whose label contains it; MYELIN_BENCH_CPU_PROF=<file.cpuprofile> writes a CPU profile
 * of the measured rounds (warm-ups left out).
 */
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { Session } from 'node:inspector/promises';
import { startInProcessServer } from '../lib/in-process-server.js';
import { jsonRequest } from '../lib/http-json.js';
import { report } from '../report.js';

const SUITE = 'sync-wake';
const ROUNDS = Number(process.env.MYELIN_BENCH_ROUNDS ?? 400);
const ROOM_SIZE = 10;
const C = '/_matrix/client/v3';
const FILTER = encodeURIComponent(
  JSON.stringify({
    room: { timeline: { limit: 100 }, state: { lazy_load_members: true }, ephemeral: { types: [] }, account_data: { types: [] } },
    presence: { types: [] },
    account_data: { types: [] },
  }),
);

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

async function main(): Promise<void> {
  const { server, base, close } = await startInProcessServer('sw');
  const call = async (method: string, path: string, token: string | undefined, body?: unknown): Promise<any> => {
    const res = await jsonRequest(base + path, { method, body, token, agent });
    if (res.status !== 200 && res.status !== 401) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  try {
    const register = async (username: string): Promise<string> => {
      const first = await call('POST', `${C}/register`, undefined, { username, password: 'bench password' });
      const done = await call('POST', `${C}/register`, undefined, { username, password: 'bench password', auth: { type: 'm.login.dummy', session: first.session } });
      return done.access_token as string;
    };
    const tokens: string[] = [];
    for (let i = 0; i < ROOM_SIZE; i++) tokens.push(await register(`u${i}`));
    const roomId = (await call('POST', `${C}/createRoom`, tokens[0], { preset: 'public_chat' })).room_id as string;
    for (const t of tokens.slice(1)) await call('POST', `${C}/join/${encodeURIComponent(roomId)}`, t, {});
    const since: string[] = [];
    for (const t of tokens) since.push((await call('GET', `${C}/sync?timeout=0&filter=${FILTER}`, t)).next_batch);
    let txn = 0;
    const send = () => call('PUT', `${C}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/m${++txn}`, tokens[0], { msgtype: 'm.text', body: `message ${txn}` });
    const { notifier } = server.ctx;
    // Resolves once `n` readers wait (checked whenever one starts waiting, no polling).
    let pending: { n: number; resolve: () => void } | undefined;
    const original = notifier.waitFor.bind(notifier);
    notifier.waitFor = (...args) => {
      const w = original(...args);
      if (pending && notifier.waiting >= pending.n) {
        const p = pending;
        pending = undefined;
        p.resolve();
      }
      return w;
    };
    const waitFor = (n: number) => (notifier.waiting >= n ? Promise.resolve() : new Promise<void>((resolve) => (pending = { n, resolve })));
    const catchUp = async () => {
      for (let i = 0; i < ROOM_SIZE; i++) since[i] = (await call('GET', `${C}/sync?timeout=0&since=${since[i]}&filter=${FILTER}`, tokens[i])).next_batch;
    };

    const only = process.env.MYELIN_BENCH_ONLY;
    const profFile = process.env.MYELIN_BENCH_CPU_PROF;
    const session = profFile ? new Session() : undefined;
    if (session) {
      session.connect();
      await session.post('Profiler.enable');
    }
    /** CPU per round (or per `perRound`th of one). */
    const measure = async (label: string, round: () => Promise<void>, rounds = ROUNDS, perRound = 1): Promise<number> => {
      if (only && !label.includes(only)) return NaN;
      for (let i = 0; i < Math.min(50, rounds); i++) await round();
      if (session) await session.post('Profiler.start');
      let total = 0;
      for (let i = 0; i < rounds; i++) {
        const c0 = cpuMs();
        await round();
        total += cpuMs() - c0;
      }
      if (session) {
        const { profile } = await session.post('Profiler.stop');
        // One profile per figure when several run.
        writeFileSync(only ? profFile! : profFile!.replace(/(\.cpuprofile)?$/, `-${label.replace(/[^a-z0-9]+/gi, '-')}.cpuprofile`), JSON.stringify(profile));
      }
      const per = total / rounds / perRound;
      report(SUITE, label, per, 'ms CPU');
      return per;
    };

    const woken = await measure(`round: ${ROOM_SIZE - 1} long-polls woken by one send`, async () => {
      const polls = tokens.slice(1).map((t, j) =>
        call('GET', `${C}/sync?timeout=30000&since=${since[j + 1]}&filter=${FILTER}`, t).then((r) => {
          since[j + 1] = r.next_batch;
          if (!r.rooms.join[roomId]) throw new Error('woken without the room');
        }),
      );
      await waitFor(ROOM_SIZE - 1);
      await send();
      await Promise.all(polls);
    });
    await catchUp();
    const sendOnly = await measure('round: the send alone', async () => {
      await send();
    });
    await catchUp();
    report(SUITE, 'per woken /sync (round − send) / members', (woken - sendOnly) / (ROOM_SIZE - 1), 'ms CPU');
    await measure(`round: one send, then ${ROOM_SIZE - 1} /sync with timeout 0`, async () => {
      await send();
      await Promise.all(
        tokens.slice(1).map((t, j) =>
          call('GET', `${C}/sync?timeout=0&since=${since[j + 1]}&filter=${FILTER}`, t).then((r) => {
            since[j + 1] = r.next_batch;
          }),
        ),
      );
    });
    await catchUp();

    // The woken response alone: built in-process for the members' positions before the last
    // sends (each device has had the senders' member events since its initial sync).
    const { parseSyncToken } = await import('../../src/services/sync/token.js');
    const filter = JSON.parse(decodeURIComponent(FILTER)) as object;
    const devices: string[] = [];
    for (const t of tokens) devices.push((await call('GET', `${C}/account/whoami`, t)).device_id as string);
    const sendFrom = (news: number, tag: string) => {
      return (async () => {
        for (let k = 0; k < news; k++) await call('PUT', `${C}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${tag}${news}-${k}`, tokens[k % 4], { msgtype: 'm.text', body: `${tag} ${k}` });
      })();
    };
    for (const news of [1, 5]) {
      // The senders' member events reach every device first.
      await sendFrom(news, 'w');
      await catchUp();
      const before = since.map((s) => parseSyncToken(s));
      await sendFrom(news, 'b');
      let j = 0;
      await measure(
        `woken response built in-process (${news} new message${news > 1 ? 's' : ''}, no HTTP), per response`,
        async () => {
          for (let i = 0; i < 100; i++) {
            const m = 1 + (j++ % (ROOM_SIZE - 1));
            const r = await server.ctx.sync.sync({ userId: `@u${m}:localhost`, deviceId: devices[m]!, since: before[m], timeoutMs: 0, fullState: false, filter });
            const room = r.rooms.join[roomId];
            if (room?.timeline.events.length !== news || room.state.events.length) throw new Error('unexpected response');
          }
        },
        Math.max(1, Math.round(ROUNDS / 4)),
        100,
      );
      await catchUp();
    }
  } finally {
    agent.destroy();
    await close();
  }
}

await main();
