import { MatrixError, errors, type Errcode } from '../../errors.js';
import {
  checkDeviceKeys,
  checkOneTimeKey,
  isKeyProblem,
  parseCrossSigningKey,
  sameSignedContent,
  signedBy,
  splitKeyId,
  type CrossSigningUsage,
  type KeyProblem,
} from '../../protocol/e2e-keys.js';
import { canonicalJson } from '../../protocol/canonical-json.js';
import { isJsonObject, type JsonObject } from '../../protocol/json.js';
import { verifyJsonSignature } from '../../protocol/signing.js';
import type { Database } from '../../storage/db.js';
import type { AccountStore } from '../../storage/stores/accounts.js';
import type { E2eeStore, OneTimeKeyRow, SignatureRow } from '../../storage/stores/e2ee.js';
import type { DeviceListService } from './device-lists.js';

/** The most one-time keys one /keys/upload may carry. */
export const MAX_ONE_TIME_KEYS_PER_UPLOAD = 1000;
/** The largest key object (device keys, one-time key, cross-signing key) stored, in bytes of JSON. */
export const MAX_KEY_OBJECT_BYTES = 16 * 1024;
/** The most devices one /keys/query or /keys/claim may ask about. */
export const MAX_QUERIED_DEVICES = 10_000;

const KEY_TYPES: readonly CrossSigningUsage[] = ['master', 'self_signing', 'user_signing'];
const FIELD: Record<CrossSigningUsage, string> = { master: 'master_key', self_signing: 'self_signing_key', user_signing: 'user_signing_key' };

function problemError(p: KeyProblem): MatrixError {
  return p.kind === 'signature' ? new MatrixError('M_INVALID_SIGNATURE', 400, p.reason) : errors.badJson(p.reason);
}

function checkSize(obj: unknown, what: string): string {
  const json = canonicalJson(obj);
  if (Buffer.byteLength(json) > MAX_KEY_OBJECT_BYTES) throw new MatrixError('M_TOO_LARGE', 413, `${what} is larger than ${MAX_KEY_OBJECT_BYTES} bytes`);
  return json;
}

function serverOf(userId: string): string {
  return userId.slice(userId.indexOf(':') + 1);
}

export interface UploadKeysRequest {
  device_keys?: unknown;
  one_time_keys?: unknown;
  fallback_keys?: unknown;
}

export interface Failure {
  errcode: Errcode;
  error: string;
}

/** Keys of users of other servers (set by federation). */
export interface RemoteKeys {
  query(wanted: Record<string, string[]>): Promise<{
    device_keys: Record<string, Record<string, JsonObject>>;
    master_keys: Record<string, JsonObject>;
    self_signing_keys: Record<string, JsonObject>;
    failures: Record<string, JsonObject>;
  }>;
  claim(wanted: Record<string, Record<string, string>>): Promise<{ one_time_keys: Record<string, JsonObject>; failures: Record<string, JsonObject> }>;
}

/** Device keys, one-time and fallback keys, cross-signing keys and signatures. */
export class KeyService {
  /** Answers for users of other servers (federation); without it they are reported as failures. */
  remote: RemoteKeys | undefined;

  constructor(
    private readonly database: Database,
    private readonly store: E2eeStore,
    private readonly accounts: AccountStore,
    private readonly deviceLists: DeviceListService,
    private readonly isLocalUser: (userId: string) => boolean,
    private readonly now: () => number = Date.now,
  ) {}

  // ---- /keys/upload

