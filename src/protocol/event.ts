import type { JsonObject, JsonValue } from './json.js';

/** `{ "sha256": "<unpadded base64>" }` */
export interface EventHashes {
  sha256: string;
  [alg: string]: string;
}

/** server name -> key id -> unpadded base64 signature */
export type Signatures = Record<string, Record<string, string>>;

/**
 * A persistent data unit as it travels between servers.
 * Room v1/v2 events carry `event_id` and reference other events as `[id, hashes]` pairs;
 * v3+ reference by bare ID and have no `event_id`. v12 create events have no `room_id`.
 */
export interface Pdu {
  type: string;
  room_id?: string;
  sender: string;
  origin_server_ts: number;
  content: JsonObject;
  state_key?: string;
  prev_events: EventReference[];
  auth_events: EventReference[];
  depth: number;
  hashes: EventHashes;
  signatures: Signatures;
  unsigned?: JsonObject;
  redacts?: string;
  event_id?: string;
  [key: string]: JsonValue | undefined;
}

export type EventReference = string | [string, EventHashes];

/** A PDU whose event ID is known (computed for v3+, carried for v1/v2). */
export interface RoomEvent extends Pdu {
  event_id: string;
}

export function referenceId(ref: EventReference): string {
  return typeof ref === 'string' ? ref : ref[0];
}

export function prevEventIds(ev: Pick<Pdu, 'prev_events'>): string[] {
  return ev.prev_events.map(referenceId);
}

export function authEventIds(ev: Pick<Pdu, 'auth_events'>): string[] {
  return ev.auth_events.map(referenceId);
}

export function isStateEvent(ev: Pick<Pdu, 'state_key'>): boolean {
  return typeof ev.state_key === 'string';
}

/** Key of a state entry: type and state_key. */
export function stateKeyOf(type: string, stateKey: string): string {
  return JSON.stringify([type, stateKey]);
}

const MEMBER_KEY_START = stateKeyOf('m.room.member', '').slice(0, -3);

/** `stateKeyOf('m.room.member', userId)`, without building the array (hot in /sync). */
export function memberStateKey(userId: string): string {
  return MEMBER_KEY_START + JSON.stringify(userId) + ']';
}

export function parseStateKey(key: string): [string, string] {
  return JSON.parse(key) as [string, string];
}

/** A room state: (type, state_key) key -> event. */
export type StateMap<T = RoomEvent> = Map<string, T>;
