import type { Logger } from 'pino';
import type { AppContext } from '../../app.js';
import type { Config } from '../../config/schema.js';
import type { Database } from '../../storage/db.js';
import type { EventStore } from '../../storage/stores/events.js';
import { PushStore } from '../../storage/stores/push.js';
import { ReceiptStore } from '../../storage/stores/receipts.js';
import type { Notifier } from '../../streams/notifier.js';
import type { UserDataService } from '../accounts/user-data.js';
import { PushActions } from '../push/push-actions.js';
import { PushRulesService } from '../push/push-rules.js';
import { ReceiptService } from './receipts.js';
import { accountDataExtension, presenceExtension, receiptsExtension, typingExtension } from './sync-extensions.js';
import { TypingService } from './typing.js';

export { TypingService } from './typing.js';
export { ReceiptService, type ReceiptType } from './receipts.js';

/** The parts of the AppContext for typing, receipts, push rules, notification counts and pushers. */
export interface EphemeralContext {
  readonly typing: TypingService;
  readonly receipts: ReceiptService;
  readonly pushRules: PushRulesService;
  readonly pushActions: PushActions;
  readonly pushStore: PushStore;
}

export function createEphemeralServices(
  config: Config,
  database: Database,
  log: Logger,
  deps: { eventStore: EventStore; notifier: Notifier; userData: UserDataService },
): EphemeralContext {
  const typing = new TypingService(deps.eventStore, deps.notifier);
  const receiptStore = new ReceiptStore(database);
  const receipts = new ReceiptService(database, receiptStore, deps.eventStore, deps.notifier);
  const pushRules = new PushRulesService(deps.userData);
  const pushStore = new PushStore(database);
  const pushActions = new PushActions({
    serverName: config.server_name,
    database,
    events: deps.eventStore,
    store: pushStore,
    receipts: receiptStore,
    rules: pushRules,
    log: log.child({ subsystem: 'push' }),
  });
  return { typing, receipts, pushRules, pushActions, pushStore };
}

/**
 * Adds the account data, presence, typing and receipt (with notification counts) sections to
 * /sync, keeps cached push rules fresh, and evaluates push rules as events are committed
 * (and, at start-up, for events committed before a crash that were not evaluated yet).
 */
export function wireEphemeral(ctx: AppContext): void {
  const log = ctx.log.child({ subsystem: 'push' });
  ctx.sync.addExtension(accountDataExtension(ctx.userData, ctx.pushRules));
  ctx.sync.addExtension(presenceExtension(ctx.userData, ctx.eventStore));
  ctx.sync.addExtension(typingExtension(ctx.typing));
  ctx.sync.addExtension(receiptsExtension(ctx.receipts, ctx.pushActions));

  ctx.streams.on('account_data', (userId) => ctx.pushRules.invalidate(userId));
  const evaluate = (to?: number) =>
    ctx.pushActions.catchUp(to).catch((err: unknown) => log.error({ err }, 'push rule evaluation stopped; it resumes with the next event'));
  ctx.notifier.on('change', (change) => {
    // Local events are evaluated in their own write; this covers the others.
    if (change.stream === 'events') void evaluate(change.position);
    else if (change.stream === 'receipts' && change.userId !== undefined) ctx.pushActions.receiptChanged(change.userId, change.roomId);
  });
  const pushActions = ctx.pushActions;
  ctx.roomEvents
    .setLocalEventProcessor({
      prepare: (roomId, event, stateAfter) => pushActions.prepareLocal(roomId, event, stateAfter),
      unsettle: () => pushActions.unsettle(),
      settle: () => pushActions.settle(),
    })
    .catch((err: unknown) => log.error({ err }, 'push rule evaluation stopped; it resumes with the next event'));
}
