/**
 * Small in-memory room DAG builder for state resolution tests. Event IDs are
 * chosen by the test (ordering tie-breaks use them); auth events are selected from
 * the state the event is sent on; `origin_server_ts` and `depth` increase with every
 * event unless given.
 */
import { authEventKeysFor } from '../../../src/protocol/auth-events.js';
import { stateKeyOf, type RoomEvent } from '../../../src/protocol/event.js';
import type { JsonObject } from '../../../src/protocol/json.js';
import type { RoomVersion } from '../../../src/protocol/room-versions.js';
import type { EventSource } from '../../../src/protocol/state-res/index.js';

export type State = Map<string, string>;

export interface SendOptions {
  ts?: number;
  depth?: number;
  /** Explicit auth event IDs instead of the selection from the state. */
  auth?: string[];
}

export const member = (user: string): string => stateKeyOf('m.room.member', user);
export const PL = stateKeyOf('m.room.power_levels', '');
export const JR = stateKeyOf('m.room.join_rules', '');
export const TOPIC = stateKeyOf('m.room.topic', '');
export const CREATE = stateKeyOf('m.room.create', '');

export class RoomBuilder implements EventSource {
  readonly events = new Map<string, RoomEvent>();
  readonly roomId: string;
  private clock = 0;

  constructor(
    readonly version: RoomVersion,
    readonly idPrefix = '$',
  ) {
    this.roomId = version.roomIdIsCreateEventHash ? '!create' : '!room:x';
  }

  getEvent(id: string): RoomEvent | undefined {
    return this.events.get(id);
  }

  id(name: string): string {
    if (name === 'create') return '$create';
    return this.version.eventFormat === 1 ? `$${name}:x` : `${this.idPrefix}${name}`;
  }

  /** Sends a state event on `state` and returns the state after it. */
  send(
    state: State,
    name: string,
    type: string,
    sender: string,
    stateKey: string,
    content: JsonObject,
    opts: SendOptions = {},
  ): State {
    const ev = this.make(state, name, type, sender, stateKey, content, opts);
    const next = new Map(state);
    next.set(stateKeyOf(type, stateKey), ev.event_id);
    return next;
  }

  make(
    state: State,
    name: string,
    type: string,
    sender: string,
    stateKey: string,
    content: JsonObject,
    opts: SendOptions = {},
  ): RoomEvent {
    const eventId = this.id(name);
    if (this.events.has(eventId)) throw new Error(`duplicate event ${eventId}`);
    this.clock++;
    let auth: string[];
    if (opts.auth) {
      auth = opts.auth.map((n) => (n.startsWith('$') ? n : this.id(n)));
    } else {
      auth = [];
      for (const [t, k] of authEventKeysFor({ type, sender, state_key: stateKey, content }, this.version)) {
        const id = state.get(stateKeyOf(t, k));
        if (id !== undefined) auth.push(id);
      }
    }
    const ev: RoomEvent = {
      event_id: eventId,
      type,
      sender,
      state_key: stateKey,
      content,
      origin_server_ts: opts.ts ?? this.clock * 1000,
      depth: opts.depth ?? this.clock,
      prev_events: [],
      auth_events: this.version.eventFormat === 1 ? auth.map((a) => [a, { sha256: '' }]) : auth,
      hashes: { sha256: '' },
      signatures: {},
    };
    if (!(type === 'm.room.create' && this.version.roomIdIsCreateEventHash)) ev.room_id = this.roomId;
    this.events.set(eventId, ev);
    return ev;
  }

  /** create (alice), alice joins, power levels, public join rules, then the given users join. */
  base(users: string[] = [], opts: { plUsers?: Record<string, number>; createContent?: JsonObject } = {}): State {
    const alice = '@alice:x';
    const createContent: JsonObject = { room_version: this.version.id, ...(opts.createContent ?? {}) };
    if (!this.version.implicitRoomCreator) createContent['creator'] = alice;
    let s: State = this.send(new Map(), 'create', 'm.room.create', alice, '', createContent);
    s = this.send(s, 'alice-join', 'm.room.member', alice, alice, { membership: 'join' });
    const plUsers: Record<string, number> = this.version.privilegedCreators ? {} : { [alice]: 100 };
    Object.assign(plUsers, opts.plUsers ?? {});
    s = this.send(s, 'pl0', 'm.room.power_levels', alice, '', { users: plUsers });
    s = this.send(s, 'jr-public', 'm.room.join_rules', alice, '', { join_rule: 'public' });
    for (const u of users) s = this.join(s, u);
    return s;
  }

  join(state: State, user: string, name = `join-${user.slice(1, user.indexOf(':'))}`): State {
    return this.send(state, name, 'm.room.member', user, user, { membership: 'join' });
  }

  powerLevels(state: State, name: string, sender: string, users: Record<string, number>, opts: SendOptions = {}): State {
    return this.send(state, name, 'm.room.power_levels', sender, '', { users }, opts);
  }

  topic(state: State, name: string, sender: string, topic: string, opts: SendOptions = {}): State {
    return this.send(state, name, 'm.room.topic', sender, '', { topic }, opts);
  }
}

/** Resolved state as sorted `[key, event name]` pairs for readable assertions. */
export function entries(state: ReadonlyMap<string, string>): [string, string][] {
  return [...state].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
