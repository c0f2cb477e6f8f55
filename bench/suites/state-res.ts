/**
 * State resolution of a large room: v11 and v12 rooms with 10,000 and 50,000 members,
 * two forks of 1,000 conflicting state events each (membership changes, kicks/bans,
 * power-level changes, topic and name), resolved in memory.
 *
 * Reports the median of 3 timed resolutions (wall clock, and process CPU time, which
 * is steadier on a shared machine), and in a separate sampled run the peak
 * heap during resolution (sampled from the event source and the authoriser every few
 * hundred calls) as the total heap and as the increase over the heap before it.
 */
import { authEventKeysFor } from '../../src/protocol/auth-events.js';
import { authorizeEvent } from '../../src/protocol/event-auth.js';
import { stateKeyOf, type RoomEvent } from '../../src/protocol/event.js';
import type { JsonObject } from '../../src/protocol/json.js';
import { getRoomVersion, type RoomVersion } from '../../src/protocol/room-versions.js';
import { resolveState, type EventSource } from '../../src/protocol/state-res/index.js';
import { median, report } from '../report.js';

const SUITE = 'state-res';
const gc = (globalThis as { gc?: () => void }).gc;

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

type State = Map<string, string>;

class Room {
  readonly events = new Map<string, RoomEvent>();
  readonly roomId: string;
  private n = 0;
  constructor(readonly version: RoomVersion) {
    this.roomId = version.roomIdIsCreateEventHash ? '!create' : '!room:bench';
  }

  send(state: State, type: string, sender: string, stateKey: string, content: JsonObject, ts: number, name?: string): string {
    const id = name ?? `$e${++this.n}`;
    const auth: string[] = [];
    for (const [t, k] of authEventKeysFor({ type, sender, state_key: stateKey, content }, this.version)) {
      const a = state.get(stateKeyOf(t, k));
      if (a !== undefined) auth.push(a);
    }
    const ev: RoomEvent = {
      event_id: id,
      type,
      sender,
      state_key: stateKey,
      content,
      origin_server_ts: ts,
      depth: this.n,
      prev_events: [],
      auth_events: auth,
      hashes: { sha256: '' },
      signatures: {},
    };
    if (!(type === 'm.room.create' && this.version.roomIdIsCreateEventHash)) ev.room_id = this.roomId;
    this.events.set(id, ev);
    state.set(stateKeyOf(type, stateKey), id);
    return id;
  }
}

const MODS = 20;
const alice = '@alice:bench';
const mod = (i: number) => `@mod${i}:bench`;
const user = (i: number) => `@u${i}:bench`;

