/**
 * The keyring: other servers' signing keys, fetched directly (`GET /_matrix/key/v2/server`)
 * or through trusted notaries (`POST /_matrix/key/v2/query`), checked, persisted and cached.
 *
 * Validity (room v5+): a key verifies a signature made at time T only if the key was valid at T
 * — until min(valid_until_ts, fetch time + 7 days) for a current key, until `expired_ts` for an
 * old one. Room versions 1–4 ignore validity (`atTs` undefined). Request signatures (X-Matrix)
 * need a current key valid now; old keys only ever verify events.
 */
import type { Logger } from 'pino';
import { decodeBase64, encodeBase64 } from '../protocol/base64.js';
import type { JsonObject } from '../protocol/json.js';
import { signJson, verifyJsonSignature, type SigningKey } from '../protocol/signing.js';
import type { ServerKeyStore, StoredServerKey } from '../storage/stores/server-keys.js';
import { LruCache } from '../util/lru.js';
import { FederationError } from './errors.js';
import { buildOwnKeyResponse, parseKeyResponse, type OldVerifyKey, type ParsedKeyResponse } from './server-keys.js';

export interface VerifyKeyInfo {
  keyId: string;
  publicKey: Uint8Array;
  /** Signatures made up to this time (ms) may be verified with the key. */
  validUntilTs: number;
  /** Set for old (retired) keys: they verify events, never requests. */
  expiredTs?: number;
}

export interface TrustedKeyServer {
  server_name: string;
  /** Key ID → unpadded base64 public key. */
  verify_keys: Record<string, string>;
}

/** How the keyring talks to other servers (the federation client in production). */
export interface KeyFetcher {
  /** `GET /_matrix/key/v2/server` of `serverName`. */
  fetchServerKeys(serverName: string): Promise<unknown>;
  /** `POST /_matrix/key/v2/query` to `notary`. */
  queryNotary(notary: string, body: JsonObject): Promise<unknown>;
}

export interface KeyringOptions {
  serverName: string;
  signingKey: SigningKey;
  oldVerifyKeys: Record<string, OldVerifyKey>;
  /** How long our own key responses are valid (federation.key_validity_period_ms). */
  ownKeyValidityMs: number;
  store: ServerKeyStore;
  fetcher: KeyFetcher;
  trustedKeyServers: TrustedKeyServer[];
  log?: Logger;
  now?: () => number;
  /** Servers whose keys are kept in memory. */
  cacheSize?: number;
  /** A server's keys are fetched again at most this often (default 30 s). */
  minRefetchIntervalMs?: number;
}

export interface KeyUse {
  /** Time the signature was made (origin_server_ts); undefined: any known key (rooms v1–v4). */
  atTs?: number;
  /** Request signatures: only current keys (verify_keys), valid now. */
  forRequest?: boolean;
}

