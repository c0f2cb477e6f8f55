/**
 * Content hashes and reference hashes of events (server-server-api "Calculating the content
 * hash for an event", "Calculating the reference hash for an event").
 *
 * For room versions whose event IDs are hashes (v3+), `event_id` is not part of the PDU: when
 * a version is given and the event carries one (e.g. a stored `RoomEvent`), it is left out.
 */
import { createHash } from 'node:crypto';
import { decodeBase64, encodeBase64 } from './base64.js';
import { canonicalJson } from './canonical-json.js';
import type { Pdu } from './event.js';
import { redactEvent } from './redaction.js';
import type { RoomVersion } from './room-versions.js';

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** The PDU as it travels over federation: without a carried `event_id` in hash-ID versions. */
export function federationForm<T extends object>(pdu: T, version?: RoomVersion): T {
  if (!version || version.eventIdFormat === 'legacy' || !Object.prototype.hasOwnProperty.call(pdu, 'event_id')) return pdu;
  const copy = { ...(pdu as Record<string, unknown>) };
  delete copy['event_id'];
  return copy as T;
}

/** SHA-256 over canonical JSON of the event minus `unsigned`, `signatures` and `hashes`. */
export function contentHashBytes(pdu: object, version?: RoomVersion): Buffer {
  const copy = { ...(federationForm(pdu, version) as Record<string, unknown>) };
  delete copy['unsigned'];
  delete copy['signatures'];
  delete copy['hashes'];
  return sha256(canonicalJson(copy));
}

/** The content hash as unpadded base64 (the value of `hashes.sha256`). */
export function computeContentHash(pdu: object, version?: RoomVersion): string {
  return encodeBase64(contentHashBytes(pdu, version));
}

/** A copy of `pdu` with `hashes` set to `{ sha256: <content hash> }`. */
export function addContentHash<T extends Pdu>(pdu: T, version?: RoomVersion): T {
  return { ...pdu, hashes: { sha256: computeContentHash(pdu, version) } };
}

/** Whether `hashes.sha256` matches the event's content. False when absent or malformed. */
export function checkContentHash(pdu: object, version?: RoomVersion): boolean {
  const hashes = (pdu as { hashes?: unknown }).hashes;
  if (!hashes || typeof hashes !== 'object') return false;
  const claimed = (hashes as Record<string, unknown>)['sha256'];
  if (typeof claimed !== 'string') return false;
  let bytes: Buffer;
  try {
    bytes = decodeBase64(claimed);
  } catch {
    return false;
  }
  let actual: Buffer;
  try {
    actual = contentHashBytes(pdu, version);
  } catch {
    return false;
  }
  return bytes.length === actual.length && bytes.equals(actual);
}

/**
 * The reference hash: SHA-256 over canonical JSON of the redacted event minus `signatures`,
 * `unsigned` (and `age_ts`, which old servers put at the top level).
 */
export function computeReferenceHash(pdu: object, version: RoomVersion): Uint8Array {
  const redacted = { ...(redactEvent(federationForm(pdu, version), version) as Record<string, unknown>) };
  delete redacted['signatures'];
  delete redacted['unsigned'];
  delete redacted['age_ts'];
  return new Uint8Array(sha256(canonicalJson(redacted)));
}
