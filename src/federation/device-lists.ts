/**
 * End-to-end encryption across servers: device lists and keys of users of other servers.
 *
 * Outgoing: every change of a local user's devices or cross-signing keys is compared with what
 * was last announced, and each device that differs goes out as one `m.device_list_update`
 * (its own `stream_id`, the user's previous update as `prev_id`, `deleted` for removed devices),
 * cross-signing changes as `m.signing_key_update`, to the servers sharing a room with the user.
 *
 * Incoming: remote users' device lists are cached (`remote_device_lists`) once a local user
 * shares a room with them; their updates are applied when the `prev_id` chain follows on from
 * what we hold, otherwise the list is fetched again with `/user/devices`. Local users sharing a
 * room with them are told (`device_lists.changed` in /sync). `/keys/query` and `/keys/claim` for
 * remote users ask their servers (`/user/keys/query`, `/user/keys/claim`), reporting
 * unreachable servers under `failures`.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { AppContext } from '../app.js';
import { canonicalJson } from '../protocol/canonical-json.js';
import { serverNameOf } from '../protocol/identifiers.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../protocol/json.js';
import { FederationDeviceStore, type RemoteDeviceList } from '../storage/stores/federation-devices.js';
import { KeyedMutex } from '../util/mutex.js';

/** Time allowed to another server answering a key query or claim, and a device-list resync. */
const REMOTE_TIMEOUT_MS = 10_000;
/** Stream IDs remembered per remote user to recognise updates already applied. */
const SEEN_IDS = 20;

export interface RemoteKeysResult {
  device_keys: Record<string, Record<string, JsonObject>>;
  master_keys: Record<string, JsonObject>;
  self_signing_keys: Record<string, JsonObject>;
  failures: Record<string, JsonObject>;
}

function hashOf(v: unknown): string {
  return createHash('sha256').update(canonicalJson(v as JsonValue)).digest('base64');
}

function failureOf(err: unknown): JsonObject {
  return { status: 503, message: err instanceof Error ? err.message : String(err) };
}

export class FederationDeviceLists {
  readonly store: FederationDeviceStore;
  private readonly log: Logger;
  private readonly mutex = new KeyedMutex();

  constructor(private readonly ctx: AppContext) {
    this.store = new FederationDeviceStore(ctx.database);
    this.log = ctx.log.child({ subsystem: 'federation', part: 'device-lists' });
  }

  private isLocal(userId: string): boolean {
    return serverNameOf(userId) === this.ctx.config.server_name;
  }

  // ---------------------------------------------------------------------------------------
  // Local users

  /** The devices of a local user as announced to other servers (keys, display names). */
  private async localDevices(userId: string): Promise<{ devices: Map<string, JsonObject>; crossSigning: JsonObject }> {
    const keys = await this.ctx.e2ee.keys.query(userId, { [userId]: [] });
    const dk = (isJsonObject(keys['device_keys']) && isJsonObject(keys['device_keys'][userId]) ? keys['device_keys'][userId] : {}) as JsonObject;
    const devices = new Map<string, JsonObject>();
    for (const d of await this.ctx.accounts.listDevices(userId)) {
      const entry: JsonObject = { device_id: d.device_id };
      const k = dk[d.device_id];
      if (isJsonObject(k)) {
        const { unsigned: _u, ...rest } = k;
        entry['keys'] = rest;
      }
      if (d.display_name) entry['device_display_name'] = d.display_name;
      devices.set(d.device_id, entry);
    }
    const crossSigning: JsonObject = {};
    const master = isJsonObject(keys['master_keys']) ? keys['master_keys'][userId] : undefined;
    const ssk = isJsonObject(keys['self_signing_keys']) ? keys['self_signing_keys'][userId] : undefined;
    if (isJsonObject(master)) crossSigning['master_key'] = master;
    if (isJsonObject(ssk)) crossSigning['self_signing_key'] = ssk;
    return { devices, crossSigning };
  }

  /** Announces what changed in a local user's devices since the last announcement. */
  async localChanged(userId: string, destinations: () => Promise<Set<string>>): Promise<void> {
    await this.mutex.run(userId, async () => {
      const { devices, crossSigning } = await this.localDevices(userId);
      const snap = await this.store.snapshot(userId);
      const edus: JsonObject[] = [];
      let signing: JsonObject | undefined;
      await this.ctx.database.transaction(async (tx) => {
        let prev = await this.store.lastOutbound(userId, tx.db);
        const now = Date.now();
        const changed: Array<[string, JsonObject | undefined]> = [];
        for (const [id, entry] of devices) if (snap.get(id) !== hashOf(entry)) changed.push([id, entry]);
        for (const id of snap.keys()) if (id !== '' && !devices.has(id)) changed.push([id, undefined]);
        for (const [id, entry] of changed) {
          const streamId = await this.store.appendOutbound(tx, userId, id, !entry, now);
          const edu: JsonObject = { user_id: userId, device_id: id, stream_id: streamId, prev_id: prev === undefined ? [] : [prev] };
          if (!entry) edu['deleted'] = true;
          else {
            if (entry['keys']) edu['keys'] = entry['keys'];
            if (entry['device_display_name']) edu['device_display_name'] = entry['device_display_name'];
          }
          edus.push(edu);
          prev = streamId;
          await this.store.setSnapshot(tx, userId, id, entry ? hashOf(entry) : undefined);
        }
        const csHash = Object.keys(crossSigning).length ? hashOf(crossSigning) : undefined;
        if (csHash !== snap.get('')) {
          await this.store.setSnapshot(tx, userId, '', csHash);
          if (csHash) signing = { user_id: userId, ...crossSigning };
        }
      });
      if (!edus.length && !signing) return;
      const dests = await destinations();
      if (!dests.size) return;
      const { sender } = this.ctx.federationRooms;
      for (const edu of edus) await sender.sendEdu(dests, 'm.device_list_update', edu);
      if (signing) await sender.sendEdu(dests, 'm.signing_key_update', signing);
    });
  }

