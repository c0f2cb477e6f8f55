/**
 * Simplified sliding sync for one user in many rooms (an Element X start-up): an in-process
 * server on SQLite in a temp data directory, MYELIN_BENCH_ROOMS rooms (default 300) with a few
 * messages each. Figures (median of MYELIN_BENCH_RUNS, default 5, each on a new connection):
 *   - first request of a connection, range [0,19], timeline_limit 1;
 *   - growing that connection's range to every room;
 *   - an incremental request with nothing new (timeout 0);
 *   - an incremental request after one new message (one room in the response);
 *   - a long-poll woken by a message: send → response.
 */
import { jsonCaller, startInProcessServer } from '../lib/in-process-server.js';
import { median, report } from '../report.js';

const SUITE = 'sliding-sync';
const ROOMS = Number(process.env.MYELIN_BENCH_ROOMS ?? 300);
const RUNS = Number(process.env.MYELIN_BENCH_RUNS ?? 5);
const SS = '/_matrix/client/unstable/org.matrix.simplified_msc3575/sync';
const C = '/_matrix/client/v3';

const REQUIRED_STATE = [
  ['m.room.name', ''],
  ['m.room.avatar', ''],
  ['m.room.encryption', ''],
  ['m.room.create', ''],
  ['m.room.topic', ''],
  ['m.room.power_levels', ''],
  ['m.room.member', '$LAZY'],
  ['m.room.member', '$ME'],
];

async function main(): Promise<void> {
  const { server, base, close } = await startInProcessServer('ss');
  try {
    const call = jsonCaller(base);
    const register = async (username: string): Promise<string> => {
      const first = await call('POST', `${C}/register`, undefined, { username, password: 'bench password' });
      const done = await call('POST', `${C}/register`, undefined, { username, password: 'bench password', auth: { type: 'm.login.dummy', session: first.session } });
      return done.access_token as string;
    };
    const me = await register('reader');
    const other = await register('writer');
    const rooms: string[] = [];
    let txn = 0;
    for (let i = 0; i < ROOMS; i++) {
      const roomId = (await call('POST', `${C}/createRoom`, other, { preset: 'private_chat', name: `room ${i}`, invite: ['@reader:localhost'] })).room_id as string;
      await call('POST', `${C}/join/${encodeURIComponent(roomId)}`, me, {});
      for (let m = 0; m < 3; m++) await call('PUT', `${C}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/b${++txn}`, other, { msgtype: 'm.text', body: `message ${m}` });
      rooms.push(roomId);
    }
    const body = (end: number, connId: string) => ({
      conn_id: connId,
      lists: { all_rooms: { ranges: [[0, end]], timeline_limit: 1, required_state: REQUIRED_STATE } },
      extensions: { account_data: { enabled: true }, receipts: { enabled: true }, typing: { enabled: true } },
    });
    const timed = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
      const t0 = performance.now();
      const r = await fn();
      return [r, performance.now() - t0];
    };
    const first: number[] = [];
    const grow: number[] = [];
    const idle: number[] = [];
    const oneMessage: number[] = [];
    const wake: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const conn = `c${run}`;
      const [r1, t1] = await timed(() => call('POST', SS, me, body(19, conn)));
      first.push(t1);
      const [r2, t2] = await timed(() => call('POST', `${SS}?pos=${r1.pos}`, me, body(ROOMS - 1, conn)));
      grow.push(t2);
      if (Object.keys(r2.rooms).length !== Math.max(0, ROOMS - 20)) throw new Error(`grew by ${Object.keys(r2.rooms).length} rooms`);
      const [r3, t3] = await timed(() => call('POST', `${SS}?pos=${r2.pos}&timeout=0`, me, body(ROOMS - 1, conn)));
      idle.push(t3);
      await call('PUT', `${C}/rooms/${encodeURIComponent(rooms[run % rooms.length]!)}/send/m.room.message/n${++txn}`, other, { msgtype: 'm.text', body: 'new' });
      const [r4, t4] = await timed(() => call('POST', `${SS}?pos=${r3.pos}&timeout=0`, me, body(ROOMS - 1, conn)));
      oneMessage.push(t4);
      if (Object.keys(r4.rooms).length !== 1) throw new Error(`expected one room, got ${Object.keys(r4.rooms).length}`);
      const poll = call('POST', `${SS}?pos=${r4.pos}&timeout=10000`, me, body(ROOMS - 1, conn));
      await new Promise((r) => setTimeout(r, 200));
      const sent = performance.now();
      await call('PUT', `${C}/rooms/${encodeURIComponent(rooms[(run + 7) % rooms.length]!)}/send/m.room.message/w${++txn}`, other, { msgtype: 'm.text', body: 'wake' });
      await poll;
      wake.push(performance.now() - sent);
    }
    report(SUITE, `first request [0,19] of ${ROOMS} rooms`, median(first), 'ms');
    report(SUITE, `grow range to all ${ROOMS} rooms`, median(grow), 'ms');
    report(SUITE, 'incremental, nothing new', median(idle), 'ms');
    report(SUITE, 'incremental, one new message', median(oneMessage), 'ms');
    report(SUITE, 'long-poll wake: send to response', median(wake), 'ms');
  } finally {
    await close();
  }
}

await main();
