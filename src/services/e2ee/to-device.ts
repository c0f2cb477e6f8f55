import type { Logger } from 'pino';
import type { JsonObject } from '../../protocol/json.js';
import type { Database } from '../../storage/db.js';
import type { AccountStore } from '../../storage/stores/accounts.js';
import type { E2eeStore } from '../../storage/stores/e2ee.js';
import type { Notifier } from '../../streams/notifier.js';
import { LruCache } from '../../util/lru.js';
import { KeyedMutex } from '../../util/mutex.js';
import type { SyncExtension } from '../sync/sync-service.js';

/** The most to-device messages one /sync response carries; the rest follow in later syncs. */
export const TO_DEVICE_BATCH = 100;

export interface ToDeviceSend {
  sender: string;
  senderDevice: string;
  type: string;
  txnId: string;
  /** user ID → device ID (or `*`) → content. */
  messages: Record<string, Record<string, JsonObject>>;
}

/**
 * Send-to-device messaging: messages are stored per recipient device, delivered by /sync in
 * order of arrival, and deleted once the device syncs with a token past them (acknowledged),
 * so each is delivered exactly once even across restarts.
 */
export class ToDeviceService {
  /** Inserts are serialised so stream positions commit in order. */
  private readonly mutex = new KeyedMutex();
  private position: number | undefined;
  /** Per device (`user\0device`): the position its messages were last deleted up to. */
  private readonly acked = new LruCache<string, number>(10_000);

  constructor(
    private readonly database: Database,
    private readonly store: E2eeStore,
    private readonly accounts: AccountStore,
    private readonly notifier: Notifier,
    private readonly isLocalUser: (userId: string) => boolean,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  async currentPosition(): Promise<number> {
    // Rows are deleted once delivered, so the position is kept in memory and only ever grows.
    if (this.position === undefined) this.position = await this.store.maxToDevicePosition();
    return this.position;
  }

  /** Stores the messages (once per transaction ID of the sending device) and wakes the recipients. */
  /** Forwards messages for users of other servers (set by federation). */
  remoteSender: ((s: ToDeviceSend, messages: Record<string, Record<string, JsonObject>>) => Promise<void>) | undefined;

  /** Told of each message stored for a local device, once, after commit (application services). */
  localObserver: ((userId: string, deviceId: string, message: JsonObject) => void) | undefined;

  async send(s: ToDeviceSend): Promise<void> {
    const rows: Array<{ userId: string; deviceId: string; sender: string; type: string; content: string }> = [];
    const remote: Record<string, Record<string, JsonObject>> = {};
    for (const [userId, byDevice] of Object.entries(s.messages)) {
      if (!this.isLocalUser(userId)) {
        if (this.remoteSender) remote[userId] = byDevice;
        else this.log.debug({ userId, type: s.type }, 'dropping a to-device message for a remote user (no federation sender)');
        continue;
      }
      const devices = new Set((await this.accounts.listDevices(userId)).map((d) => d.device_id));
      for (const [deviceId, content] of Object.entries(byDevice)) {
        const targets = deviceId === '*' ? [...devices] : devices.has(deviceId) ? [deviceId] : [];
        for (const d of targets) rows.push({ userId, deviceId: d, sender: s.sender, type: s.type, content: JSON.stringify(content) });
      }
    }
    if (this.remoteSender && Object.keys(remote).length) await this.remoteSender(s, remote);
    await this.currentPosition();
    await this.mutex.run('to_device', async () => {
      const max = await this.database.transaction(async (tx) => {
        if (!(await this.store.claimToDeviceTxn(tx, s.sender, s.senderDevice, s.txnId, this.now()))) return undefined;
        return rows.length > 0 ? this.store.insertToDevice(tx, rows, this.now()) : 0;
      });
      if (max === undefined || rows.length === 0) return;
      for (const r of rows) {
        this.localObserver?.(r.userId, r.deviceId, { type: r.type, sender: r.sender, content: JSON.parse(r.content) as JsonObject });
      }
      this.position = Math.max(this.position ?? 0, max);
      const users = new Set(rows.map((r) => r.userId));
      for (const userId of users) this.notifier.publish({ stream: 'to_device', position: max, userId }, [userId]);
    });
  }

  /**
   * The /sync extension: acknowledges (deletes) what the `since` token covered, then returns
   * up to TO_DEVICE_BATCH pending messages. When more are waiting, the token's to_device
   * position stops at the last message returned.
   */
  syncExtension(): SyncExtension {
    return {
      stream: 'to_device',
      currentPosition: () => this.currentPosition(),
      collect: async (w) => {
        const { userId, deviceId } = w.req;
        const after = w.since?.to_device ?? 0;
        // The user's last message (an upper bound, from the notifier): nothing is stored for the
        // device beyond it, so nothing up to it that was already acknowledged needs deleting and
        // nothing after `since` is pending when it is not after `since`.
        const last = w.activity.toDevice.last(userId);
        const device = `${userId}\u0000${deviceId}`;
        if (w.since) {
          const acked = this.acked.get(device);
          if (acked === undefined || (last > acked && after > acked)) {
            await this.store.ackToDevice(userId, deviceId, after);
            this.acked.set(device, after);
          }
          if (last <= after || w.to.to_device <= after) return false;
        }
        const pending = await this.store.pendingToDevice(userId, deviceId, after, w.to.to_device, TO_DEVICE_BATCH);
        if (pending.length === 0) return false;
        if (pending.length === TO_DEVICE_BATCH) w.to.to_device = pending[pending.length - 1]!.streamId;
        w.response.to_device = {
          events: pending.map((p) => ({ sender: p.sender, type: p.type, content: JSON.parse(p.content) as JsonObject })),
        };
        return true;
      },
    };
  }
}