  async upload(userId: string, deviceId: string, body: UploadKeysRequest): Promise<{ one_time_key_counts: Record<string, number> }> {
    const stored = await this.store.getDeviceKeys(userId, deviceId);
    let newDeviceKeys: string | undefined;
    let deviceEd25519: string | undefined = stored ? ((JSON.parse(stored) as { keys: Record<string, string> }).keys[`ed25519:${deviceId}`]) : undefined;
    if (body.device_keys !== undefined && body.device_keys !== null) {
      const p = checkDeviceKeys(body.device_keys, userId, deviceId);
      if (p) throw problemError(p);
      const dk = body.device_keys as JsonObject;
      const { unsigned: _unsigned, ...keep } = dk;
      const json = checkSize(keep, 'device_keys');
      if (json !== stored) newDeviceKeys = json;
      deviceEd25519 = (dk.keys as Record<string, string>)[`ed25519:${deviceId}`];
    }

    const otks = this.parseKeyMap(body.one_time_keys, 'one_time_keys', userId, deviceId, deviceEd25519);
    if (otks.length > MAX_ONE_TIME_KEYS_PER_UPLOAD) {
      throw new MatrixError('M_TOO_LARGE', 413, `At most ${MAX_ONE_TIME_KEYS_PER_UPLOAD} one-time keys per upload`);
    }
    const fallbacks = this.parseKeyMap(body.fallback_keys, 'fallback_keys', userId, deviceId, deviceEd25519);
    const algs = new Set<string>();
    for (const f of fallbacks) {
      if (algs.has(f.algorithm)) throw errors.invalidParam(`At most one fallback key per algorithm (${f.algorithm})`);
      algs.add(f.algorithm);
    }

    const counts = await this.database.transaction(async (tx) => {
      // One-time keys already on the server: the same key again is ignored, a different one refused.
      const existing = await this.store.getOneTimeKeys(userId, deviceId, otks, tx.db);
      const fresh: OneTimeKeyRow[] = [];
      const seen = new Set<string>();
      for (const k of otks) {
        const name = `${k.algorithm}:${k.keyId}`;
        const old = existing.get(name);
        if (old !== undefined) {
          if (old !== k.json) throw errors.invalidParam(`One-time key ${name} already exists with a different value`);
          continue;
        }
        if (seen.has(k.keyId)) continue;
        seen.add(k.keyId);
        fresh.push(k);
      }
      if (newDeviceKeys !== undefined) await this.store.putDeviceKeys(tx, userId, deviceId, newDeviceKeys, this.now());
      await this.store.insertOneTimeKeys(tx, userId, deviceId, fresh);
      for (const f of fallbacks) {
        const cur = await this.store.getFallbackKey(userId, deviceId, f.algorithm, tx.db);
        if (cur && cur.keyId === f.keyId && cur.json === f.json) continue;
        await this.store.putFallbackKey(tx, userId, deviceId, f);
      }
      return this.store.oneTimeKeyCounts(userId, deviceId, tx.db);
    });
    if (newDeviceKeys !== undefined) await this.deviceLists.markChanged([userId]);
    return { one_time_key_counts: { signed_curve25519: 0, ...counts } };
  }

  private parseKeyMap(map: unknown, field: string, userId: string, deviceId: string, ed: string | undefined): OneTimeKeyRow[] {
    if (map === undefined || map === null) return [];
    if (!isJsonObject(map)) throw errors.badJson(`${field} must be an object`);
    const out: OneTimeKeyRow[] = [];
    for (const [name, value] of Object.entries(map)) {
      const p = checkOneTimeKey(name, value, userId, deviceId, ed);
      if (p) throw problemError({ ...p, reason: `${field}: ${p.reason}` });
      const { algorithm, keyId } = splitKeyId(name)!;
      out.push({ algorithm, keyId, json: checkSize(value, `${field}.${name}`) });
    }
    return out;
  }

  async oneTimeKeyCounts(userId: string, deviceId: string): Promise<Record<string, number>> {
    return { signed_curve25519: 0, ...(await this.store.oneTimeKeyCounts(userId, deviceId)) };
  }

  unusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]> {
    return this.store.unusedFallbackKeyTypes(userId, deviceId);
  }

  // ---- /keys/query

  async query(requester: string, deviceKeys: Record<string, string[]>): Promise<JsonObject> {
    const out = {
      device_keys: {} as Record<string, Record<string, JsonObject>>,
      master_keys: {} as Record<string, JsonObject>,
      self_signing_keys: {} as Record<string, JsonObject>,
      user_signing_keys: {} as Record<string, JsonObject>,
      failures: {} as Record<string, JsonObject>,
    };
    let total = 0;
    const remoteWanted: Record<string, string[]> = {};
    for (const [userId, devices] of Object.entries(deviceKeys)) {
      total += Math.max(1, devices.length);
      if (total > MAX_QUERIED_DEVICES) throw new MatrixError('M_TOO_LARGE', 413, `At most ${MAX_QUERIED_DEVICES} devices per query`);
      if (!this.isLocalUser(userId)) {
        if (this.remote) remoteWanted[userId] = devices;
        else out.failures[serverOf(userId)] = { status: 503, message: 'This server does not reach other servers' };
        continue;
      }
      const rows = await this.store.deviceKeysOfUser(userId, devices);
      const sigs = await this.store.signaturesOf(userId);
      const byDevice: Record<string, JsonObject> = {};
      for (const r of rows) {
        const dk = JSON.parse(r.json) as JsonObject;
        const signatures = { ...((dk.signatures as Record<string, Record<string, string>>) ?? {}) };
        for (const s of sigs) {
          // Signatures of a user's devices are made by that user's own self-signing key.
          if (s.targetKeyId !== r.deviceId || s.signerUserId !== userId) continue;
          signatures[s.signerUserId] = { ...(signatures[s.signerUserId] ?? {}), [s.signerKeyId]: s.signature };
        }
        byDevice[r.deviceId] = { ...dk, signatures, unsigned: r.displayName !== null ? { device_display_name: r.displayName } : {} };
      }
      out.device_keys[userId] = byDevice;

      const cs = await this.store.crossSigningKeys(userId);
      const master = cs.get('master');
      if (master) {
        const mk = JSON.parse(master.json) as JsonObject;
        const signatures = { ...((mk.signatures as Record<string, Record<string, string>>) ?? {}) };
        for (const s of sigs) {
          if (s.targetKeyId !== master.publicKey) continue;
          // Visible: the owner's own devices' signatures, and the requester's own (user-signing) signatures.
          if (s.signerUserId !== userId && s.signerUserId !== requester) continue;
          signatures[s.signerUserId] = { ...(signatures[s.signerUserId] ?? {}), [s.signerKeyId]: s.signature };
        }
        out.master_keys[userId] = { ...mk, signatures };
      }
      const ssk = cs.get('self_signing');
      if (ssk) out.self_signing_keys[userId] = JSON.parse(ssk.json) as JsonObject;
      const usk = cs.get('user_signing');
      if (usk && userId === requester) out.user_signing_keys[userId] = JSON.parse(usk.json) as JsonObject;
    }
    if (this.remote && Object.keys(remoteWanted).length) {
      const r = await this.remote.query(remoteWanted);
      Object.assign(out.device_keys, r.device_keys);
      Object.assign(out.master_keys, r.master_keys);
      Object.assign(out.self_signing_keys, r.self_signing_keys);
      Object.assign(out.failures, r.failures);
    }
    return out;
  }

  // ---- /keys/claim

  async claim(request: Record<string, Record<string, string>>): Promise<JsonObject> {
    const oneTimeKeys: Record<string, Record<string, JsonObject>> = {};
    const failures: Record<string, JsonObject> = {};
    const remoteWanted: Record<string, Record<string, string>> = {};
    let total = 0;
    for (const [userId, byDevice] of Object.entries(request)) {
      if (!this.isLocalUser(userId)) {
        if (this.remote) remoteWanted[userId] = byDevice;
        else failures[serverOf(userId)] = { status: 503, message: 'This server does not reach other servers' };
        continue;
      }
      for (const [deviceId, algorithm] of Object.entries(byDevice)) {
        if (++total > MAX_QUERIED_DEVICES) throw new MatrixError('M_TOO_LARGE', 413, `At most ${MAX_QUERIED_DEVICES} keys per claim`);
        let name: string | undefined;
        let json: string | undefined;
        const otk = await this.store.claimOneTimeKey(userId, deviceId, algorithm);
        if (otk) {
          name = `${algorithm}:${otk.keyId}`;
          json = otk.json;
        } else {
          const fb = await this.store.getFallbackKey(userId, deviceId, algorithm);
          if (fb) {
            name = `${algorithm}:${fb.keyId}`;
            json = fb.json;
            if (!fb.used) await this.store.markFallbackKeyUsed(userId, deviceId, algorithm, fb.keyId);
          }
        }
        if (name !== undefined && json !== undefined) {
          ((oneTimeKeys[userId] ??= {})[deviceId] ??= {})[name] = JSON.parse(json) as JsonObject;
        }
      }
    }
    if (this.remote && Object.keys(remoteWanted).length) {
      total += Object.values(remoteWanted).reduce((n, d) => n + Object.keys(d).length, 0);
      if (total > MAX_QUERIED_DEVICES) throw new MatrixError('M_TOO_LARGE', 413, `At most ${MAX_QUERIED_DEVICES} keys per claim`);
      const r = await this.remote.claim(remoteWanted);
      Object.assign(oneTimeKeys, r.one_time_keys);
      Object.assign(failures, r.failures);
    }
    return { one_time_keys: oneTimeKeys, failures };
  }

  // ---- cross-signing

  /**
   * Whether a /keys/device_signing/upload needs user-interactive auth: not when the user has no
   * master key yet, nor when every key in the request is the one already stored.
   */
  async crossSigningUploadNeedsAuth(userId: string, body: Record<string, unknown>): Promise<boolean> {
    const cs = await this.store.crossSigningKeys(userId);
    if (!cs.has('master')) return false;
    for (const t of KEY_TYPES) {
      const k = body[FIELD[t]];
      if (k === undefined || k === null) continue;
      const cur = cs.get(t);
      if (!cur || !isJsonObject(k)) return true;
      if (canonicalJson(k) !== cur.json) return true;
    }
    return false;
  }

  /** Checks and stores the cross-signing keys of a /keys/device_signing/upload. */
  async uploadCrossSigningKeys(userId: string, body: Record<string, unknown>): Promise<void> {
    const cs = await this.store.crossSigningKeys(userId);
    const incoming = new Map<CrossSigningUsage, { publicKey: string; obj: JsonObject }>();
    for (const t of KEY_TYPES) {
      const k = body[FIELD[t]];
      if (k === undefined || k === null) continue;
      const parsed = parseCrossSigningKey(k, userId, t);
      if (isKeyProblem(parsed)) throw problemError(parsed);
      incoming.set(t, { publicKey: parsed.publicKey, obj: k as JsonObject });
    }
    if (incoming.size === 0) return;
    const masterKey = incoming.get('master')?.publicKey ?? cs.get('master')?.publicKey;
    if (!masterKey) throw errors.missingParam('No master key is available: upload master_key');
    for (const t of ['self_signing', 'user_signing'] as const) {
      const k = incoming.get(t);
      if (k && !signedBy(k.obj, userId, masterKey)) {
        throw new MatrixError('M_INVALID_SIGNATURE', 400, `The ${t} key is not signed by the master key`);
      }
    }
    // Device IDs and cross-signing public keys share a namespace.
    const deviceIds = new Set((await this.accounts.listDevices(userId)).map((d) => d.device_id));
    for (const { publicKey } of incoming.values()) {
      if (deviceIds.has(publicKey)) throw errors.forbidden('Key ID in use by a device');
    }
    const jsons = new Map([...incoming].map(([t, k]) => [t, checkSize(k.obj, FIELD[t])]));
    let changed = false;
    await this.database.transaction(async (tx) => {
      for (const [t, k] of incoming) {
        const json = jsons.get(t)!;
        if (cs.get(t)?.json === json) continue;
        await this.store.putCrossSigningKey(tx, userId, { keyType: t, publicKey: k.publicKey, json }, this.now());
        changed = true;
      }
    });
    if (changed) await this.deviceLists.markChanged([userId]);
  }

  /**
   * /keys/signatures/upload: each signed object must match the stored key (apart from
   * signatures), and each new signature must verify with the signer's key: the requester's
   * self-signing key for their devices, their devices for their master key, and their
   * user-signing key for other users' master keys.
   */
  async uploadSignatures(requester: string, body: Record<string, unknown>): Promise<{ failures: Record<string, Record<string, Failure>> }> {
    const failures: Record<string, Record<string, Failure>> = {};
    const fail = (u: string, k: string, errcode: Errcode, error: string) => ((failures[u] ??= {})[k] = { errcode, error });
    const mine = await this.store.crossSigningKeys(requester);
    const myDevices = new Map((await this.store.deviceKeysOfUser(requester)).map((d) => [d.deviceId, JSON.parse(d.json) as JsonObject]));
    const toStore: SignatureRow[] = [];
    const changedUsers = new Set<string>();

    for (const [targetUser, byKey] of Object.entries(body)) {
      if (!isJsonObject(byKey)) {
        fail(targetUser, '*', 'M_BAD_JSON', 'Expected a map of key ID to signed object');
        continue;
      }
      const theirs = targetUser === requester ? mine : this.isLocalUser(targetUser) ? await this.store.crossSigningKeys(targetUser) : new Map();
      const theirDevices =
        targetUser === requester ? myDevices : new Map<string, JsonObject>();
      for (const [keyId, signed] of Object.entries(byKey)) {
        if (!isJsonObject(signed)) {
          fail(targetUser, keyId, 'M_BAD_JSON', 'The signed object must be a JSON object');
          continue;
        }
        const mySigs = (isJsonObject(signed.signatures) ? signed.signatures[requester] : undefined) as JsonObject | undefined;
        if (!isJsonObject(mySigs)) {
          fail(targetUser, keyId, 'M_INVALID_SIGNATURE', `No signature by ${requester}`);
          continue;
        }
        // Which stored key is being signed, and which of the requester's keys may sign it.
        let stored: JsonObject | undefined;
        let signers: Map<string, string>; // signer key ID → public key
        if (targetUser === requester && theirDevices.has(keyId)) {
          stored = theirDevices.get(keyId);
          const ssk = mine.get('self_signing');
          if (!ssk) {
            fail(targetUser, keyId, 'M_MISSING_PARAM', 'Upload a self-signing key before signing devices');
            continue;
          }
          signers = new Map([[`ed25519:${ssk.publicKey}`, ssk.publicKey]]);
        } else if (theirs.get('master')?.publicKey === keyId) {
          stored = JSON.parse(theirs.get('master')!.json) as JsonObject;
          if (targetUser === requester) {
            signers = new Map();
            for (const [d, dk] of myDevices) {
              const ed = (dk.keys as Record<string, string> | undefined)?.[`ed25519:${d}`];
              if (ed) signers.set(`ed25519:${d}`, ed);
            }
          } else {
            const usk = mine.get('user_signing');
            if (!usk) {
              fail(targetUser, keyId, 'M_MISSING_PARAM', 'Upload a user-signing key before signing other users');
              continue;
            }
            signers = new Map([[`ed25519:${usk.publicKey}`, usk.publicKey]]);
          }
        } else {
          fail(targetUser, keyId, 'M_NOT_FOUND', 'No such device or master key');
          continue;
        }
        if (!stored || !sameSignedContent(stored, signed)) {
          fail(targetUser, keyId, 'M_BAD_JSON', 'The signed object does not match the stored key');
          continue;
        }
        const existingSigs = (isJsonObject(stored.signatures) ? stored.signatures[requester] : undefined) as JsonObject | undefined;
        let added = 0;
        let bad = false;
        for (const [sigKeyId, sig] of Object.entries(mySigs)) {
          if (existingSigs?.[sigKeyId] === sig) continue;
          const pub = signers.get(sigKeyId);
          if (pub === undefined) continue;
          if (!verifyJsonSignature(signed, requester, sigKeyId, pub)) {
            bad = true;
            continue;
          }
          toStore.push({ signerUserId: requester, signerKeyId: sigKeyId, targetUserId: targetUser, targetKeyId: keyId, signature: sig as string });
          added++;
        }
        if (added === 0) {
          fail(targetUser, keyId, 'M_INVALID_SIGNATURE', bad ? 'Invalid signature' : 'No new signature by a key allowed to sign this key');
          continue;
        }
        // Signatures of others' master keys are only visible to the signer: only their own devices refetch.
        changedUsers.add(requester);
      }
    }
    if (toStore.length > 0) {
      await this.database.transaction(async (tx) => {
        for (const s of toStore) await this.store.putSignature(tx, s);
      });
      await this.deviceLists.markChanged(changedUsers);
    }
    return { failures };
  }

  // ---- devices

  /** Removes deleted devices' keys and pending messages; marks the change if any had keys. */
  async devicesDeleted(userId: string, deviceIds: string[]): Promise<void> {
    await this.database.transaction((tx) => this.store.deleteDeviceKeys(tx, userId, deviceIds));
    await this.deviceLists.markChanged([userId]);
  }
}