  /** GET /_matrix/federation/v1/user/devices/{userId} for a local user. */
  async userDevices(userId: string): Promise<JsonObject> {
    const { devices, crossSigning } = await this.localDevices(userId);
    return {
      user_id: userId,
      stream_id: (await this.store.lastOutbound(userId)) ?? 0,
      // Each listed device carries its keys (required): devices without keys are left out.
      devices: [...devices.values()].filter((d) => d['keys'] !== undefined),
      ...crossSigning,
    };
  }

  // ---------------------------------------------------------------------------------------
  // Remote users

  /** Whether a local user shares a room with `userId` (so its server keeps us updated). */
  private async tracked(userId: string): Promise<boolean> {
    return (await this.ctx.eventStore.roomsForUser(userId, ['join'])).length > 0;
  }

  /** Fetches a remote user's whole device list (`/user/devices`) and caches it. */
  async resync(userId: string): Promise<RemoteDeviceList> {
    const server = serverNameOf(userId)!;
    const res = await this.ctx.federation.client.get<JsonObject>(server, `/_matrix/federation/v1/user/devices/${encodeURIComponent(userId)}`, {
      timeoutMs: REMOTE_TIMEOUT_MS,
    });
    if (res['user_id'] !== userId) throw new Error('the server answered for another user');
    const list: RemoteDeviceList = { devices: {} };
    for (const d of Array.isArray(res['devices']) ? res['devices'] : []) {
      if (!isJsonObject(d) || typeof d['device_id'] !== 'string' || !isJsonObject(d['keys'])) continue;
      const keys: JsonObject = { ...d['keys'] };
      if (keys['user_id'] !== userId || keys['device_id'] !== d['device_id']) continue;
      if (typeof d['device_display_name'] === 'string') keys['unsigned'] = { device_display_name: d['device_display_name'] };
      list.devices[d['device_id']] = keys;
    }
    if (isJsonObject(res['master_key'])) list.master_key = res['master_key'];
    if (isJsonObject(res['self_signing_key'])) list.self_signing_key = res['self_signing_key'];
    const streamId = String(res['stream_id'] ?? '0');
    list.seen = [streamId];
    if (await this.tracked(userId)) await this.store.putRemote(userId, streamId, list, Date.now());
    return list;
  }

  /** An `m.device_list_update` from `origin`: applied when it follows on, else a resync. */
  async receiveDeviceListUpdate(origin: string, content: JsonObject): Promise<void> {
    const userId = content['user_id'];
    const deviceId = content['device_id'];
    if (typeof userId !== 'string' || serverNameOf(userId) !== origin || typeof deviceId !== 'string') throw new Error('bad m.device_list_update');
    const streamId = String(content['stream_id']);
    const prevIds = (Array.isArray(content['prev_id']) ? content['prev_id'] : []).map((p) => String(p));
    const changed = await this.mutex.run(userId, async () => {
      const cached = await this.store.getRemote(userId);
      if (!cached) return true;
      const seen = new Set(cached.list.seen ?? [cached.streamId]);
      if (seen.has(streamId)) return false;
      if (prevIds.every((p) => seen.has(p))) {
        const list = cached.list;
        if (content['deleted'] === true) delete list.devices[deviceId];
        else if (isJsonObject(content['keys'])) {
          const keys: JsonObject = { ...content['keys'] };
          if (typeof content['device_display_name'] === 'string') keys['unsigned'] = { device_display_name: content['device_display_name'] };
          list.devices[deviceId] = keys;
        }
        list.seen = [...(list.seen ?? []), streamId].slice(-SEEN_IDS);
        await this.store.putRemote(userId, streamId, list, Date.now());
      } else {
        this.log.debug({ userId, streamId, prevIds }, 'device-list gap: resyncing');
        await this.resync(userId).catch(async (err: unknown) => {
          this.log.info({ userId, err: (err as Error).message }, 'device-list resync failed; dropping the cached list');
          await this.store.deleteRemote(userId);
        });
      }
      return true;
    });
    if (changed) await this.ctx.e2ee.deviceLists.markChanged([userId]);
  }

