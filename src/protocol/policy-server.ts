/**
 * Policy servers (server-server-api "Policy Servers", spec v1.18): whether a room uses one,
 * and whether an event carries its signature.
 *
 * A room uses a policy server when its current state holds an `m.room.policy` event with an
 * empty state key whose content names the server (`via`, a string) and its Ed25519 key
 * (`public_keys.ed25519`, a string), and that server has at least one joined member in the
 * current state. The policy server signs the redacted event like any server signature, under
 * the `via` server name with the key ID `ed25519:policy_server`, using the key from the room
 * state (not its published signing key). The `m.room.policy` state event with an empty state
 * key is never signed by it, and is always recommended.
 *
 * Rooms set up before the specification (MSC4284) may hold only the unstable
 * `org.matrix.msc4284.policy` state event, whose content has `via` and a single `public_key`
 * (unpadded base64 Ed25519) instead of `public_keys.ed25519`. It is used when the room has no
 * `m.room.policy` event with an empty state key at all (an invalid stable event means no policy
 * server, it does not fall back), and is exempt like the stable one.
 */
import type { Pdu } from './event.js';
import { isJsonObject } from './json.js';
import { verifyEventSignature } from './event-signing.js';
import type { RoomVersion } from './room-versions.js';

export const POLICY_EVENT_TYPE = 'm.room.policy';
/** The state event of MSC4284 that rooms used before the specification. */
export const UNSTABLE_POLICY_EVENT_TYPE = 'org.matrix.msc4284.policy';
/** The key ID of every policy-server Ed25519 signature. */
export const POLICY_SERVER_KEY_ID = 'ed25519:policy_server';

export interface PolicyServer {
  /** The policy server's name: where to ask, and the name its signatures are under. */
  via: string;
  /** Unpadded base64 Ed25519 public key from the room state. */
  ed25519: string;
}

/** The policy server named by an `m.room.policy` content, when the content is valid. */
export function policyServerFromContent(content: unknown): PolicyServer | undefined {
  if (!isJsonObject(content)) return undefined;
  const via = content['via'];
  const keys = content['public_keys'];
  if (typeof via !== 'string' || !isJsonObject(keys)) return undefined;
  const ed25519 = keys['ed25519'];
  if (typeof ed25519 !== 'string') return undefined;
  return { via, ed25519 };
}

/** The policy server named by an `org.matrix.msc4284.policy` content (`via`, `public_key`). */
export function policyServerFromUnstableContent(content: unknown): PolicyServer | undefined {
  if (!isJsonObject(content)) return undefined;
  const via = content['via'];
  const key = content['public_key'];
  if (typeof via !== 'string' || typeof key !== 'string') return undefined;
  return { via, ed25519: key };
}

/**
 * The room's policy server, or undefined when the room does not use one.
 * `policyEvent` is the `m.room.policy` event with empty state key of the room's current state
 * (undefined when there is none); `hasJoinedMember(server)` tells whether `server` has a joined
 * member in that current state. `unstableEvent`, the `org.matrix.msc4284.policy` event with
 * empty state key, is only used when there is no `policyEvent`.
 */
export function enabledPolicyServer(
  policyEvent: Pick<Pdu, 'type' | 'state_key' | 'content'> | undefined,
  hasJoinedMember: (server: string) => boolean,
  unstableEvent?: Pick<Pdu, 'type' | 'state_key' | 'content'>,
): PolicyServer | undefined {
  let ps: PolicyServer | undefined;
  if (policyEvent) {
    if (policyEvent.type !== POLICY_EVENT_TYPE || policyEvent.state_key !== '') return undefined;
    ps = policyServerFromContent(policyEvent.content);
  } else if (unstableEvent) {
    if (unstableEvent.type !== UNSTABLE_POLICY_EVENT_TYPE || unstableEvent.state_key !== '') return undefined;
    ps = policyServerFromUnstableContent(unstableEvent.content);
  }
  if (!ps || !hasJoinedMember(ps.via)) return undefined;
  return ps;
}

/**
 * The policy state event with an empty state key (`m.room.policy`, or the unstable
 * `org.matrix.msc4284.policy`): never sent to the policy server, always recommended.
 */
export function isPolicyExempt(event: Pick<Pdu, 'type' | 'state_key'>): boolean {
  return (event.type === POLICY_EVENT_TYPE || event.type === UNSTABLE_POLICY_EVENT_TYPE) && event.state_key === '';
}

/** Whether `event` carries a valid signature of `ps` (over its redacted form). */
export function hasValidPolicySignature(event: Pdu, version: RoomVersion, ps: PolicyServer): boolean {
  return verifyEventSignature(event, version, ps.via, POLICY_SERVER_KEY_ID, ps.ed25519);
}

/**
 * Whether the event is recommended for inclusion: the room uses no policy server (`ps`
 * undefined), the event is exempt, or it carries a valid signature of the policy server.
 */
export function policyRecommends(event: Pdu, version: RoomVersion, ps: PolicyServer | undefined): boolean {
  return !ps || isPolicyExempt(event) || hasValidPolicySignature(event, version, ps);
}

/**
 * The event with the policy server's signature from a `/_matrix/policy/v1/sign` answer
 * (`{ "<via>": { "ed25519:policy_server": "<sig>" } }`) added to its signatures, keeping the
 * signatures it had. Undefined when the answer holds no such signature. The signature is not
 * checked here (see hasValidPolicySignature).
 */
export function withPolicySignature<T extends Pdu>(event: T, ps: PolicyServer, answer: unknown): T | undefined {
  if (!isJsonObject(answer)) return undefined;
  const byServer = answer[ps.via];
  if (!isJsonObject(byServer)) return undefined;
  const sig = byServer[POLICY_SERVER_KEY_ID];
  if (typeof sig !== 'string') return undefined;
  const signatures: Record<string, Record<string, string>> = {};
  for (const [server, sigs] of Object.entries(event.signatures ?? {})) signatures[server] = { ...sigs };
  signatures[ps.via] = { ...(signatures[ps.via] ?? {}), [POLICY_SERVER_KEY_ID]: sig };
  return { ...event, signatures };
}
