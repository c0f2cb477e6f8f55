/**
 * Generates a big room on a server's data directory, for bench/suites/federation-big-join.ts:
 * run as its own process before the server starts, it opens the server (without listeners),
 * creates a public room with a local creator, then writes `members` join events and `messages`
 * message events through the event store in batches of `batch` events per transaction. Each
 * event is built as the server builds its own (prev_events = the previous event, auth events
 * from the room's state, hashed and signed with the server's key, checked against the auth
 * rules) and persisted with its state group, current state, membership row and extremities.
 * The push-rule evaluation position is moved past them (history, evaluated when it was sent).
 *   argv: dataDir serverName members messages [batch]
 */
import { Writable } from 'node:stream';
import { Myelin } from '../../src/app.js';
import { authorizeEvent } from '../../src/protocol/event-auth.js';
import { withEventId } from '../../src/protocol/event-id.js';
import { signEvent } from '../../src/protocol/event-signing.js';
import { stateKeyOf, type EventReference, type Pdu, type RoomEvent } from '../../src/protocol/event.js';
import type { JsonObject } from '../../src/protocol/json.js';
import { getRoomVersion } from '../../src/protocol/room-versions.js';
import { PushStore } from '../../src/storage/stores/push.js';

const [dataDir, serverName, membersArg, messagesArg, batchArg] = process.argv.slice(2);
const MEMBERS = Number(membersArg);
const MESSAGES = Number(messagesArg);
const BATCH = Number(batchArg ?? 500);

const quiet = new Writable({ write: (_c, _e, cb) => cb() });
const server = await Myelin.create({
  dataDir: dataDir!,
  env: {},
  logDestination: quiet,
  overrides: { server_name: serverName!, log_level: 'warn', database: { synchronous: 'NORMAL' } },
});
const ctx = server.ctx;
const t0 = performance.now();
const creator = `@alice:${serverName}`;
const { roomId } = await ctx.rooms.createRoom(creator, { preset: 'public_chat', name: 'big room' } as never);
const room = (await ctx.eventStore.getRoom(roomId))!;
const version = getRoomVersion(room.roomVersion)!;
const state = await ctx.eventStore.getCurrentState(roomId);
const get = (t: string, k = ''): RoomEvent => state.get(stateKeyOf(t, k))!;
const create = get('m.room.create');
const power = get('m.room.power_levels');
const joinRules = get('m.room.join_rules');
const creatorMember = get('m.room.member', creator);
let last = (await ctx.eventStore.getForwardExtremities(roomId))[0]!;
let lastEv = (await ctx.eventStore.getEvent(last))!.event;
let stateGroup = (await ctx.eventStore.getStateGroupOf(last))!;
let depth = lastEv.depth;
let ts = Date.now() - (MEMBERS + MESSAGES) * 10;
const ref = (ev: RoomEvent): EventReference => (version.eventFormat === 1 ? [ev.event_id, { sha256: ev.hashes.sha256 }] : ev.event_id);
const memberOf = new Map<string, RoomEvent>([[creator, creatorMember]]);

function build(type: string, sender: string, content: JsonObject, auth: RoomEvent[], stateKey?: string): RoomEvent {
  const pdu: Pdu = {
    room_id: roomId,
    type,
    sender,
    content,
    origin_server_ts: ts++,
    prev_events: [ref(lastEv)],
    auth_events: auth.filter((a) => version.eventFormat === 1 || a !== create || !version.roomIdIsCreateEventHash).map(ref),
    depth: ++depth,
    signatures: {},
  } as unknown as Pdu;
  if (stateKey !== undefined) pdu.state_key = stateKey;
  const event = withEventId(signEvent(pdu, version, serverName!, ctx.signingKey), version);
  const verdict = authorizeEvent(event, auth, version, { createEvent: create });
  if (!verdict.allowed) throw new Error(`generated event refused: ${verdict.reason}`);
  return event;
}

async function writeBatch(events: RoomEvent[]): Promise<void> {
  await ctx.database.transaction(async (tx) => {
    for (const event of events) {
      const r = await ctx.eventStore.persist(tx, { event, roomId, stateGroupBefore: stateGroup, prevStateEventId: null, updateCurrentState: true });
      stateGroup = r.stateGroup;
    }
  });
}

const total = MEMBERS + MESSAGES;
for (let done = 0; done < total; ) {
  const batch: RoomEvent[] = [];
  for (; batch.length < BATCH && done < total; done++) {
    let ev: RoomEvent;
    if (done < MEMBERS) {
      const user = `@member${done}:${serverName}`;
      ev = build('m.room.member', user, { membership: 'join', displayname: `member ${done}` }, [create, power, joinRules], user);
      memberOf.set(user, ev);
    } else {
      const i = done - MEMBERS;
      const sender = i % 10 === 0 ? creator : `@member${(i * 7919) % MEMBERS}:${serverName}`;
      ev = build('m.room.message', sender, { msgtype: 'm.text', body: `history message ${i}` }, [create, power, memberOf.get(sender)!]);
    }
    batch.push(ev);
    lastEv = ev;
    last = ev.event_id;
  }
  await writeBatch(batch);
}
// These events stand for history sent long ago, whose push rules were evaluated then: the
// server must not spend its first minutes evaluating them for every member.
await ctx.database.transaction(async (tx) => new PushStore(ctx.database).setProgress(tx, await ctx.eventStore.maxStreamOrdering(tx.db)));
const ms = performance.now() - t0;
await server.stop();
process.stdout.write(`${JSON.stringify({ roomId, ms })}\n`);
process.exit(0);