export type SignatureCheck =
  | { ok: true; keyId: string }
  | { ok: false; reason: 'unsigned' | 'unknown_key' | 'bad_signature'; keyIds: string[] };

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class Keyring {
  private readonly now: () => number;
  private readonly log: Logger | undefined;
  private readonly cache: LruCache<string, Map<string, VerifyKeyInfo>>;
  private readonly inflight = new Map<string, Promise<void>>();
  private readonly lastFetch = new LruCache<string, number>(10_000);
  private readonly minRefetchMs: number;

  constructor(private readonly opts: KeyringOptions) {
    this.now = opts.now ?? Date.now;
    this.log = opts.log;
    this.cache = new LruCache(opts.cacheSize ?? 1000);
    this.minRefetchMs = opts.minRefetchIntervalMs ?? 30_000;
  }

  /** Our own signed `/_matrix/key/v2/server` response. */
  ownKeyResponse(): JsonObject {
    return buildOwnKeyResponse({
      serverName: this.opts.serverName,
      signingKey: this.opts.signingKey,
      oldVerifyKeys: this.opts.oldVerifyKeys,
      validityMs: this.opts.ownKeyValidityMs,
      now: this.now(),
    });
  }

  private ownKeys(): Map<string, VerifyKeyInfo> {
    const m = new Map<string, VerifyKeyInfo>();
    for (const [id, k] of Object.entries(this.opts.oldVerifyKeys)) {
      m.set(id, { keyId: id, publicKey: decodeBase64(k.key), validUntilTs: k.expired_ts, expiredTs: k.expired_ts });
    }
    const key = this.opts.signingKey;
    m.set(key.keyId, { keyId: key.keyId, publicKey: key.publicKey, validUntilTs: Number.MAX_SAFE_INTEGER });
    return m;
  }

  /** The keys of a server we know (memory, then database) without fetching. */
  async knownKeys(serverName: string): Promise<Map<string, VerifyKeyInfo>> {
    if (serverName === this.opts.serverName) return this.ownKeys();
    let m = this.cache.get(serverName);
    if (!m) {
      m = new Map();
      for (const row of await this.opts.store.getKeys(serverName)) {
        m.set(row.key_id, {
          keyId: row.key_id,
          publicKey: decodeBase64(row.public_key),
          validUntilTs: row.valid_until_ts,
          ...(row.expired_ts !== null ? { expiredTs: row.expired_ts } : {}),
        });
      }
      this.cache.set(serverName, m);
    }
    return m;
  }

  private usable(k: VerifyKeyInfo | undefined, use: KeyUse): boolean {
    if (!k) return false;
    if (use.forRequest) return k.expiredTs === undefined && k.validUntilTs >= this.now();
    return use.atTs === undefined || k.validUntilTs >= use.atTs;
  }

  /**
   * The public key `keyId` of `serverName`, if it may verify a signature made at `atTs`
   * (undefined: at any time, rooms v1–v4). Fetches the server's keys when the key is unknown
   * or not valid long enough, at most once per `minRefetchIntervalMs` per server.
   */
  async getVerifyKey(serverName: string, keyId: string, atTs?: number, opts: { forRequest?: boolean } = {}): Promise<Uint8Array | undefined> {
    const info = await this.getKeyInfo(serverName, keyId, { atTs, forRequest: opts.forRequest });
    return info?.publicKey;
  }

  async getKeyInfo(serverName: string, keyId: string, use: KeyUse = {}): Promise<VerifyKeyInfo | undefined> {
    const known = await this.knownKeys(serverName);
    if (this.usable(known.get(keyId), use)) return known.get(keyId);
    if (serverName === this.opts.serverName) return undefined;
    const minimumValidUntil = use.forRequest ? this.now() : (use.atTs ?? this.now());
    await this.refresh(serverName, keyId, minimumValidUntil);
    const after = (await this.knownKeys(serverName)).get(keyId);
    return this.usable(after, use) ? after : undefined;
  }

  /**
   * Checks the signatures of `serverName` on `obj`: succeeds when one of them is by a key usable
   * for `use` and verifies. A signature that does not verify with its (known) key fails the check.
   */
  async verifySignedJson(obj: object, serverName: string, use: KeyUse = {}): Promise<SignatureCheck> {
    const sigs = isObj((obj as { signatures?: unknown }).signatures) ? (obj as { signatures: Record<string, unknown> }).signatures[serverName] : undefined;
    const keyIds = isObj(sigs) ? Object.keys(sigs).filter((id) => id.startsWith('ed25519:')) : [];
    if (keyIds.length === 0) return { ok: false, reason: 'unsigned', keyIds };
    let anyKnown = false;
    for (const id of keyIds) {
      const key = await this.getKeyInfo(serverName, id, use);
      if (!key) continue;
      anyKnown = true;
      if (verifyJsonSignature(obj, serverName, id, key.publicKey)) return { ok: true, keyId: id };
    }
    return { ok: false, reason: anyKnown ? 'bad_signature' : 'unknown_key', keyIds };
  }

  /**
   * Fetches `serverName`'s keys (single flight per server, rate limited): directly first, then
   * from each trusted notary until one answers with keys. Errors are logged, never thrown.
   */
  async refresh(serverName: string, keyId: string | undefined, minimumValidUntilTs: number, opts: { force?: boolean } = {}): Promise<void> {
    const running = this.inflight.get(serverName);
    if (running) return running;
    const last = this.lastFetch.get(serverName);
    if (!opts.force && last !== undefined && this.now() - last < this.minRefetchMs) return;
    this.lastFetch.set(serverName, this.now());
    const p = this.fetchAll(serverName, keyId, minimumValidUntilTs).finally(() => this.inflight.delete(serverName));
    this.inflight.set(serverName, p);
    return p;
  }

  private async fetchAll(serverName: string, keyId: string | undefined, minimumValidUntilTs: number): Promise<void> {
    try {
      await this.fetchDirect(serverName);
      if (keyId === undefined || (await this.knownKeys(serverName)).has(keyId)) return;
    } catch (err) {
      this.log?.info({ server: serverName, err: errText(err) }, 'fetching server keys directly failed');
    }
    for (const notary of this.opts.trustedKeyServers) {
      if (notary.server_name === serverName) continue;
      try {
        const got = await this.fetchFromNotary(notary, serverName, keyId, minimumValidUntilTs);
        if (got && (keyId === undefined || (await this.knownKeys(serverName)).has(keyId))) return;
      } catch (err) {
        this.log?.info({ server: serverName, notary: notary.server_name, err: errText(err) }, 'fetching server keys from a notary failed');
      }
    }
  }

  /** `GET /_matrix/key/v2/server` of the server itself; stores the keys and the response. */
  async fetchDirect(serverName: string): Promise<ParsedKeyResponse> {
    const json = await this.opts.fetcher.fetchServerKeys(serverName);
    const now = this.now();
    const parsed = parseKeyResponse(json, serverName, now);
    await this.storeParsed(parsed, serverName, json as JsonObject, now);
    return parsed;
  }

  private async fetchFromNotary(
    notary: TrustedKeyServer,
    serverName: string,
    keyId: string | undefined,
    minimumValidUntilTs: number,
  ): Promise<boolean> {
    const criteria: JsonObject = keyId ? { [keyId]: { minimum_valid_until_ts: minimumValidUntilTs } } : {};
    const res = await this.opts.fetcher.queryNotary(notary.server_name, { server_keys: { [serverName]: criteria } });
    const list = isObj(res) && Array.isArray(res['server_keys']) ? res['server_keys'] : undefined;
    if (!list) throw new Error(`notary ${notary.server_name} sent no server_keys array`);
    let stored = false;
    for (const entry of list) {
      if (!isObj(entry) || entry['server_name'] !== serverName) continue;
      const notarySigned = Object.entries(notary.verify_keys).some(([id, key]) =>
        verifyJsonSignature(entry, notary.server_name, id, key),
      );
      if (!notarySigned) {
        this.log?.warn({ server: serverName, notary: notary.server_name }, 'notary response is not signed by the notary; ignored');
        continue;
      }
      const now = this.now();
      let parsed: ParsedKeyResponse;
      try {
        parsed = parseKeyResponse(entry, serverName, now);
      } catch (err) {
        this.log?.warn({ server: serverName, notary: notary.server_name, err: errText(err) }, 'invalid key response from a notary');
        continue;
      }
      // Keep the origin's self-signed response (without the notary's signature) for our own notary role.
      const own = stripSignaturesExcept(entry, serverName);
      await this.storeParsed(parsed, notary.server_name, own, now);
      stored = true;
    }
    return stored;
  }

  private async storeParsed(parsed: ParsedKeyResponse, from: string, json: JsonObject, now: number): Promise<void> {
    const rows: StoredServerKey[] = parsed.keys.map((k) => ({
      server_name: parsed.serverName,
      key_id: k.keyId,
      public_key: encodeBase64(k.publicKey),
      valid_until_ts: k.validUntilTs,
      expired_ts: k.expiredTs ?? null,
      fetched_ts: now,
      fetched_from: from,
    }));
    await this.opts.store.storeKeys(rows, { serverName: parsed.serverName, validUntilTs: parsed.validUntilTs, fetchedTs: now, json: JSON.stringify(json) });
    this.cache.delete(parsed.serverName);
    this.log?.debug({ server: parsed.serverName, from, keys: rows.map((r) => r.key_id) }, 'stored server keys');
  }

  /**
   * For our notary endpoints: the server's self-signed key response, re-signed by us. Fetched
   * directly when we have none valid until `minimumValidUntilTs`; if that fails, the last one
   * we have (so signatures of old events stay checkable). Undefined when we have nothing.
   */
  async notaryResponse(serverName: string, minimumValidUntilTs: number): Promise<JsonObject | undefined> {
    if (serverName === this.opts.serverName) return this.ownKeyResponse();
    let stored = await this.opts.store.getResponse(serverName);
    // Notaries serve a cached response for at most half of its lifetime.
    const fresh = stored && stored.validUntilTs >= minimumValidUntilTs && this.now() < stored.fetchedTs + (stored.validUntilTs - stored.fetchedTs) / 2;
    if (!fresh) {
      const last = this.lastFetch.get(serverName);
      if (last === undefined || this.now() - last >= this.minRefetchMs) {
        this.lastFetch.set(serverName, this.now());
        try {
          await this.fetchDirect(serverName);
        } catch (err) {
          this.log?.info({ server: serverName, err: errText(err) }, 'notary: fetching server keys failed; serving the cached response');
        }
        stored = await this.opts.store.getResponse(serverName);
      }
    }
    if (!stored) return undefined;
    const json = JSON.parse(stored.json) as JsonObject;
    return signJson(json, this.opts.serverName, this.opts.signingKey) as unknown as JsonObject;
  }
}

function stripSignaturesExcept(entry: Record<string, unknown>, serverName: string): JsonObject {
  const sigs = isObj(entry['signatures']) ? entry['signatures'] : {};
  return { ...(entry as JsonObject), signatures: { [serverName]: (sigs[serverName] ?? {}) as JsonObject } };
}

function errText(err: unknown): string {
  if (err instanceof FederationError) return err.message;
  return err instanceof Error ? err.message : String(err);
}