function buildRoom(version: RoomVersion, members: number): { room: Room; forks: State[] } {
  const room = new Room(version);
  const s: State = new Map();
  let ts = 1;
  const createContent: JsonObject = { room_version: version.id };
  room.send(s, 'm.room.create', alice, '', createContent, ts++, '$create');
  room.send(s, 'm.room.member', alice, alice, { membership: 'join' }, ts++);
  const baseUsers: Record<string, number> = version.privilegedCreators ? {} : { [alice]: 100 };
  for (let i = 0; i < MODS; i++) baseUsers[mod(i)] = 50;
  room.send(s, 'm.room.power_levels', alice, '', { users: baseUsers }, ts++);
  room.send(s, 'm.room.join_rules', alice, '', { join_rule: 'public' }, ts++);
  for (let i = 0; i < MODS; i++) room.send(s, 'm.room.member', mod(i), mod(i), { membership: 'join' }, ts++);
  for (let i = 0; i < members - MODS; i++) room.send(s, 'm.room.member', user(i), user(i), { membership: 'join' }, ts++);
  room.send(s, 'm.room.topic', alice, '', { topic: 'base' }, ts++);
  room.send(s, 'm.room.name', alice, '', { name: 'base' }, ts++);

  const forks: State[] = [];
  for (let f = 0; f < 2; f++) {
    const rand = rng(0x5eed + f * 7919);
    const st = new Map(s);
    const plUsers = { ...baseUsers };
    const gone = new Set<number>();
    const pickMember = (): number => {
      for (let tries = 0; tries < 20; tries++) {
        const i = Math.floor(rand() * (members - MODS));
        if (!gone.has(i)) return i;
      }
      return Math.floor(rand() * (members - MODS));
    };
    const randomMod = () => mod(Math.floor(rand() * MODS));
    for (let k = 0; k < 1000; k++) {
      const t = ts + k * 2 + f;
      const r = rand();
      if (r < 0.3) {
        const i = pickMember();
        gone.add(i);
        room.send(st, 'm.room.member', user(i), user(i), { membership: 'leave' }, t);
      } else if (r < 0.4) {
        const i = pickMember();
        gone.add(i);
        room.send(st, 'm.room.member', randomMod(), user(i), { membership: 'leave' }, t);
      } else if (r < 0.45) {
        const i = pickMember();
        gone.add(i);
        room.send(st, 'm.room.member', alice, user(i), { membership: 'ban' }, t);
      } else if (r < 0.55) {
        const u = `@new${f}-${k}:bench`;
        room.send(st, 'm.room.member', u, u, { membership: 'join' }, t);
      } else if (r < 0.62) {
        plUsers[randomMod()] = rand() < 0.5 ? 0 : 50;
        room.send(st, 'm.room.power_levels', alice, '', { users: { ...plUsers } }, t);
      } else if (r < 0.81) {
        room.send(st, 'm.room.topic', randomMod(), '', { topic: `topic ${f}/${k}` }, t);
      } else {
        room.send(st, 'm.room.name', randomMod(), '', { name: `name ${f}/${k}` }, t);
      }
    }
    forks.push(st);
  }
  return { room, forks };
}

function heapUsed(): number {
  return process.memoryUsage().heapUsed;
}

for (const vid of ['11', '12']) {
  const version = getRoomVersion(vid)!;
  for (const members of [10_000, 50_000]) {
    const { room, forks } = buildRoom(version, members);
    const label = `v${vid} ${members / 1000}k members, 2x1000 conflicting`;
    const source: EventSource = { getEvent: (id) => room.events.get(id) };

    const times: number[] = [];
    const cpuTimes: number[] = [];
    let resolved: Map<string, string> | undefined;
    for (let run = 0; run < 3; run++) {
      gc?.();
      const cpu = process.cpuUsage();
      const start = performance.now();
      resolved = resolveState(version, forks, source);
      times.push(performance.now() - start);
      const used = process.cpuUsage(cpu);
      cpuTimes.push((used.user + used.system) / 1000);
    }

    // Sampled run for the heap peak.
    gc?.();
    const before = heapUsed();
    let peak = before;
    let calls = 0;
    const sample = () => {
      if (++calls % 256 === 0) peak = Math.max(peak, heapUsed());
    };
    const sampled: EventSource = {
      getEvent: (id) => {
        sample();
        return room.events.get(id);
      },
    };
    const out = resolveState(version, forks, sampled, {
      authorize: (ev, auth, v) => {
        sample();
        return authorizeEvent(ev, auth, v).allowed;
      },
    });
    peak = Math.max(peak, heapUsed());

    if (out.size !== resolved!.size) throw new Error('sampled run disagrees');
    const changedA = [...out].filter(([k, v]) => forks[0]!.get(k) !== v).length;
    const changedB = [...out].filter(([k, v]) => forks[1]!.get(k) !== v).length;
    console.error(`${label}: ${out.size} entries; differs from fork A in ${changedA}, fork B in ${changedB}`);

    report(SUITE, `${label}: resolve (median of 3)`, median(times), 'ms');
    report(SUITE, `${label}: resolve CPU time (median of 3)`, median(cpuTimes), 'ms');
    report(SUITE, `${label}: peak heap during resolve`, peak / 1048576, 'MB');
    report(SUITE, `${label}: heap increase during resolve`, (peak - before) / 1048576, 'MB');
  }
}
