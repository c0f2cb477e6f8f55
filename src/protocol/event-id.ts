/**
 * Event IDs (rooms/fragments/v1-event-ids.md, v3 "Event IDs", v4-event-ids.md) and the
 * room v12 room ID rule (the room ID is `!` + URL-safe reference hash of the create event).
 */
import { createHash } from 'node:crypto';
import { encodeBase64, encodeBase64Url } from './base64.js';
import type { Pdu, RoomEvent } from './event.js';
import { computeReferenceHash } from './event-hash.js';
import type { RoomVersion } from './room-versions.js';

export class EventIdError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EventIdError';
  }
}

/**
 * The event ID of `pdu` under `version`: v1/v2 carry it in `event_id` (throws if missing);
 * v3 uses `$` + standard unpadded base64 of the reference hash; v4+ URL-safe base64.
 */
export function computeEventId(pdu: Pdu, version: RoomVersion): string {
  switch (version.eventIdFormat) {
    case 'legacy': {
      const id = pdu.event_id;
      if (typeof id !== 'string' || id === '') {
        throw new EventIdError(`room version ${version.id} events must carry an event_id`);
      }
      return id;
    }
    case 'base64':
      return '$' + encodeBase64(computeReferenceHash(pdu, version));
    case 'urlsafe':
      return '$' + encodeBase64Url(computeReferenceHash(pdu, version));
  }
}

/**
 * A v1/v2 event ID `$<localpart>:<server>`. The caller supplies the unique localpart
 * (e.g. from its own random source); nothing here is random.
 */
export function generateLegacyEventId(localpart: string, serverName: string): string {
  if (localpart === '' || localpart.includes(':')) throw new EventIdError('event ID localpart must be non-empty and contain no ":"');
  const id = `$${localpart}:${serverName}`;
  if (Buffer.byteLength(id, 'utf8') > 255) throw new EventIdError('event ID exceeds 255 bytes');
  return id;
}

/** Room ID of a v12+ room: `!` + URL-safe unpadded base64 of the create event's reference hash. */
export function roomIdFromCreateEvent(createPdu: Pdu, version: RoomVersion): string {
  if (!version.roomIdIsCreateEventHash) {
    throw new EventIdError(`room version ${version.id} room IDs are not derived from the create event`);
  }
  if (createPdu.type !== 'm.room.create') throw new EventIdError('not an m.room.create event');
  return '!' + encodeBase64Url(computeReferenceHash(createPdu, version));
}

/**
 * The event ID of a hashed event under `version`, given `signable` — canonical JSON of its
 * redacted form without `signatures`/`unsigned` (`prepareEventSignature`), which is exactly
 * what the reference hash covers — so the event need not be redacted and encoded again.
 */
export function eventIdFromSignable(pdu: Pdu, signable: string, version: RoomVersion): string {
  if (version.eventIdFormat === 'legacy') return computeEventId(pdu, version);
  const hash = createHash('sha256').update(signable, 'utf8').digest();
  return '$' + (version.eventIdFormat === 'base64' ? encodeBase64(hash) : encodeBase64Url(hash));
}

/** A copy of `pdu` with its `event_id` set (computed for v3+, checked present for v1/v2). */
export function withEventId(pdu: Pdu, version: RoomVersion): RoomEvent {
  return { ...pdu, event_id: computeEventId(pdu, version) };
}
