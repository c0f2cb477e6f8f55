import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { MatrixError } from '../../../src/errors.js';
import type { Keyring } from '../../../src/federation/keyring.js';
import { checkInviteRoomState, checkKnockRoomState, checkRoomState, federationRoomState } from '../../../src/federation/stripped-state.js';
import { addContentHash } from '../../../src/protocol/event-hash.js';
import { roomIdFromCreateEvent, withEventId } from '../../../src/protocol/event-id.js';
import { signEvent } from '../../../src/protocol/event-signing.js';
import type { Pdu, RoomEvent } from '../../../src/protocol/event.js';
import { getRoomVersion, type RoomVersion } from '../../../src/protocol/room-versions.js';
import { generateSigningKey, verifyJsonSignature } from '../../../src/protocol/signing.js';

const KEY = generateSigningKey('k1');
const OTHER = generateSigningKey('k1');
const log = pino({ level: 'silent' });

/** Knows one key: ed25519:k1 of there.example. */
const keyring = {
  async verifySignedJson(obj: object, server: string) {
    if (server === 'there.example' && verifyJsonSignature(obj, server, 'ed25519:k1', KEY.publicKey)) return { ok: true, keyId: 'ed25519:k1' };
    return { ok: false, reason: 'bad_signature', keyIds: [] };
  },
} as unknown as Keyring;

function build(version: RoomVersion, fields: Partial<Pdu>, key = KEY): RoomEvent {
  const pdu = {
    type: 'm.room.name',
    state_key: '',
    sender: '@alice:there.example',
    content: {},
    origin_server_ts: 1_700_000_000_000,
    prev_events: [],
    auth_events: [],
    depth: 1,
    ...(version.eventIdFormat === 'legacy' ? { event_id: `$${Math.random().toString(36).slice(2)}:there.example` } : {}),
    ...fields,
  } as unknown as Pdu;
  return withEventId(signEvent(addContentHash(pdu, version), version, 'there.example', key), version);
}

/** A room of `version`: its create event, name and join rules, as full PDUs. */
function room(version: RoomVersion) {
  const createFields: Partial<Pdu> = { type: 'm.room.create', content: { room_version: version.id, nonce: Math.random().toString(36) } as never };
  let roomId = `!${Math.random().toString(36).slice(2)}:there.example`;
  if (!version.roomIdIsCreateEventHash) (createFields as Record<string, unknown>)['room_id'] = roomId;
  const create = build(version, createFields);
  if (version.roomIdIsCreateEventHash) roomId = roomIdFromCreateEvent(create, version);
  const name = build(version, { room_id: roomId, content: { name: 'The room' } as never });
  const rules = build(version, { room_id: roomId, type: 'm.room.join_rules', content: { join_rule: 'invite' } as never });
  return { roomId, create, name, rules, state: federationRoomState([create, name, rules], version) };
}

const short = (ev: RoomEvent) => ({ type: ev.type, state_key: ev.state_key, sender: ev.sender, content: ev.content });

describe.each(['10', '12'])('invite and knock room state in room version %s', (id) => {
  const version = getRoomVersion(id)!;

  it('accepts full PDUs of the room and hands clients only the stripped form', async () => {
    const r = room(version);
    expect(r.state[0]).toHaveProperty('signatures');
    const checked = await checkRoomState(r.state, version, r.roomId, keyring);
    expect(checked.problems).toEqual([]);
    expect(checked.hasCreate).toBe(true);
    expect(checked.stripped).toEqual([short(r.create), short(r.name), short(r.rules)]);
    for (const s of checked.stripped) expect(Object.keys(s).sort()).toEqual(['content', 'sender', 'state_key', 'type']);
    expect(await checkInviteRoomState(r.state, version, r.roomId, keyring, log, 'there.example')).toEqual(checked.stripped);
  });

  it('drops entries of another room, with bad signatures or a wrong content hash', async () => {
    const r = room(version);
    const other = room(version);
    const forged = federationRoomState([build(version, { room_id: r.roomId, content: { name: 'forged' } as never }, OTHER)], version)[0]!;
    const tampered = { ...r.state[1]!, content: { name: 'changed' } };
    const foreignCreate = other.state[0]!;
    const checked = await checkRoomState([r.state[0], forged, tampered, foreignCreate, other.state[1], 'x'], version, r.roomId, keyring);
    expect(checked.stripped).toEqual([short(r.create)]);
    expect(checked.problems).toHaveLength(5);
    // Only the other room's create event: no create event of this room.
    expect((await checkRoomState([foreignCreate], version, r.roomId, keyring)).hasCreate).toBe(false);
  });

  it('knock room state: bad entries are dropped, never an error', async () => {
    const r = room(version);
    const other = room(version);
    const out = await checkKnockRoomState([other.state[0], r.state[1]], version, r.roomId, keyring, log, 'there.example');
    expect(out).toEqual([short(r.name)]);
  });

  if (!version.strictStrippedState) {
    it('accepts the short form older servers send, and invites without a create event (warned)', async () => {
      const r = room(version);
      const old = [short(r.create), short(r.name)];
      const checked = await checkRoomState(old, version, r.roomId, keyring);
      expect(checked.shortForm).toBe(2);
      expect(checked.stripped).toEqual(old);
      // Neither a create event nor valid entries: still accepted here, the bad one dropped.
      expect(await checkInviteRoomState([r.state[1], { ...r.state[2]!, content: {} }], version, r.roomId, keyring, log, 'there.example')).toEqual([short(r.name)]);
      expect(await checkInviteRoomState(undefined, version, r.roomId, keyring, log, 'there.example')).toEqual([]);
    });
  } else {
    it('refuses invites whose room state lacks the create event, is in the short form or fails the checks', async () => {
      const r = room(version);
      const err = async (raws: unknown) =>
        checkInviteRoomState(raws, version, r.roomId, keyring, log, 'there.example').then(
          () => undefined,
          (e: unknown) => (e instanceof MatrixError ? e.errcode : String(e)),
        );
      expect(await err([r.state[1]])).toBe('M_MISSING_PARAM');
      expect(await err(undefined)).toBe('M_MISSING_PARAM');
      expect(await err([short(r.create), short(r.name)])).toBe('M_INVALID_PARAM');
      expect(await err([...r.state, room(version).state[0]])).toBe('M_INVALID_PARAM');
      expect(await err([r.state[0], { ...r.state[1]!, content: { name: 'changed' } }])).toBe('M_INVALID_PARAM');
      expect(await err(r.state)).toBeUndefined();
      // The short form is not taken in knocks either.
      expect(await checkKnockRoomState([short(r.create), r.state[1]], version, r.roomId, keyring, log, 'there.example')).toEqual([short(r.name)]);
    });
  }
});
