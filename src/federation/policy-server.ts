/**
 * Policy servers, homeserver side (server-server-api "Policy Servers"): asking the room's
 * policy server to sign events (`POST /_matrix/policy/v1/sign`) before local events are
 * stored and sent, and checking received events for its signature.
 *
 * This server is not a policy server: a room naming this server as `via` is treated as using
 * none (asking ourselves would only refuse every event).
 */
import type { Logger } from 'pino';
import { MatrixError, ERRCODES, type Errcode } from '../errors.js';
import { federationForm } from '../protocol/event-hash.js';
import type { RoomEvent } from '../protocol/event.js';
import { serverNameOf } from '../protocol/identifiers.js';
import { isJsonObject, type JsonObject } from '../protocol/json.js';
import {
  enabledPolicyServer,
  hasValidPolicySignature,
  isPolicyExempt,
  POLICY_EVENT_TYPE,
  UNSTABLE_POLICY_EVENT_TYPE,
  withPolicySignature,
  type PolicyServer,
} from '../protocol/policy-server.js';
import type { RoomVersion } from '../protocol/room-versions.js';
import type { EventStore } from '../storage/stores/events.js';
import type { FederationClient } from './client.js';
import { FederationHttpError } from './errors.js';

export interface PolicyServersDeps {
  serverName: string;
  events: EventStore;
  client: FederationClient;
  log: Logger;
  /** Time allowed for one sign request (default 5 s): local sends in the room wait for it. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 5000;
const SIGN_PATH = '/_matrix/policy/v1/sign';
/** MSC4284's sign endpoint, asked when the stable one is unknown to the policy server. */
const UNSTABLE_SIGN_PATH = '/_matrix/policy/unstable/org.matrix.msc4284/sign';

/**
 * An answer saying the endpoint does not exist: 404 or 405 without a Matrix error or with
 * `M_UNRECOGNIZED` (spec v1.6), or `M_UNRECOGNIZED` with 400 (older servers).
 */
function isUnknownEndpoint(err: unknown): boolean {
  if (!(err instanceof FederationHttpError)) return false;
  if (err.status === 404 || err.status === 405) return err.errcode === undefined || err.errcode === 'M_UNRECOGNIZED';
  return err.status === 400 && err.errcode === 'M_UNRECOGNIZED';
}
/** A sign answer is a small object; anything bigger is refused. */
const MAX_ANSWER_BYTES = 64 * 1024;

/** Why the policy server gave no valid signature. */
export class PolicyRefusal extends Error {
  constructor(
    readonly via: string,
    message: string,
    /** The policy server's own error, when it answered with one. */
    readonly matrixError?: { status: number; errcode: string; error?: string; extra?: Record<string, unknown> },
  ) {
    super(message);
    this.name = 'PolicyRefusal';
  }

  /**
   * The error for the client whose request made the event: the policy server's error as it
   * sent it, with its other fields (M_FORBIDDEN answers as 403; an errcode of no specification
   * becomes M_FORBIDDEN with its message), or M_FORBIDDEN explaining what went wrong.
   */
  toMatrixError(): MatrixError {
    const e = this.matrixError;
    if (e && (ERRCODES as readonly string[]).includes(e.errcode)) {
      const status = e.errcode === 'M_FORBIDDEN' ? 403 : e.status >= 400 && e.status < 500 ? e.status : 403;
      return new MatrixError(e.errcode as Errcode, status, e.error ?? `The room's policy server refused the event (${e.errcode})`, e.extra);
    }
    if (e) return new MatrixError('M_FORBIDDEN', 403, e.error ?? this.message);
    return new MatrixError('M_FORBIDDEN', 403, this.message);
  }
}

export class PolicyServers {
  constructor(private readonly deps: PolicyServersDeps) {}

  /**
   * The policy server the room uses according to its current state, or undefined (none, an
   * invalid `m.room.policy`, no joined member of `via`, or `via` is this server). Without an
   * `m.room.policy` event, the unstable `org.matrix.msc4284.policy` event of rooms set up before
   * the specification is used.
   */
  async policyServerOf(roomId: string): Promise<PolicyServer | undefined> {
    const { events } = this.deps;
    const stored = await events.getCurrentStateEvent(roomId, POLICY_EVENT_TYPE, '');
    const unstable = stored ? undefined : await events.getCurrentStateEvent(roomId, UNSTABLE_POLICY_EVENT_TYPE, '');
    if (!stored && !unstable) return undefined;
    const joined = await events.members(roomId, ['join']);
    const ps = enabledPolicyServer(stored?.event, (server) => joined.some((u) => serverNameOf(u) === server), unstable?.event);
    if (!ps || ps.via === this.deps.serverName) return undefined;
    return ps;
  }

