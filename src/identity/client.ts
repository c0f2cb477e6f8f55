/**
 * Outgoing requests to identity servers (identity-service-api v2): hashed 3PID lookups, stored
 * invitations and key validity checks. Requests go over HTTPS through the federation transport,
 * so they use the same trusted certificate authorities (federation.ca_files / use_system_ca)
 * and the same DNS resolver; time and response size are bounded. Failures become Matrix errors
 * that say which identity server failed and how.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { MatrixError } from '../errors.js';
import { withQuery } from '../federation/client.js';
import { FederationError, FederationTimeoutError } from '../federation/errors.js';
import type { ConnectTarget, FederationTransport } from '../federation/transport.js';
import type { IpGuard } from '../media/ip-guard.js';
import { encodeBase64Url } from '../protocol/base64.js';
import { parseServerName } from '../protocol/identifiers.js';
import { isJsonObject, type JsonObject } from '../protocol/json.js';

const TIMEOUT_MS = 15_000;
const MAX_RESPONSE_BYTES = 64 * 1024;
/** Characters of a store-invite token (identity-service-api, store-invite response). */
const TOKEN = /^[0-9a-zA-Z.=_-]{1,255}$/;

/** An identity server's answer to store-invite, checked. */
export interface StoredInvite {
  token: string;
  display_name: string;
  public_keys: Array<{ public_key: string; key_validity_url?: string }>;
}

/** The fields of a store-invite request (identity-service-api v2 /store-invite). */
export interface StoreInviteRequest extends JsonObject {
  medium: string;
  address: string;
  room_id: string;
  sender: string;
}

/** The part of a request the identity server answered badly, for messages. */
type Step = 'hash_details' | 'lookup' | 'store-invite' | 'key validity check';

/** A connection target for `host[:port]` (port 443 by default). */
function targetOf(hostPort: string): ConnectTarget {
  const name = parseServerName(hostPort, 'id_server');
  return { host: name.host, port: name.port ?? 443, hostHeader: hostPort, tlsName: name.host };
}

/** The 3PID address as the identity server hashes it: e-mail addresses case-folded. */
export function canonicalAddress(medium: string, address: string): string {
  if (medium !== 'email') return address;
  const parts = address.trim().split('@');
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new MatrixError('M_INVALID_PARAM', 400, `${JSON.stringify(address)} is not an e-mail address`);
  return `${parts[0].toLowerCase()}@${parts[1].toLowerCase()}`;
}

/** The sha256 lookup hash of identity-service-api "sha256": URL-safe unpadded base64 of `address medium pepper`. */
export function lookupHash(address: string, medium: string, pepper: string): string {
  return encodeBase64Url(createHash('sha256').update(`${address} ${medium} ${pepper}`, 'utf8').digest());
}

export class IdentityServerClient {
  /**
   * `guard`, when given, decides which addresses may be contacted: identity servers are named
   * by clients and by room events, so without it any user could make this server connect to
   * hosts on its own network.
   */
  constructor(
    private readonly transport: FederationTransport,
    private readonly guard?: IpGuard,
  ) {}

  /**
   * The target to connect to: with a guard, the host's addresses are resolved here and the
   * first allowed one is connected to (certificate checked against the name), so a second
   * resolution cannot lead elsewhere. Refused with M_SERVER_NOT_TRUSTED when none is allowed.
   */
  private async allowedTarget(server: string, target: ConnectTarget): Promise<ConnectTarget> {
    const guard = this.guard;
    if (!guard) return target;
    const refused = () => new MatrixError('M_SERVER_NOT_TRUSTED', 400, `This server does not contact identity servers on private or special addresses (${server})`);
    if (isIP(target.host)) {
      if (!guard.isAllowed(target.host)) throw refused();
      return target;
    }
    const { resolver } = this.transport;
    const settle = (p: Promise<string[]>) => p.catch(() => [] as string[]);
    const addresses = [...(await settle(resolver.resolve4(target.host))), ...(await settle(resolver.resolve6(target.host)))];
    if (addresses.length === 0) throw new MatrixError('M_CONNECTION_FAILED', 502, `Could not reach the identity server ${server}: its name ${target.host} does not resolve`);
    const address = addresses.find((a) => guard.isAllowed(a));
    if (address === undefined) throw refused();
    return { ...target, host: address };
  }

  /** Checks `id_server` (a host name with an optional port); throws M_INVALID_PARAM. */
  static checkServerName(idServer: string): void {
    try {
      parseServerName(idServer, 'id_server');
    } catch (err) {
      throw new MatrixError('M_INVALID_PARAM', 400, `Invalid id_server: ${(err as Error).message}`);
    }
  }