  /** An `m.signing_key_update`: new cross-signing keys of a remote user. */
  async receiveSigningKeyUpdate(origin: string, content: JsonObject): Promise<void> {
    const userId = content['user_id'];
    if (typeof userId !== 'string' || serverNameOf(userId) !== origin) throw new Error('bad m.signing_key_update');
    await this.mutex.run(userId, async () => {
      const cached = await this.store.getRemote(userId);
      if (!cached) return;
      if (isJsonObject(content['master_key'])) cached.list.master_key = content['master_key'];
      if (isJsonObject(content['self_signing_key'])) cached.list.self_signing_key = content['self_signing_key'];
      await this.store.putRemote(userId, cached.streamId, cached.list, Date.now());
    });
    await this.ctx.e2ee.deviceLists.markChanged([userId]);
  }

  /** /keys/query for users of other servers: cached lists, resyncs, or their servers' answers. */
  async queryRemote(wanted: Record<string, string[]>): Promise<RemoteKeysResult> {
    const out: RemoteKeysResult = { device_keys: {}, master_keys: {}, self_signing_keys: {}, failures: {} };
    const put = (userId: string, list: RemoteDeviceList, devices: string[]) => {
      const byDevice: Record<string, JsonObject> = {};
      for (const [id, keys] of Object.entries(list.devices)) if (!devices.length || devices.includes(id)) byDevice[id] = keys as JsonObject;
      out.device_keys[userId] = byDevice;
      if (list.master_key) out.master_keys[userId] = list.master_key as JsonObject;
      if (list.self_signing_key) out.self_signing_keys[userId] = list.self_signing_key as JsonObject;
    };
    const byServer = new Map<string, Record<string, string[]>>();
    for (const [userId, devices] of Object.entries(wanted)) {
      const server = serverNameOf(userId);
      if (!server || this.isLocal(userId)) continue;
      const cached = await this.store.getRemote(userId);
      if (cached && (await this.tracked(userId))) {
        put(userId, cached.list, devices);
        continue;
      }
      if (cached) await this.store.deleteRemote(userId);
      const m = byServer.get(server) ?? {};
      m[userId] = devices;
      byServer.set(server, m);
    }
    await Promise.all(
      [...byServer].map(async ([server, users]) => {
        // Users we share a room with: the whole list with its stream ID, kept up to date afterwards.
        const rest: Record<string, string[]> = {};
        for (const [userId, devices] of Object.entries(users)) {
          if (await this.tracked(userId)) {
            try {
              put(userId, await this.mutex.run(userId, () => this.resync(userId)), devices);
              continue;
            } catch (err) {
              this.log.debug({ userId, err: (err as Error).message }, 'device-list resync failed; asking for keys');
            }
          }
          rest[userId] = devices;
        }
        if (!Object.keys(rest).length) return;
        try {
          const res = await this.ctx.federation.client.post<JsonObject>(server, '/_matrix/federation/v1/user/keys/query', { device_keys: rest }, { timeoutMs: REMOTE_TIMEOUT_MS });
          const fromServer = (u: string) => serverNameOf(u) === server && u in rest;
          if (isJsonObject(res['device_keys'])) {
            for (const [u, d] of Object.entries(res['device_keys'])) if (fromServer(u) && isJsonObject(d)) out.device_keys[u] = d as Record<string, JsonObject>;
          }
          if (isJsonObject(res['master_keys'])) for (const [u, k] of Object.entries(res['master_keys'])) if (fromServer(u) && isJsonObject(k)) out.master_keys[u] = k;
          if (isJsonObject(res['self_signing_keys'])) for (const [u, k] of Object.entries(res['self_signing_keys'])) if (fromServer(u) && isJsonObject(k)) out.self_signing_keys[u] = k;
        } catch (err) {
          out.failures[server] = failureOf(err);
        }
      }),
    );
    return out;
  }

  /** /keys/claim for users of other servers, one request per server. */
  async claimRemote(wanted: Record<string, Record<string, string>>): Promise<{ one_time_keys: Record<string, JsonObject>; failures: Record<string, JsonObject> }> {
    const out = { one_time_keys: {} as Record<string, JsonObject>, failures: {} as Record<string, JsonObject> };
    const byServer = new Map<string, Record<string, Record<string, string>>>();
    for (const [userId, devices] of Object.entries(wanted)) {
      const server = serverNameOf(userId);
      if (!server || this.isLocal(userId)) continue;
      const m = byServer.get(server) ?? {};
      m[userId] = devices;
      byServer.set(server, m);
    }
    await Promise.all(
      [...byServer].map(async ([server, users]) => {
        try {
          const res = await this.ctx.federation.client.post<JsonObject>(server, '/_matrix/federation/v1/user/keys/claim', { one_time_keys: users }, { timeoutMs: REMOTE_TIMEOUT_MS });
          const otk = isJsonObject(res['one_time_keys']) ? res['one_time_keys'] : {};
          for (const [u, d] of Object.entries(otk)) if (u in users && isJsonObject(d)) out.one_time_keys[u] = d;
        } catch (err) {
          out.failures[server] = failureOf(err);
        }
      }),
    );
    return out;
  }
}
