/**
 * EDUs: typing, receipts, presence, device-list and signing-key updates, direct to-device
 * messages. Outgoing ones are taken from the local streams (the notifier) and queued for the
 * servers sharing the room or user; incoming ones are checked (the sender must belong to the
 * origin, room EDUs obey the room's ACL) and fed into the local services.
 */
import type { Logger } from 'pino';
import type { AppContext } from '../app.js';
import { serverNameOf } from '../protocol/identifiers.js';
import { isJsonObject, type JsonObject } from '../protocol/json.js';
import type { StreamChange } from '../streams/notifier.js';

const TYPING_TIMEOUT_MS = 30_000;

export class FederationEdus {
  private readonly log: Logger;
  /** Local typists per room as last sent. */
  private readonly typingSent = new Map<string, Set<string>>();
  private receiptsPos: number | undefined;
  private readonly onChange = (c: StreamChange) => void this.outgoing(c).catch((err: unknown) => this.log.warn({ err }, 'could not queue an EDU'));

  constructor(private readonly ctx: AppContext) {
    this.log = ctx.log.child({ subsystem: 'federation', part: 'edus' });
  }

  private isLocal(userId: string): boolean {
    return serverNameOf(userId) === this.ctx.config.server_name;
  }

  async start(): Promise<void> {
    this.receiptsPos = await this.ctx.receipts.position();
    this.ctx.notifier.on('change', this.onChange);
  }

  stop(): void {
    this.ctx.notifier.off('change', this.onChange);
  }

  /** Servers sharing a room with a local user. */
  private async serversSharingWith(userId: string): Promise<Set<string>> {
    const out = new Set<string>();
    for (const { roomId } of await this.ctx.eventStore.roomsForUser(userId, ['join'])) {
      for (const s of await this.ctx.federationRooms.sender.destinationsForRoom(roomId)) out.add(s);
    }
    return out;
  }

  private async outgoing(c: StreamChange): Promise<void> {
    const { sender } = this.ctx.federationRooms;
    switch (c.stream) {
      case 'typing': {
        const now = new Set(this.ctx.typing.typing(c.roomId).filter((u) => this.isLocal(u)));
        const before = this.typingSent.get(c.roomId) ?? new Set<string>();
        const changes: Array<[string, boolean]> = [];
        for (const u of now) if (!before.has(u)) changes.push([u, true]);
        for (const u of before) if (!now.has(u)) changes.push([u, false]);
        if (now.size) this.typingSent.set(c.roomId, now);
        else this.typingSent.delete(c.roomId);
        if (!changes.length) return;
        const dests = await sender.destinationsForRoom(c.roomId);
        for (const [userId, typing] of changes) await sender.sendEdu(dests, 'm.typing', { room_id: c.roomId, user_id: userId, typing });
        return;
      }
      case 'receipts': {
        const from = this.receiptsPos ?? c.position - 1;
        if (c.position <= from) return;
        this.receiptsPos = c.position;
        const rows = await this.ctx.receipts.store.between(from, c.position);
        for (const r of rows) {
          if (!this.isLocal(r.userId) || r.receiptType !== 'm.read') continue;
          const data: JsonObject = { ts: typeof r.data['ts'] === 'number' ? r.data['ts'] : Date.now() };
          if (r.threadId) data['thread_id'] = r.threadId;
          const content = { [r.roomId]: { 'm.read': { [r.userId]: { event_ids: [r.eventId], data } } } };
          await sender.sendEdu(await sender.destinationsForRoom(r.roomId), 'm.receipt', content);
        }
        return;
      }
      case 'presence': {
        if (!this.isLocal(c.userId)) return;
        const p = await this.ctx.userData.getPresence(c.userId);
        const entry: JsonObject = { user_id: c.userId, presence: p.presence, last_active_ago: p.last_active_ago ?? 0, currently_active: !!p.currently_active };
        if (p.status_msg !== undefined) entry['status_msg'] = p.status_msg;
        await sender.sendEdu(await this.serversSharingWith(c.userId), 'm.presence', { push: [entry] });
        return;
      }
      case 'device_lists': {
        if (!this.isLocal(c.userId)) return;
        await this.ctx.federationRooms.devices.localChanged(c.userId, () => this.serversSharingWith(c.userId));
        return;
      }
      default:
        return;
    }
  }

