import type { JsonObject } from '../../protocol/json.js';
import type { Database } from '../db.js';

export interface PendingTxn {
  txnId: number;
  eventIds: string[];
  ephemeral: JsonObject[];
  toDevice: JsonObject[];
}

export interface ScannedEvent {
  streamOrdering: number;
  eventId: string;
  roomId: string;
  type: string;
  stateKey: string | null;
  sender: string;
}

/** Application-service delivery state, transaction queue and per-network room directories. */
export class AppServiceStore {
  constructor(private readonly database: Database) {}

  private get db() {
    return this.database.db;
  }

  /** The service's stream position and last txn ID; created at `initialPosition` the first time. */
  async state(appserviceId: string, initialPosition: () => Promise<number>): Promise<{ position: number; lastTxnId: number }> {
    const row = await this.db.selectFrom('appservice_state').selectAll().where('appservice_id', '=', appserviceId).executeTakeFirst();
    if (row) return { position: Number(row.stream_position), lastTxnId: Number(row.last_txn_id) };
    const position = await initialPosition();
    await this.db
      .insertInto('appservice_state')
      .values({ appservice_id: appserviceId, stream_position: position, last_txn_id: 0 })
      .onConflict((oc) => oc.column('appservice_id').doNothing())
      .execute();
    const again = await this.db.selectFrom('appservice_state').selectAll().where('appservice_id', '=', appserviceId).executeTakeFirstOrThrow();
    return { position: Number(again.stream_position), lastTxnId: Number(again.last_txn_id) };
  }

  /** Events of the main stream after `from` and at most `upTo` (not outliers, not rejected), oldest first. */
  async eventsAfter(from: number, upTo: number, limit: number): Promise<ScannedEvent[]> {
    const rows = await this.db
      .selectFrom('events')
      .select(['stream_ordering', 'event_id', 'room_id', 'type', 'state_key', 'sender'])
      .where('stream_ordering', '>', from)
      .where('stream_ordering', '<=', upTo)
      .where('outlier', '=', 0)
      .where('rejected', 'is', null)
      .orderBy('stream_ordering', 'asc')
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      streamOrdering: Number(r.stream_ordering),
      eventId: r.event_id,
      roomId: r.room_id,
      type: r.type,
      stateKey: r.state_key,
      sender: r.sender,
    }));
  }

  /**
   * Moves the stream position to `position` and, when there is anything to send, queues a
   * transaction with the next ID, in one database transaction. Returns the new txn ID, if any.
   */
  async advance(
    appserviceId: string,
    position: number,
    txn: { eventIds: string[]; ephemeral: JsonObject[]; toDevice: JsonObject[] } | undefined,
    now: number,
  ): Promise<number | undefined> {
    return this.database.transaction(async (tx) => {
      const row = await tx.db.selectFrom('appservice_state').selectAll().where('appservice_id', '=', appserviceId).executeTakeFirstOrThrow();
      let txnId: number | undefined;
      let last = Number(row.last_txn_id);
      if (txn) {
        txnId = ++last;
        await tx.db
          .insertInto('appservice_txns')
          .values({
            appservice_id: appserviceId,
            txn_id: txnId,
            event_ids: JSON.stringify(txn.eventIds),
            ephemeral: JSON.stringify(txn.ephemeral),
            to_device: JSON.stringify(txn.toDevice),
            created_ts: now,
          })
          .execute();
      }
      await tx.db
        .updateTable('appservice_state')
        .set({ stream_position: Math.max(position, Number(row.stream_position)), last_txn_id: last })
        .where('appservice_id', '=', appserviceId)
        .execute();
      return txnId;
    });
  }

  /** The oldest transaction not yet acknowledged. */
  async oldestPending(appserviceId: string): Promise<PendingTxn | undefined> {
    const row = await this.db
      .selectFrom('appservice_txns')
      .selectAll()
      .where('appservice_id', '=', appserviceId)
      .orderBy('txn_id', 'asc')
      .limit(1)
      .executeTakeFirst();
    return (
      row && {
        txnId: Number(row.txn_id),
        eventIds: JSON.parse(row.event_ids) as string[],
        ephemeral: JSON.parse(row.ephemeral) as JsonObject[],
        toDevice: JSON.parse(row.to_device) as JsonObject[],
      }
    );
  }

  async pendingCount(appserviceId: string): Promise<number> {
    const row = await this.db
      .selectFrom('appservice_txns')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('appservice_id', '=', appserviceId)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  async acknowledge(appserviceId: string, txnId: number): Promise<void> {
    await this.db.deleteFrom('appservice_txns').where('appservice_id', '=', appserviceId).where('txn_id', '=', txnId).execute();
  }

  async setNetworkVisibility(appserviceId: string, networkId: string, roomId: string, visible: boolean): Promise<void> {
    if (visible) {
      await this.db
        .insertInto('appservice_room_networks')
        .values({ appservice_id: appserviceId, network_id: networkId, room_id: roomId })
        .onConflict((oc) => oc.columns(['appservice_id', 'network_id', 'room_id']).doNothing())
        .execute();
    } else {
      await this.db
        .deleteFrom('appservice_room_networks')
        .where('appservice_id', '=', appserviceId)
        .where('network_id', '=', networkId)
        .where('room_id', '=', roomId)
        .execute();
    }
  }

  /** Rooms published in one network's directory, or in every network's when `network` is absent. */
  async networkRooms(network?: { appserviceId: string; networkId: string }): Promise<string[]> {
    let q = this.db.selectFrom('appservice_room_networks').select('room_id').distinct();
    if (network) q = q.where('appservice_id', '=', network.appserviceId).where('network_id', '=', network.networkId);
    return (await q.orderBy('room_id').execute()).map((r) => r.room_id);
  }
}
