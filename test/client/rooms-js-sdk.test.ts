/**
 * The real matrix-js-sdk, used the way a bot or Element uses it (createClient with a token,
 * startClient, ClientEvent.Sync, RoomEvent.Timeline), against a running server: rooms, invites,
 * DMs, chat, back-pagination through 500 messages, edits, reactions, threads, redactions and
 * long-poll wake-ups. No crypto.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ClientEvent,
  createClient,
  Direction,
  EventType,
  MatrixEventEvent,
  MsgType,
  Preset,
  RelationType,
  RoomEvent,
  RoomMemberEvent,
  SyncState,
  type MatrixClient,
  type MatrixEvent,
  type Room,
} from 'matrix-js-sdk';
import { logger } from 'matrix-js-sdk/lib/logger.js';
import type { Engine, TestServer } from '../_util/server.js';
import { startServer } from '../_util/server.js';
import { TEST_OVERRIDES, TestClient } from './_client.js';

// The SDK's logger is a loglevel logger; keep test output to errors.
(logger as unknown as { setLevel(level: string): void }).setLevel('error');

const C = '/_matrix/client/v3';
const WAIT_MS = 15_000;

interface User {
  userId: string;
  http: TestClient;
  client: MatrixClient;
}

/** Resolves with the first emitted value that satisfies `pred` (checking `now()` first, if given). */
function waitFor<T>(subscribe: (cb: (v: T) => void) => () => void, pred: (v: T) => boolean, what: string, now?: () => T | undefined): Promise<T> {
  return new Promise((resolve, reject) => {
    const current = now?.();
    if (current !== undefined && pred(current)) return resolve(current);
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out waiting for ${what}`));
    }, WAIT_MS);
    const off = subscribe((v) => {
      if (!pred(v)) return;
      clearTimeout(timer);
      off();
      resolve(v);
    });
  });
}

/** The next timeline event in any room of `client` matching `pred`. */
function timelineEvent(client: MatrixClient, pred: (ev: MatrixEvent, room: Room | undefined) => boolean, what: string): Promise<MatrixEvent> {
  return waitFor<[MatrixEvent, Room | undefined]>(
    (cb) => {
      const h = (ev: MatrixEvent, room: Room | undefined) => cb([ev, room]);
      client.on(RoomEvent.Timeline, h);
      return () => client.off(RoomEvent.Timeline, h);
    },
    ([ev, room]) => pred(ev, room),
    what,
  ).then(([ev]) => ev);
}

/** Waits until `check()` holds, re-checking whenever the client processes a sync. */
function untilSynced(client: MatrixClient, check: () => boolean, what: string): Promise<unknown> {
  return waitFor<unknown>(
    (cb) => {
      const h = () => cb(undefined);
      client.on(ClientEvent.Sync, h);
      client.on(RoomEvent.Timeline, h);
      client.on(RoomEvent.MyMembership, h);
      return () => {
        client.off(ClientEvent.Sync, h);
        client.off(RoomEvent.Timeline, h);
        client.off(RoomEvent.MyMembership, h);
      };
    },
    () => check(),
    what,
    () => (check() ? true : undefined),
  );
}

async function start(client: MatrixClient): Promise<void> {
  const prepared = waitFor<SyncState>(
    (cb) => {
      const h = (state: SyncState) => cb(state);
      client.on(ClientEvent.Sync, h);
      return () => client.off(ClientEvent.Sync, h);
    },
    (s) => s === SyncState.Prepared || s === SyncState.Syncing,
    'the first sync',
  );
  await client.startClient({ initialSyncLimit: 20, lazyLoadMembers: true });
  await prepared;
}

describe.each<Engine>(['sqlite', 'postgres'])('matrix-js-sdk rooms and sync on %s', (engine) => {
  let t: TestServer;
  let alice: User;
  let bob: User;
  let carol: User;
  const clients: MatrixClient[] = [];

  async function user(name: string): Promise<User> {
    const http = new TestClient(t.clientUrl);
    const reg = await http.register(name);
    const client = createClient({ baseUrl: t.clientUrl, accessToken: reg.access_token, userId: reg.user_id, deviceId: reg.device_id });
    clients.push(client);
    return { userId: reg.user_id, http, client };
  }

  beforeAll(async () => {
    t = await startServer({
      engine,
      // 500 messages in a few seconds: lift the per-user sending limit.
      overrides: { ...TEST_OVERRIDES, rate_limits: { ...TEST_OVERRIDES.rate_limits, message: { per_second: 10_000, burst: 10_000 } } },
      // The SDK will not start syncing without push rules; until the server serves them, an
      // empty rule set stands in.
      extend: (app, listener) => {
        if (listener !== 'client' || app.hasRoute({ method: 'GET', url: `${C}/pushrules/` })) return;
        app.get(`${C}/pushrules/`, async () => ({ global: {} }));
      },
    });
    alice = await user('alice');
    bob = await user('bob');
    carol = await user('carol');
    await Promise.all([start(alice.client), start(bob.client), start(carol.client)]);
  });
  afterAll(async () => {
    for (const c of clients) c.stopClient();
    await t?.close();
  });

  it('public room: create, join, chat, and see each other in sync', async () => {
    const { room_id: roomId } = await alice.client.createRoom({ preset: Preset.PublicChat, name: 'SDK lobby', topic: 'hello' });
    await untilSynced(alice.client, () => alice.client.getRoom(roomId)?.name === 'SDK lobby', 'alice to see her room');
    await bob.client.joinRoom(roomId);
    await untilSynced(bob.client, () => bob.client.getRoom(roomId)?.getMyMembership() === 'join', 'bob to be joined');
    await untilSynced(alice.client, () => alice.client.getRoom(roomId)?.getMember(bob.userId)?.membership === 'join', 'alice to see bob join');

    const seen = timelineEvent(alice.client, (ev, room) => room?.roomId === roomId && ev.getContent().body === 'hi from bob', 'bob\'s message');
    await bob.client.sendTextMessage(roomId, 'hi from bob');
    const ev = await seen;
    expect(ev.getSender()).toBe(bob.userId);
    expect(ev.getId()).toMatch(/^\$/);
    const room = bob.client.getRoom(roomId)!;
    expect(room.currentState.getStateEvents('m.room.topic', '')?.getContent().topic).toBe('hello');
    expect(room.getJoinedMemberCount()).toBe(2);
  });

  it("a room's summary, as Element previews a room it was sent a link to", async () => {
    const { room_id: roomId } = await alice.client.createRoom({ preset: Preset.PublicChat, name: 'Preview me', topic: 'about it', room_alias_name: 'preview-me' });
    const summary = await carol.client.getRoomSummary('#preview-me:localhost');
    expect(summary).toMatchObject({ room_id: roomId, name: 'Preview me', topic: 'about it', num_joined_members: 1, join_rule: 'public', canonical_alias: '#preview-me:localhost' });
    expect((await carol.client.getRoomSummary(roomId)).room_id).toBe(roomId);
    // A private room stays private.
    const { room_id: hidden } = await alice.client.createRoom({ name: 'Hidden' });
    await expect(carol.client.getRoomSummary(hidden)).rejects.toMatchObject({ httpStatus: 404 });
  });

  it('private room with an invite, and a DM marked is_direct', async () => {
    const { room_id: priv } = await alice.client.createRoom({ preset: Preset.PrivateChat, name: 'Private' });
    await untilSynced(alice.client, () => !!alice.client.getRoom(priv), 'alice to see the private room');
    await expect(carol.client.joinRoom(priv)).rejects.toMatchObject({ httpStatus: 403, errcode: 'M_FORBIDDEN' });
    await alice.client.invite(priv, carol.userId);
    await untilSynced(carol.client, () => carol.client.getRoom(priv)?.getMyMembership() === 'invite', 'carol to see the invite');
    expect(carol.client.getRoom(priv)!.name).toBe('Private');
    await carol.client.joinRoom(priv);
    await untilSynced(carol.client, () => carol.client.getRoom(priv)?.getMyMembership() === 'join', 'carol to join');

    const { room_id: dm } = await alice.client.createRoom({ preset: Preset.TrustedPrivateChat, is_direct: true, invite: [bob.userId] });
    await untilSynced(bob.client, () => bob.client.getRoom(dm)?.getMyMembership() === 'invite', 'bob to see the DM invite');
    expect(bob.client.getRoom(dm)!.getDMInviter()).toBe(alice.userId);
    await bob.client.joinRoom(dm);
    const hello = timelineEvent(bob.client, (ev, room) => room?.roomId === dm && ev.getContent().body === 'just us', 'the DM');
    await alice.client.sendTextMessage(dm, 'just us');
    await hello;

    await carol.client.leave(priv);
    await untilSynced(carol.client, () => carol.client.getRoom(priv)?.getMyMembership() === 'leave', 'carol to have left');
    await untilSynced(alice.client, () => alice.client.getRoom(priv)?.getMember(carol.userId)?.membership === 'leave', 'alice to see carol leave');
  });

  it('paginates back through 500 messages with scrollback and /messages', async () => {
    const { room_id: roomId } = await alice.client.createRoom({ preset: Preset.PublicChat, name: 'History' });
    const rid = encodeURIComponent(roomId);
    // Sent over plain HTTP with bounded concurrency: the SDK's local echo is not under test here.
    const N = 500;
    for (let i = 0; i < N; i += 10) {
      await Promise.all(
        Array.from({ length: 10 }, (_, j) => {
          const n = i + j;
          return alice.http.put(`${C}/rooms/${rid}/send/m.room.message/h${n}`, { msgtype: 'm.text', body: `history ${n}` });
        }),
      ).then((rs) => expect(rs.map((r) => r.status)).toEqual(rs.map(() => 200)));
    }
    // Bob joins afterwards: a lazy client that has to scroll back.
    await bob.client.joinRoom(roomId);
    await untilSynced(bob.client, () => bob.client.getRoom(roomId)?.getMyMembership() === 'join', 'bob to join History');
    const room = bob.client.getRoom(roomId)!;
    for (let page = 0; page < 40; page++) {
      const events = room.getLiveTimeline().getEvents();
      if (events.some((e) => e.getType() === EventType.RoomCreate)) break;
      await bob.client.scrollback(room, 50);
    }
    const bodies = room
      .getLiveTimeline()
      .getEvents()
      .filter((e) => e.getType() === EventType.RoomMessage)
      .map((e) => e.getContent().body as string);
    expect(new Set(bodies).size).toBe(N);
    expect(room.getLiveTimeline().getEvents()[0]!.getType()).toBe(EventType.RoomCreate);
    // Each batch of 10 is sent concurrently, so order is only fixed between batches.
    const batchOf = bodies.map((b) => Math.floor(Number(b.split(' ')[1]) / 10));
    expect([...batchOf].sort((a, b) => a - b)).toEqual(batchOf);

    // The raw /messages API, as a bot would page it.
    const seen: string[] = [];
    let from: string | null = null;
    for (let page = 0; page < 20; page++) {
      const res = await bob.client.createMessagesRequest(roomId, from, 100, Direction.Backward);
      seen.push(...res.chunk.filter((e) => e.type === EventType.RoomMessage).map((e) => e.content.body as string));
      if (!res.end) break;
      from = res.end;
    }
    expect(seen.length).toBe(N);
    expect(new Set(seen)).toEqual(new Set(bodies));
    expect(seen[0]).toBe(bodies[bodies.length - 1]);
  });

  it('edits, reactions, threads and redactions reach the other user', async () => {
    const { room_id: roomId } = await alice.client.createRoom({ preset: Preset.PublicChat });
    await bob.client.joinRoom(roomId);
    await untilSynced(alice.client, () => alice.client.getRoom(roomId)?.getMember(bob.userId)?.membership === 'join', 'bob in the room');

    const original = timelineEvent(bob.client, (ev, room) => room?.roomId === roomId && ev.getContent().body === 'tpyo', 'the original');
    const { event_id: origId } = await alice.client.sendTextMessage(roomId, 'tpyo');
    await original;

    const edit = timelineEvent(bob.client, (ev) => ev.getRelation()?.rel_type === RelationType.Replace, 'the edit');
    await alice.client.sendEvent(roomId, EventType.RoomMessage, {
      msgtype: MsgType.Text,
      body: '* typo',
      'm.new_content': { msgtype: MsgType.Text, body: 'typo' },
      'm.relates_to': { rel_type: RelationType.Replace, event_id: origId },
    });
    const editEv = await edit;
    expect(editEv.getRelation()?.event_id).toBe(origId);
    expect(editEv.getContent()['m.new_content']).toEqual({ msgtype: 'm.text', body: 'typo' });

    const reaction = timelineEvent(alice.client, (ev) => ev.getType() === EventType.Reaction, 'the reaction');
    await bob.client.sendEvent(roomId, EventType.Reaction, { 'm.relates_to': { rel_type: RelationType.Annotation, event_id: origId, key: '👍' } });
    const reactionEv = await reaction;
    expect(reactionEv.getRelation()).toMatchObject({ rel_type: 'm.annotation', key: '👍', event_id: origId });

    const threadReply = timelineEvent(alice.client, (ev) => ev.getRelation()?.rel_type === RelationType.Thread, 'the thread reply');
    // Sent as a client that falls back to a reply for thread-unaware clients does.
    const threadContent: Record<string, unknown> = {
      msgtype: MsgType.Text,
      body: 'in a thread',
      'm.relates_to': { rel_type: RelationType.Thread, event_id: origId, is_falling_back: true, 'm.in_reply_to': { event_id: origId } },
    };
    await bob.client.sendEvent(roomId, EventType.RoomMessage, threadContent as never);
    const threadEv = await threadReply;
    expect(threadEv.getRelation()?.event_id).toBe(origId);
    expect(threadEv.threadRootId).toBe(origId);

    // The server aggregates them: /relations lists the reaction, the thread and the edit.
    const annotations = await alice.client.relations(roomId, origId, RelationType.Annotation, EventType.Reaction);
    expect(annotations.events.map((e) => e.getId())).toEqual([reactionEv.getId()]);
    const thread = await alice.client.relations(roomId, origId, RelationType.Thread);
    expect(thread.events.map((e) => e.getId())).toEqual([threadEv.getId()]);
    const edits = await alice.client.relations(roomId, origId, RelationType.Replace);
    expect(edits.events.map((e) => e.getId())).toEqual([editEv.getId()]);

    const target = bob.client.getRoom(roomId)!.findEventById(origId)!;
    const redacted = waitFor<MatrixEvent>(
      (cb) => {
        const h = () => cb(target);
        target.on(MatrixEventEvent.BeforeRedaction, h);
        return () => target.off(MatrixEventEvent.BeforeRedaction, h);
      },
      () => true,
      'the redaction',
      () => (target.isRedacted() ? target : undefined),
    );
    await alice.client.redactEvent(roomId, origId, undefined, { reason: 'enough' });
    await redacted;
    await untilSynced(bob.client, () => target.isRedacted(), 'the event to be redacted');
    expect(target.getContent()).toEqual({});
    // The server serves it redacted too.
    const fetched = await bob.client.fetchRoomEvent(roomId, origId);
    expect(fetched.content).toEqual({});
    expect(fetched.unsigned?.redacted_because?.content).toMatchObject({ reason: 'enough' });
  });

  it('typing notifications and read receipts', async () => {
    const { room_id: roomId } = await alice.client.createRoom({ preset: Preset.PublicChat });
    await bob.client.joinRoom(roomId);
    await untilSynced(alice.client, () => alice.client.getRoom(roomId)?.getMember(bob.userId)?.membership === 'join', 'bob in the room');

    const typing = (on: boolean) =>
      untilSynced(alice.client, () => alice.client.getRoom(roomId)?.getMember(bob.userId)?.typing === on, `bob typing=${on}`);
    const memberTyping = waitFor<boolean>(
      (cb) => {
        const h = (_e: MatrixEvent, m: { userId: string; typing: boolean }) => m.userId === bob.userId && cb(m.typing);
        alice.client.on(RoomMemberEvent.Typing, h);
        return () => alice.client.off(RoomMemberEvent.Typing, h);
      },
      (v) => v,
      'RoomMemberEvent.Typing',
    );
    await bob.client.sendTyping(roomId, true, 20_000);
    await memberTyping;
    await typing(true);
    await bob.client.sendTyping(roomId, false, 0);
    await typing(false);

    const seen = timelineEvent(bob.client, (ev, room) => room?.roomId === roomId && ev.getContent().body === 'read me', 'the message to read');
    await alice.client.sendTextMessage(roomId, 'read me');
    const ev = await seen;
    const receipt = waitFor<unknown>(
      (cb) => {
        const h = () => cb(undefined);
        alice.client.on(RoomEvent.Receipt, h);
        return () => alice.client.off(RoomEvent.Receipt, h);
      },
      () => alice.client.getRoom(roomId)!.getUsersReadUpTo(alice.client.getRoom(roomId)!.findEventById(ev.getId()!)!).includes(bob.userId),
      'bob\'s read receipt',
    );
    await bob.client.sendReadReceipt(ev);
    await receipt;
    expect(alice.client.getRoom(roomId)!.getEventReadUpTo(bob.userId)).toBe(ev.getId());
  });

  it('a long-polling sync wakes promptly when the other user sends', async () => {
    const { room_id: roomId } = await alice.client.createRoom({ preset: Preset.PublicChat });
    await bob.client.joinRoom(roomId);
    await untilSynced(bob.client, () => bob.client.getRoom(roomId)?.getMyMembership() === 'join', 'bob in the room');
    // Let bob's client settle into a long poll (its pollTimeout is 30 s).
    await new Promise((r) => setTimeout(r, 500));
    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const got = timelineEvent(bob.client, (ev, room) => room?.roomId === roomId && ev.getContent().body === `ping ${i}`, `ping ${i}`);
      const sentAt = Date.now();
      await alice.http.put(`${C}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/ping${i}`, { msgtype: 'm.text', body: `ping ${i}` });
      await got;
      latencies.push(Date.now() - sentAt);
    }
    // Far below the 30 s poll timeout: the long poll returned because of the event.
    expect(Math.max(...latencies)).toBeLessThan(5000);
  });
});
