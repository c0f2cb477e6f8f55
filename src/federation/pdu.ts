/**
 * Checks on a PDU received from another server (server-server-api "Checks performed on
 * receipt of a PDU", steps 1–3): format and size, signatures of every required server (with
 * the keys valid at origin_server_ts where the room version says so), the content hash
 * (a mismatch redacts the event).
 */
import { roomIdFromCreateEvent, withEventId } from '../protocol/event-id.js';
import { checkContentHash, federationForm } from '../protocol/event-hash.js';
import { checkEventJson, requiredSignatureServers } from '../protocol/event-signing.js';
import type { Pdu, RoomEvent } from '../protocol/event.js';
import { isValidEventId, isValidUserId } from '../protocol/identifiers.js';
import { isJsonObject, type JsonObject } from '../protocol/json.js';
import { redactEvent } from '../protocol/redaction.js';
import type { RoomVersion } from '../protocol/room-versions.js';
import { verifyJsonSignature } from '../protocol/signing.js';
import type { Keyring } from './keyring.js';

/** Events over 64 KiB are refused (server-server-api "Size limits"). */
export const MAX_PDU_BYTES = 65536;

export class PduError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PduError';
  }
}

export interface CheckedPdu {
  event: RoomEvent;
  /** The content hash did not match: `event` is the redacted form. */
  redacted: boolean;
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

/** Format checks; throws PduError. `roomId` is the room the PDU must belong to. */
export function checkPduFormat(raw: unknown, version: RoomVersion, roomId: string): Pdu {
  if (!isJsonObject(raw)) throw new PduError('PDU is not a JSON object');
  const pdu = { ...raw } as JsonObject;
  delete pdu['unsigned'];
  const size = Buffer.byteLength(JSON.stringify(raw), 'utf8');
  if (size > MAX_PDU_BYTES) throw new PduError(`PDU is ${size} bytes; the limit is ${MAX_PDU_BYTES}`);
  const jsonErr = checkEventJson(pdu, version);
  if (jsonErr) throw new PduError(`PDU is not valid canonical JSON: ${jsonErr.message}`);
  if (typeof pdu['type'] !== 'string' || pdu['type'] === '') throw new PduError('PDU has no type');
  if (typeof pdu['sender'] !== 'string' || !isValidUserId(pdu['sender'], { historical: true })) throw new PduError('PDU has an invalid sender');
  if (!isInt(pdu['origin_server_ts'])) throw new PduError('PDU has no origin_server_ts');
  if (!isJsonObject(pdu['content'])) throw new PduError('PDU content is not an object');
  if (!isInt(pdu['depth']) || (pdu['depth'] as number) < 0) throw new PduError('PDU has an invalid depth');
  if (!isJsonObject(pdu['hashes'])) throw new PduError('PDU has no hashes');
  if (!isJsonObject(pdu['signatures'])) throw new PduError('PDU has no signatures');
  if ('state_key' in pdu && typeof pdu['state_key'] !== 'string') throw new PduError('PDU state_key is not a string');
  for (const field of ['prev_events', 'auth_events'] as const) {
    const refs = pdu[field];
    if (!Array.isArray(refs)) throw new PduError(`PDU ${field} is not an array`);
    for (const r of refs) {
      const id = version.eventFormat === 1 ? (Array.isArray(r) && isJsonObject(r[1]) ? r[0] : undefined) : r;
      if (typeof id !== 'string' || !isValidEventId(id)) throw new PduError(`PDU ${field} has an invalid reference`);
    }
  }
  const isV12Create = pdu['type'] === 'm.room.create' && version.roomIdIsCreateEventHash;
  if (isV12Create) {
    if ('room_id' in pdu) throw new PduError('a create event of this room version has no room_id');
    if (roomIdFromCreateEvent(pdu as unknown as Pdu, version) !== roomId) throw new PduError('create event does not match the room ID');
  } else if (pdu['room_id'] !== roomId) {
    throw new PduError('PDU is for another room');
  }
  if (version.eventIdFormat === 'legacy') {
    if (typeof pdu['event_id'] !== 'string' || !isValidEventId(pdu['event_id'])) throw new PduError('PDU has no event_id');
  } else {
    delete pdu['event_id'];
  }
  return pdu as unknown as Pdu;
}

/** Whether every required server signed the event (by a key valid at its timestamp where required). */
export async function checkPduSignatures(pdu: Pdu, version: RoomVersion, keyring: Keyring): Promise<string | undefined> {
  const redacted = redactEvent(federationForm(pdu, version), version);
  for (const server of requiredSignatureServers(pdu, version)) {
    const check = await keyring.verifySignedJson(redacted, server, { atTs: version.enforceKeyValidity ? pdu.origin_server_ts : undefined });
    if (!check.ok) return `signature of ${server}: ${check.reason}`;
  }
  return undefined;
}

/** Format, signatures and content hash. Throws PduError when the PDU must be dropped. */
export async function checkPdu(raw: unknown, version: RoomVersion, roomId: string, keyring: Keyring): Promise<CheckedPdu> {
  const pdu = checkPduFormat(raw, version, roomId);
  const sigErr = await checkPduSignatures(pdu, version, keyring);
  if (sigErr) throw new PduError(`Bad signature (${sigErr})`);
  const event = withEventId(pdu, version);
  if (checkContentHash(pdu, version)) return { event, redacted: false };
  const redacted = redactEvent(event, version) as RoomEvent;
  redacted.event_id = event.event_id;
  return { event: redacted, redacted: true };
}

/**
 * Checks a batch of PDUs like checkPdu, each on its own merits, with the signing keys looked up
 * once per server and key ID for the whole batch (valid at the latest timestamp of the batch
 * where the room version enforces validity), then every signature verified in one pass. An
 * event whose key does not cover its timestamp that way is checked alone. Returns, in order,
 * the checked event or the PduError that drops it.
 */
export async function checkPduBatch(raws: readonly unknown[], version: RoomVersion, roomId: string, keyring: Keyring): Promise<Array<CheckedPdu | PduError>> {
  const out: Array<CheckedPdu | PduError> = new Array(raws.length);
  const items: Array<{ i: number; pdu: Pdu; redacted: JsonObject; servers: string[] }> = [];
  const wanted = new Map<string, { server: string; keyId: string; atTs: number | undefined }>();
  for (let i = 0; i < raws.length; i++) {
    let pdu: Pdu;
    try {
      pdu = checkPduFormat(raws[i], version, roomId);
    } catch (err) {
      out[i] = err instanceof PduError ? err : new PduError(String(err));
      continue;
    }
    const redacted = redactEvent(federationForm(pdu, version), version) as JsonObject;
    const servers = requiredSignatureServers(pdu, version);
    const sigs = isJsonObject(redacted['signatures']) ? redacted['signatures'] : {};
    for (const server of servers) {
      const byServer = sigs[server];
      for (const keyId of isJsonObject(byServer) ? Object.keys(byServer) : []) {
        if (!keyId.startsWith('ed25519:')) continue;
        const k = `${server}\u0000${keyId}`;
        const atTs = version.enforceKeyValidity ? pdu.origin_server_ts : undefined;
        const w = wanted.get(k);
        if (!w) wanted.set(k, { server, keyId, atTs });
        else if (atTs !== undefined && (w.atTs === undefined || atTs > w.atTs)) w.atTs = atTs;
      }
    }
    items.push({ i, pdu, redacted, servers });
  }
  // One key lookup per server and key ID (fetched from the server when unknown).
  const keys = new Map<string, Uint8Array>();
  for (const [k, w] of wanted) {
    const info = await keyring.getKeyInfo(w.server, w.keyId, { atTs: w.atTs });
    if (info) keys.set(k, info.publicKey);
  }
  for (const { i, pdu, redacted, servers } of items) {
    let sigErr: string | undefined;
    let alone = false;
    const sigs = isJsonObject(redacted['signatures']) ? redacted['signatures'] : {};
    for (const server of servers) {
      const byServer = sigs[server];
      const keyIds = isJsonObject(byServer) ? Object.keys(byServer).filter((id) => id.startsWith('ed25519:')) : [];
      if (keyIds.length === 0) {
        sigErr = `signature of ${server}: unsigned`;
        break;
      }
      const usable = keyIds.filter((id) => keys.has(`${server}\u0000${id}`));
      if (usable.length < keyIds.length) {
        // A key not valid at the batch's latest time may still be valid at this event's.
        alone = true;
        break;
      }
      if (!usable.some((id) => verifyJsonSignature(redacted, server, id, keys.get(`${server}\u0000${id}`)!))) {
        sigErr = `signature of ${server}: bad_signature`;
        break;
      }
    }
    if (alone) sigErr = await checkPduSignatures(pdu, version, keyring);
    if (sigErr) {
      out[i] = new PduError(`Bad signature (${sigErr})`);
      continue;
    }
    const event = withEventId(pdu, version);
    if (checkContentHash(pdu, version)) out[i] = { event, redacted: false };
    else {
      const r = redactEvent(event, version) as RoomEvent;
      r.event_id = event.event_id;
      out[i] = { event: r, redacted: true };
    }
  }
  return out;
}