  private async request(step: Step, server: string, target: ConnectTarget, method: 'GET' | 'POST', path: string, token?: string, body?: JsonObject): Promise<JsonObject> {
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'Myelin' };
    if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    const connectTo = await this.allowedTarget(server, target);
    let res;
    try {
      res = await this.transport.send(connectTo, { destination: server, method, path, headers, body: payload, timeoutMs: TIMEOUT_MS, maxBytes: MAX_RESPONSE_BYTES });
    } catch (err) {
      if (err instanceof FederationTimeoutError) throw new MatrixError('M_CONNECTION_TIMEOUT', 504, `The identity server ${server} did not answer the ${step} request in time`);
      const what = err instanceof FederationError ? err.message : String(err);
      throw new MatrixError('M_CONNECTION_FAILED', 502, `Could not reach the identity server ${server} (${step}): ${what}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.body.toString('utf8'));
    } catch {
      parsed = undefined;
    }
    if (res.status < 200 || res.status >= 300) {
      const obj = isJsonObject(parsed) ? parsed : {};
      const detail = [res.status, obj['errcode'], obj['error']].filter((x) => typeof x === 'string' || typeof x === 'number').join(' ');
      // Its refusal of the access token is not ours: never answered as 401 (the client would log out).
      if (res.status === 401 || res.status === 403) throw new MatrixError('M_FORBIDDEN', 403, `The identity server ${server} refused the ${step} request: ${detail}`);
      if (res.status < 500) throw new MatrixError('M_INVALID_PARAM', 400, `The identity server ${server} refused the ${step} request: ${detail}`);
      throw new MatrixError('M_UNKNOWN', 502, `The identity server ${server} failed the ${step} request: ${detail}`);
    }
    if (!isJsonObject(parsed)) throw new MatrixError('M_UNKNOWN', 502, `The identity server ${server} answered the ${step} request with something other than a JSON object`);
    return parsed;
  }

  private bad(server: string, step: Step, what: string): MatrixError {
    return new MatrixError('M_UNKNOWN', 502, `The identity server ${server} answered the ${step} request badly: ${what}`);
  }

  /** The Matrix user ID bound to a 3PID, if any (hash_details, then a hashed lookup). */
  async lookup(idServer: string, accessToken: string, medium: string, address: string): Promise<string | undefined> {
    const target = targetOf(idServer);
    const details = await this.request('hash_details', idServer, target, 'GET', '/_matrix/identity/v2/hash_details', accessToken);
    const pepper = details['lookup_pepper'];
    const algorithms = details['algorithms'];
    if (typeof pepper !== 'string' || !Array.isArray(algorithms)) throw this.bad(idServer, 'hash_details', 'no lookup_pepper or algorithms');
    let algorithm: string;
    let query: string;
    if (algorithms.includes('sha256')) {
      algorithm = 'sha256';
      query = lookupHash(address, medium, pepper);
    } else if (algorithms.includes('none')) {
      algorithm = 'none';
      query = `${address} ${medium}`;
    } else {
      throw this.bad(idServer, 'hash_details', 'it offers neither the sha256 nor the none algorithm');
    }
    const found = await this.request('lookup', idServer, target, 'POST', '/_matrix/identity/v2/lookup', accessToken, { algorithm, pepper, addresses: [query] });
    const mappings = found['mappings'];
    if (!isJsonObject(mappings)) throw this.bad(idServer, 'lookup', 'no mappings');
    const mxid = mappings[query];
    return typeof mxid === 'string' ? mxid : undefined;
  }

  /** Stores an invitation for an unbound 3PID; returns the token, keys and display name. */
  async storeInvite(idServer: string, accessToken: string, body: StoreInviteRequest): Promise<StoredInvite> {
    const res = await this.request('store-invite', idServer, targetOf(idServer), 'POST', '/_matrix/identity/v2/store-invite', accessToken, body);
    const token = res['token'];
    const displayName = res['display_name'];
    if (typeof token !== 'string' || !TOKEN.test(token)) throw this.bad(idServer, 'store-invite', 'no valid token');
    if (typeof displayName !== 'string') throw this.bad(idServer, 'store-invite', 'no display_name');
    const keys: StoredInvite['public_keys'] = [];
    const list = Array.isArray(res['public_keys']) ? res['public_keys'] : [];
    for (const k of list) {
      if (!isJsonObject(k) || typeof k['public_key'] !== 'string') continue;
      keys.push(typeof k['key_validity_url'] === 'string' ? { public_key: k['public_key'], key_validity_url: k['key_validity_url'] } : { public_key: k['public_key'] });
    }
    // Identity servers older than public_keys answer with a single public_key.
    if (keys.length === 0 && typeof res['public_key'] === 'string') {
      keys.push({ public_key: res['public_key'], key_validity_url: `https://${idServer}/_matrix/identity/v2/pubkey/isvalid` });
    }
    if (keys.length === 0) throw this.bad(idServer, 'store-invite', 'no public keys');
    return { token, display_name: displayName, public_keys: keys };
  }

  /**
   * Whether an identity server still holds `publicKey` valid, asked at `url` (an HTTPS key
   * validity URL from an m.room.third_party_invite event) with `?public_key=`.
   */
  async keyIsValid(url: string, publicKey: string): Promise<boolean> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new MatrixError('M_FORBIDDEN', 403, `The key validity URL ${JSON.stringify(url)} is not a URL`);
    }
    if (parsed.protocol !== 'https:' || parsed.username || parsed.password) throw new MatrixError('M_FORBIDDEN', 403, `The key validity URL ${url} is not a plain https URL`);
    const host = parsed.host;
    let target: ConnectTarget;
    try {
      target = targetOf(host);
    } catch {
      throw new MatrixError('M_FORBIDDEN', 403, `The key validity URL ${url} has an invalid host`);
    }
    const params = Object.fromEntries(parsed.searchParams);
    const path = withQuery(parsed.pathname, { ...params, public_key: publicKey });
    const res = await this.request('key validity check', host, target, 'GET', path);
    return res['valid'] === true;
  }
}
