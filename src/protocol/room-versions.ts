/**
 * Room versions are data: every "does this version ..." question is answered here,
 * never by comparing version strings elsewhere.
 */
export interface RoomVersion {
  readonly id: string;
  readonly stable: boolean;
  /** 1: v1/v2 (event_id carried, references are [id, hashes]); 2: v3–v11 (IDs are hashes); 3: v12 (room ID is create hash, create not in auth_events). */
  readonly eventFormat: 1 | 2 | 3;
  /** How event IDs are formed: `$random:server`, `$` + standard base64 of reference hash, or URL-safe base64. */
  readonly eventIdFormat: 'legacy' | 'base64' | 'urlsafe';
  /** State resolution algorithm. `v2.1` is v2 with the room v12 changes. */
  readonly stateResolution: 'v1' | 'v2' | 'v2.1';
  /** Redaction algorithm (which keys survive). */
  readonly redaction: 'v1' | 'v6' | 'v8' | 'v9' | 'v11';
  /** Signing keys must be valid at origin_server_ts (v5+). */
  readonly enforceKeyValidity: boolean;
  /** m.room.aliases has its own auth rule (v1–v5). */
  readonly specialCaseAliasesAuth: boolean;
  /** Canonical JSON rejects floats and out-of-range integers (v6+). */
  readonly strictCanonicalJson: boolean;
  /** `notifications` power levels are validated like the others (v6+). */
  readonly limitNotificationsPowerLevels: boolean;
  /** Redaction sender check is part of the auth rules (v1, v2) rather than of redaction handling (v3+). */
  readonly redactionInAuthRules: boolean;
  readonly knockJoinRule: boolean;
  readonly restrictedJoinRule: boolean;
  readonly knockRestrictedJoinRule: boolean;
  /** Power-level values must be integers, not strings (v10+). */
  readonly integerPowerLevels: boolean;
  /** The room creator is the create event's sender; `content.creator` is not used (v11+). */
  readonly implicitRoomCreator: boolean;
  /** `redacts` lives in `content` of m.room.redaction (v11+). */
  readonly redactsInContent: boolean;
  /** Creators (sender + additional_creators) have infinite power level (v12). */
  readonly privilegedCreators: boolean;
  /** Room ID is `!` + URL-safe reference hash of the create event (v12). */
  readonly roomIdIsCreateEventHash: boolean;
  /** Whether m.room.create is selected into auth_events (false in v12). */
  readonly createEventInAuthEvents: boolean;
  /**
   * Invite and knock room state over federation must be full PDUs of the room including its
   * m.room.create event, or the invite fails (spec v1.16); in older versions servers only warn
   * while peers migrate from the short form.
   */
  readonly strictStrippedState: boolean;
}

const v1: RoomVersion = {
  id: '1',
  stable: true,
  eventFormat: 1,
  eventIdFormat: 'legacy',
  stateResolution: 'v1',
  redaction: 'v1',
  enforceKeyValidity: false,
  specialCaseAliasesAuth: true,
  strictCanonicalJson: false,
  limitNotificationsPowerLevels: false,
  redactionInAuthRules: true,
  knockJoinRule: false,
  restrictedJoinRule: false,
  knockRestrictedJoinRule: false,
  integerPowerLevels: false,
  implicitRoomCreator: false,
  redactsInContent: false,
  privilegedCreators: false,
  roomIdIsCreateEventHash: false,
  createEventInAuthEvents: true,
  strictStrippedState: false,
};
const v2: RoomVersion = { ...v1, id: '2', stateResolution: 'v2' };
const v3: RoomVersion = { ...v2, id: '3', eventFormat: 2, eventIdFormat: 'base64', redactionInAuthRules: false };
const v4: RoomVersion = { ...v3, id: '4', eventIdFormat: 'urlsafe' };
const v5: RoomVersion = { ...v4, id: '5', enforceKeyValidity: true };
const v6: RoomVersion = {
  ...v5,
  id: '6',
  redaction: 'v6',
  specialCaseAliasesAuth: false,
  strictCanonicalJson: true,
  limitNotificationsPowerLevels: true,
};
const v7: RoomVersion = { ...v6, id: '7', knockJoinRule: true };
const v8: RoomVersion = { ...v7, id: '8', redaction: 'v8', restrictedJoinRule: true };
const v9: RoomVersion = { ...v8, id: '9', redaction: 'v9' };
const v10: RoomVersion = { ...v9, id: '10', knockRestrictedJoinRule: true, integerPowerLevels: true };
const v11: RoomVersion = { ...v10, id: '11', redaction: 'v11', implicitRoomCreator: true, redactsInContent: true };
const v12: RoomVersion = {
  ...v11,
  id: '12',
  eventFormat: 3,
  stateResolution: 'v2.1',
  privilegedCreators: true,
  roomIdIsCreateEventHash: true,
  createEventInAuthEvents: false,
  strictStrippedState: true,
};

export const ROOM_VERSIONS: ReadonlyMap<string, RoomVersion> = new Map(
  [v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12].map((v) => [v.id, Object.freeze(v)]),
);

export const DEFAULT_ROOM_VERSION = '12';

export function getRoomVersion(id: string): RoomVersion | undefined {
  return ROOM_VERSIONS.get(id);
}

export function isKnownRoomVersion(id: string): boolean {
  return ROOM_VERSIONS.has(id);
}
