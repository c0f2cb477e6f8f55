import { EventEmitter } from 'node:events';

/**
 * Post-commit notifications of per-user streams, for /sync and other readers.
 * Every write to account data or presence gets a stream position (the autoincrement
 * `stream_id` of its row) and, once its transaction has committed, is announced here:
 *
 *   ctx.streams.on('account_data', (userId, position, roomId) => …)  // roomId null: global
 *   ctx.streams.on('presence', (userId, position) => …)
 *
 * Listeners must be quick and must not throw (errors are logged by Database.transaction).
 */
export interface StreamEvents {
  account_data: [userId: string, position: number, roomId: string | null];
  presence: [userId: string, position: number];
}

export class Streams extends EventEmitter<StreamEvents> {
  constructor() {
    super();
    // One listener per waiting /sync request is normal.
    this.setMaxListeners(0);
  }
}