  /**
   * Asks `ps` to sign the event and returns it with the signature added, after checking the
   * signature against the key in the room state. Throws PolicyRefusal when the policy server
   * refuses, fails to answer, or answers without a valid signature.
   */
  async requestSignature(ps: PolicyServer, event: RoomEvent, version: RoomVersion): Promise<RoomEvent> {
    const { unsigned: _u, ...pdu } = federationForm(event, version);
    let answer: JsonObject;
    const ask = (path: string) =>
      this.deps.client.post<JsonObject>(ps.via, path, pdu as JsonObject, { timeoutMs: this.deps.timeoutMs ?? DEFAULT_TIMEOUT_MS, maxBytes: MAX_ANSWER_BYTES });
    try {
      try {
        answer = await ask(SIGN_PATH);
      } catch (err) {
        // Policy servers deployed before the specification only know MSC4284's path.
        if (!isUnknownEndpoint(err)) throw err;
        answer = await ask(UNSTABLE_SIGN_PATH);
      }
    } catch (err) {
      if (err instanceof FederationHttpError && err.errcode) {
        const { errcode: _c, error: _e, ...extra } = isJsonObject(err.body) ? err.body : {};
        throw new PolicyRefusal(ps.via, `The room's policy server ${ps.via} refused the event: ${err.errcode}${err.errorText ? ` ${err.errorText}` : ''}`, {
          status: err.status,
          errcode: err.errcode,
          error: err.errorText,
          extra,
        });
      }
      throw new PolicyRefusal(ps.via, `Could not get a signature from the room's policy server ${ps.via}: ${(err as Error).message}`);
    }
    const signed = withPolicySignature(event, ps, answer);
    if (!signed) throw new PolicyRefusal(ps.via, `The room's policy server ${ps.via} answered without a signature`);
    if (!hasValidPolicySignature(signed, version, ps)) {
      throw new PolicyRefusal(ps.via, `The room's policy server ${ps.via} answered with a signature that does not match the key in the room state`);
    }
    return signed;
  }

  /**
   * For a local event about to be stored: in a room using a policy server, the event with its
   * signature; otherwise the event unchanged. A refusal becomes the client's error (the policy
   * server's own when it sent one), and the event is not stored. `signed`, when given, yields
   * the event with this server's signature (`event` may still lack it): it is sent instead.
   */
  async signLocal(event: RoomEvent, version: RoomVersion, signed?: () => Promise<RoomEvent>): Promise<RoomEvent> {
    if (isPolicyExempt(event)) return event;
    const ps = await this.policyServerOf(event.room_id!);
    if (!ps) return event;
    try {
      return await this.requestSignature(ps, signed ? await signed() : event, version);
    } catch (err) {
      if (!(err instanceof PolicyRefusal)) throw err;
      this.deps.log.info({ roomId: event.room_id, type: event.type, via: ps.via, reason: err.message }, 'the policy server refused a local event');
      throw err.toMatrixError();
    }
  }

  /**
   * For a received event: `ok` when it is recommended for inclusion (no policy server, exempt,
   * or a valid signature). An event without a valid signature is sent to the policy server once
   * (its key may have rotated, or the sender did not ask); `event` is then the event with the
   * new signature.
   */
  async checkReceived(event: RoomEvent, version: RoomVersion): Promise<{ ok: boolean; event: RoomEvent; reason?: string }> {
    if (isPolicyExempt(event)) return { ok: true, event };
    const ps = await this.policyServerOf(event.room_id!);
    if (!ps || hasValidPolicySignature(event, version, ps)) return { ok: true, event };
    try {
      return { ok: true, event: await this.requestSignature(ps, event, version) };
    } catch (err) {
      if (!(err instanceof PolicyRefusal)) throw err;
      return { ok: false, event, reason: err.message };
    }
  }
}
