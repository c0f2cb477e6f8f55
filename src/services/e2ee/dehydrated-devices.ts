import type { Logger } from 'pino';
import { errors } from '../../errors.js';
import { isJsonObject, type JsonObject } from '../../protocol/json.js';
import type { Database, Tx } from '../../storage/db.js';
import type { AccountStore } from '../../storage/stores/accounts.js';
import type { E2eeStore } from '../../storage/stores/e2ee.js';
import type { KeyService } from './keys.js';
import { TO_DEVICE_BATCH } from './to-device.js';

/** Largest `device_data` accepted, in bytes of JSON (a pickled account with its one-time keys is a few KB). */
export const MAX_DEVICE_DATA_BYTES = 64 * 1024;
const MAX_DEVICE_ID_BYTES = 255;
const MAX_DISPLAY_NAME_BYTES = 255;

export interface DehydratedDeviceUpload {
  device_id?: unknown;
  device_data?: unknown;
  initial_device_display_name?: unknown;
  device_keys?: unknown;
  one_time_keys?: unknown;
  fallback_keys?: unknown;
}

/**
 * Dehydrated devices (MSC3814): each user may park one device, with its keys and the client's
 * encrypted `device_data`, that receives to-device messages (room keys) while no client of the
 * user is running. A new client fetches the data, rehydrates the device and reads the messages
 * sent to it in batches; they are not deleted when read, so an interrupted rehydration can start
 * over. The device is an ordinary device without access tokens: deleting it through /devices or
 * replacing it forgets it too.
 */
export class DehydratedDeviceService {
  constructor(
    private readonly database: Database,
    private readonly store: E2eeStore,
    private readonly accounts: {
      readonly store: AccountStore;
      deleteDevices(userId: string, deviceIds: readonly string[], tx?: Tx): Promise<string[]>;
    },
    private readonly keys: KeyService,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** PUT /dehydrated_device: replaces the user's dehydrated device. Nothing is stored when any part is refused. */
  async put(userId: string, body: DehydratedDeviceUpload): Promise<{ device_id: string }> {
    const deviceId = body.device_id;
    if (typeof deviceId !== 'string' || deviceId.length === 0) throw errors.badJson('device_id must be a non-empty string');
    if (Buffer.byteLength(deviceId) > MAX_DEVICE_ID_BYTES) throw errors.invalidParam(`device_id is longer than ${MAX_DEVICE_ID_BYTES} bytes`);
    if (!isJsonObject(body.device_data)) throw errors.badJson('device_data must be an object');
    if (typeof body.device_data.algorithm !== 'string') throw errors.badJson('device_data.algorithm must be a string');
    const deviceData = JSON.stringify(body.device_data);
    if (Buffer.byteLength(deviceData) > MAX_DEVICE_DATA_BYTES) throw errors.tooLarge(`device_data is larger than ${MAX_DEVICE_DATA_BYTES} bytes`);
    const name = body.initial_device_display_name;
    if (name !== undefined && name !== null && typeof name !== 'string') throw errors.badJson('initial_device_display_name must be a string');
    if (typeof name === 'string' && Buffer.byteLength(name) > MAX_DISPLAY_NAME_BYTES) throw errors.invalidParam(`initial_device_display_name is longer than ${MAX_DISPLAY_NAME_BYTES} bytes`);
    if (body.device_keys === undefined || body.device_keys === null) throw errors.missingParam('device_keys is required');

    const previous = await this.store.getDehydratedDevice(userId);
    if (previous?.deviceId !== deviceId && (await this.accounts.store.getDevice(userId, deviceId))) {
      throw errors.invalidParam(`Device ${deviceId} already exists and is not the dehydrated device`);
    }
    // The keys are checked (signatures included) before anything is written; a device that is
    // refused here leaves the previous dehydrated device as it was.
    await this.keys.upload(userId, deviceId, { device_keys: body.device_keys, one_time_keys: body.one_time_keys, fallback_keys: body.fallback_keys });
    await this.database.transaction(async (tx) => {
      const now = this.now();
      await this.accounts.store.upsertDevice(tx, { user_id: userId, device_id: deviceId, display_name: typeof name === 'string' ? name : null, created_ts: now, ip: null });
      await this.store.putDehydratedDevice(tx, userId, deviceId, deviceData, now);
      if (previous && previous.deviceId !== deviceId) await this.accounts.deleteDevices(userId, [previous.deviceId], tx);
    });
    this.log.info({ userId, deviceId, replaced: previous?.deviceId }, 'dehydrated device stored');
    return { device_id: deviceId };
  }

  /** GET /dehydrated_device */
  async get(userId: string): Promise<{ device_id: string; device_data: JsonObject }> {
    const d = await this.store.getDehydratedDevice(userId);
    if (!d) throw errors.notFound('No dehydrated device');
    return { device_id: d.deviceId, device_data: JSON.parse(d.deviceData) as JsonObject };
  }

  /** DELETE /dehydrated_device: deletes the device, its keys and its messages. */
  async delete(userId: string): Promise<{ device_id: string }> {
    const d = await this.store.getDehydratedDevice(userId);
    if (!d) throw errors.notFound('No dehydrated device');
    await this.accounts.deleteDevices(userId, [d.deviceId]);
    return { device_id: d.deviceId };
  }

  /**
   * POST /dehydrated_device/{deviceId}/events: the to-device messages waiting for the device, in
   * batches after `nextBatch`. The last batch is followed by an empty one (the end).
   */
  async events(userId: string, deviceId: string, nextBatch: unknown): Promise<{ events: JsonObject[]; next_batch: string }> {
    const d = await this.store.getDehydratedDevice(userId);
    if (!d || d.deviceId !== deviceId) throw errors.forbidden(`${deviceId} is not your dehydrated device`);
    let after = 0;
    if (nextBatch !== undefined && nextBatch !== null) {
      if (typeof nextBatch !== 'string' || !/^\d{1,15}$/.test(nextBatch)) throw errors.invalidParam('next_batch is not a token this server gave out');
      after = Number(nextBatch);
    }
    const pending = await this.store.pendingToDevice(userId, deviceId, after, Number.MAX_SAFE_INTEGER, TO_DEVICE_BATCH);
    const last = pending.length > 0 ? pending[pending.length - 1]!.streamId : after;
    return {
      events: pending.map((p) => ({ sender: p.sender, type: p.type, content: JSON.parse(p.content) as JsonObject })),
      next_batch: String(last),
    };
  }
}
