/**
 * The server's own cost of a message send after authentication (`RoomService.sendMessage`:
 * transaction-ID check, build, sign, authorise, push evaluation, group-committed write), without
 * HTTP and without long-polls: an in-process server on SQLite in a temp data directory, 100 users
 * in 10 rooms of 10 (MYELIN_BENCH_USERS), every user with one send in flight, for
 * MYELIN_BENCH_SECONDS (default 5) after a 1 s warm-up. Reports the main thread's CPU per message
 * (process CPU time over the phase: the disk sync runs on libuv's pool, so that is included too)
 * and messages/s, and the main thread's busy time per message (event-loop utilisation: work moved
 * to other threads, such as signing, leaves it).
 *
 *   npx tsx bench/suites/send-path.ts
 *   MYELIN_BENCH_CPU_PROF=file.cpuprofile npx tsx bench/suites/send-path.ts   (profile of the measured phase)
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { jsonCaller, startInProcessServer } from '../lib/in-process-server.js';
import { report } from '../report.js';

const SUITE = 'send-path';
const USERS = Number(process.env.MYELIN_BENCH_USERS ?? 100);
const PER_ROOM = 10;
const SECONDS = Number(process.env.MYELIN_BENCH_SECONDS ?? 5);
const C = '/_matrix/client/v3';


async function main(): Promise<void> {
  const { server, base, close } = await startInProcessServer('send');
  try {
    const call = jsonCaller(base);
    const users: Array<{ userId: string; deviceId: string; token: string; roomId: string }> = [];
    let roomId = '';
    for (let i = 0; i < USERS; i++) {
      const username = `u${i}`;
      const first = await call('POST', `${C}/register`, undefined, { username, password: 'bench password' });
      const done = await call('POST', `${C}/register`, undefined, { username, password: 'bench password', auth: { type: 'm.login.dummy', session: first.session } });
      const token = done.access_token as string;
      if (i % PER_ROOM === 0) roomId = (await call('POST', `${C}/createRoom`, token, { preset: 'public_chat' })).room_id as string;
      else await call('POST', `${C}/join/${encodeURIComponent(roomId)}`, token, {});
      users.push({ userId: done.user_id as string, deviceId: done.device_id as string, token, roomId });
    }
    const rooms = server.ctx.rooms;
    let stop = false;
    let sent = 0;
    let txn = 0;
    const loop = async (u: (typeof users)[number]) => {
      while (!stop) {
        await rooms.sendMessage(u.userId, u.roomId, 'm.room.message', { msgtype: 'm.text', body: `message ${txn} sent at ${Date.now()}` }, { deviceId: u.deviceId, txnId: `t${++txn}` });
        sent++;
      }
    };
    const loops = users.map(loop);
    await new Promise((r) => setTimeout(r, 1000));
    const profFile = process.env.MYELIN_BENCH_CPU_PROF;
    const session = profFile ? new Session() : undefined;
    if (session) {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    }
    const cpu0 = process.cpuUsage();
    const elu0 = performance.eventLoopUtilization();
    const n0 = sent;
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const cpu = process.cpuUsage(cpu0);
    const elu = performance.eventLoopUtilization(elu0);
    const n = sent - n0;
    const wall = performance.now() - t0;
    if (session) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(profFile!, JSON.stringify(profile));
      session.disconnect();
    }
    stop = true;
    await Promise.all(loops);
    report(SUITE, 'messages/s (100 senders, one send in flight each)', (n * 1000) / wall, 'msg/s');
    report(SUITE, 'CPU per message (all threads)', (cpu.user + cpu.system) / 1000 / n, 'ms');
    report(SUITE, 'main thread busy per message (event loop utilisation)', elu.active / n, 'ms');
  } finally {
    await close();
  }
}

await main();