  /** Queues to-device messages for users of other servers (one EDU per server). */
  async sendToDevice(sender: string, type: string, messageId: string, messages: Record<string, Record<string, JsonObject>>): Promise<void> {
    const byServer = new Map<string, Record<string, Record<string, JsonObject>>>();
    for (const [userId, byDevice] of Object.entries(messages)) {
      const s = serverNameOf(userId);
      if (!s || s === this.ctx.config.server_name) continue;
      const m = byServer.get(s) ?? {};
      m[userId] = byDevice;
      byServer.set(s, m);
    }
    for (const [server, msgs] of byServer) {
      await this.ctx.federationRooms.sender.sendEdu([server], 'm.direct_to_device', { sender, type, message_id: messageId, messages: msgs });
    }
  }

  /** One incoming EDU. Throws on malformed or unauthorised ones (the caller drops them). */
  async receive(origin: string, raw: unknown): Promise<void> {
    if (!isJsonObject(raw) || typeof raw['edu_type'] !== 'string' || !isJsonObject(raw['content'])) throw new Error('malformed EDU');
    const content = raw['content'];
    const { rooms } = this.ctx.federationRooms;
    const fromOrigin = (u: unknown): u is string => typeof u === 'string' && serverNameOf(u) === origin;
    switch (raw['edu_type']) {
      case 'm.typing': {
        const roomId = content['room_id'];
        const userId = content['user_id'];
        if (typeof roomId !== 'string' || !fromOrigin(userId)) throw new Error('bad m.typing');
        if (!(await rooms.requireAclAllows(roomId, origin).then(() => true, () => false))) return;
        if ((await this.ctx.eventStore.getMembership(roomId, userId)) !== 'join') return;
        await this.ctx.typing.setTyping(roomId, userId, content['typing'] === true, TYPING_TIMEOUT_MS);
        return;
      }
      case 'm.receipt': {
        for (const [roomId, byType] of Object.entries(content)) {
          if (!isJsonObject(byType) || !(await this.ctx.federationRooms.handler.serverAllowed(roomId, origin))) continue;
          const read = byType['m.read'];
          if (!isJsonObject(read)) continue;
          for (const [userId, r] of Object.entries(read)) {
            if (!fromOrigin(userId) || !isJsonObject(r) || !Array.isArray(r['event_ids'])) continue;
            if ((await this.ctx.eventStore.getMembership(roomId, userId)) !== 'join') continue;
            const data = isJsonObject(r['data']) ? r['data'] : {};
            const thread = typeof data['thread_id'] === 'string' ? data['thread_id'] : undefined;
            for (const eventId of r['event_ids']) {
              if (typeof eventId !== 'string') continue;
              await this.ctx.receipts.setReceipt(userId, roomId, 'm.read', eventId, thread).catch((err: unknown) =>
                this.log.debug({ err: (err as Error).message, roomId, eventId }, 'ignored a remote receipt'),
              );
            }
          }
        }
        return;
      }
      case 'm.presence': {
        const push = Array.isArray(content['push']) ? content['push'] : [];
        for (const p of push) {
          if (!isJsonObject(p) || !fromOrigin(p['user_id'])) continue;
          const state = p['presence'];
          if (state !== 'online' && state !== 'offline' && state !== 'unavailable') continue;
          await this.ctx.userData.setPresence(p['user_id'], state, typeof p['status_msg'] === 'string' ? p['status_msg'] : undefined);
        }
        return;
      }
      case 'm.device_list_update':
        await this.ctx.federationRooms.devices.receiveDeviceListUpdate(origin, content);
        return;
      case 'm.signing_key_update':
        await this.ctx.federationRooms.devices.receiveSigningKeyUpdate(origin, content);
        return;
      case 'm.direct_to_device': {
        const sender = content['sender'];
        const messages = content['messages'];
        if (!fromOrigin(sender) || typeof content['type'] !== 'string' || typeof content['message_id'] !== 'string' || !isJsonObject(messages)) {
          throw new Error('bad m.direct_to_device');
        }
        const local: Record<string, Record<string, JsonObject>> = {};
        for (const [userId, byDevice] of Object.entries(messages)) {
          if (this.isLocal(userId) && isJsonObject(byDevice)) local[userId] = byDevice as Record<string, JsonObject>;
        }
        await this.ctx.e2ee.toDevice.send({ sender, senderDevice: `federation:${origin}`, type: content['type'], txnId: content['message_id'], messages: local });
        return;
      }
      default:
        return;
    }
  }
}
