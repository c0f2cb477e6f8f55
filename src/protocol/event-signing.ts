/**
 * Signing events and checking their signatures (server-server-api "Signing Events",
 * "Validating hashes and signatures on received events").
 *
 * The signature covers the *redacted* event (which still includes `hashes`), so it stays
 * valid when the event is later redacted; the content hash covers the full event.
 */
import { encodeBase64 } from './base64.js';
import { canonicalJson, checkCanonicalJson, type CanonicalJsonError } from './canonical-json.js';
import type { Pdu } from './event.js';
import { addContentHash, federationForm } from './event-hash.js';
import { redactEvent } from './redaction.js';
import type { RoomVersion } from './room-versions.js';
import { signableJson, signBytes, verifyJsonSignature, type SigningKey } from './signing.js';

/** Length of an ed25519 signature (64 bytes) in unpadded base64. */
export const ED25519_SIGNATURE_BASE64_LENGTH = 86;

/** The key-free part of signing an event (see {@link prepareEventSignature}). */
export interface EventSignable<T extends Pdu> {
  /** The event with its content hash (added unless `hashes.sha256` was present). */
  hashed: T;
  /**
   * Canonical JSON of the redacted event without `signatures` and `unsigned`: the bytes the
   * signature covers. It is also what the reference hash covers (redaction drops `age_ts`).
   */
  signable: string;
}

/**
 * Everything of {@link signEvent} but the signature itself: the hashed event and the text to
 * sign. Finish with {@link attachEventSignature}.
 */
export function prepareEventSignature<T extends Pdu>(pdu: T, version: RoomVersion): EventSignable<T> {
  const hashes = pdu.hashes as Record<string, unknown> | undefined;
  const hashed = hashes && typeof hashes['sha256'] === 'string' ? pdu : addContentHash(pdu, version);
  return { hashed, signable: canonicalJson(signableJson(redactEvent(federationForm(hashed, version), version))) };
}

/**
 * A copy of `hashed` with `signature` (unpadded base64) merged into its `signatures` as
 * `serverName`'s `keyId`; other signatures are kept.
 */
export function attachEventSignature<T extends Pdu>(hashed: T, serverName: string, keyId: string, signature: string): T {
  const signatures: Record<string, Record<string, string>> = {};
  for (const [server, sigs] of Object.entries(hashed.signatures ?? {})) signatures[server] = { ...sigs };
  signatures[serverName] = { ...(signatures[serverName] ?? {}), [keyId]: signature };
  return { ...hashed, signatures };
}

/**
 * Returns a copy of `pdu` signed by `serverName` with `key`: the content hash is added
 * first if `hashes.sha256` is missing, the redacted event is signed, and the signature is
 * merged into the (unredacted) event's `signatures`.
 */
export function signEvent<T extends Pdu>(pdu: T, version: RoomVersion, serverName: string, key: SigningKey): T {
  const { hashed, signable } = prepareEventSignature(pdu, version);
  return attachEventSignature(hashed, serverName, key.keyId, encodeBase64(signBytes(key, signable)));
}

/**
 * Whether `pdu` carries a valid signature by `serverName`'s `keyId` over its redacted form.
 * Succeeds for both the full event and a redacted copy. Does not check the content hash.
 */
export function verifyEventSignature(
  pdu: Pdu,
  version: RoomVersion,
  serverName: string,
  keyId: string,
  publicKey: Uint8Array | string,
): boolean {
  let redacted: object;
  try {
    redacted = redactEvent(federationForm(pdu, version), version);
  } catch {
    return false;
  }
  return verifyJsonSignature(redacted, serverName, keyId, publicKey);
}

/** The server name of a `@user:server` / `$id:server` identifier, or undefined. */
function domainOf(id: unknown): string | undefined {
  if (typeof id !== 'string') return undefined;
  const colon = id.indexOf(':');
  return colon >= 0 && colon < id.length - 1 ? id.slice(colon + 1) : undefined;
}

function isThirdPartyInvite(pdu: Pdu): boolean {
  return (
    pdu.type === 'm.room.member' &&
    pdu.content['membership'] === 'invite' &&
    Object.prototype.hasOwnProperty.call(pdu.content, 'third_party_invite')
  );
}

/**
 * The servers whose signatures an incoming event must carry:
 * - the sender's server, except for invites made from a third-party invite (those may be
 *   sent by any server; the auth rules check the third-party signature instead);
 * - in v1/v2, also the server of the carried `event_id` when it differs;
 * - for joins with `join_authorised_via_users_server` (restricted rooms, v8+), that user's server.
 * Deduplicated, in that order.
 */
export function requiredSignatureServers(pdu: Pdu, version: RoomVersion): string[] {
  const out: string[] = [];
  const add = (s: string | undefined) => {
    if (s !== undefined && !out.includes(s)) out.push(s);
  };
  if (!isThirdPartyInvite(pdu)) add(domainOf(pdu.sender));
  if (version.eventIdFormat === 'legacy') add(domainOf(pdu.event_id));
  if (
    version.restrictedJoinRule &&
    pdu.type === 'm.room.member' &&
    pdu.content['membership'] === 'join' &&
    typeof pdu.content['join_authorised_via_users_server'] === 'string'
  ) {
    add(domainOf(pdu.content['join_authorised_via_users_server']));
  }
  return out;
}

/**
 * Checks the whole event against canonical JSON's value rules for `version` (strict for
 * v6+: no floats, integers within ±(2^53-1)). Returns the first violation or null.
 */
export function checkEventJson(pdu: object, version: RoomVersion): CanonicalJsonError | null {
  return checkCanonicalJson(pdu, { strict: version.strictCanonicalJson });
}
