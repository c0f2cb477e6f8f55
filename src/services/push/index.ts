import type { Logger } from 'pino';
import type { AppContext } from '../../app.js';
import type { Config } from '../../config/schema.js';
import type { FederationContext } from '../../federation/index.js';
import type { EventStore } from '../../storage/stores/events.js';
import type { PushStore } from '../../storage/stores/push.js';
import { GatewayClient, type GatewayPolicy } from './gateway-client.js';
import type { PushActions } from './push-actions.js';
import { PushSender } from './sender.js';

export { PushSender } from './sender.js';
export { GatewayClient, gatewayUrlProblem, type GatewayPolicy } from './gateway-client.js';

/** The part of the AppContext that delivers notifications to push gateways. */
export interface PushContext {
  readonly pushSender: PushSender;
  /** What gateway URLs the server accepts (push.allow_private_gateways / allow_http_gateways). */
  readonly pushGatewayPolicy: GatewayPolicy;
}

export function createPushServices(
  config: Config,
  log: Logger,
  deps: { pushStore: PushStore; eventStore: EventStore; pushActions: PushActions; federation?: FederationContext['federation'] },
): PushContext {
  const c = config.push;
  const pushGatewayPolicy: GatewayPolicy = { allowPrivate: c.allow_private_gateways, allowHttp: c.allow_http_gateways };
  const pushSender = new PushSender({
    store: deps.pushStore,
    events: deps.eventStore,
    pushActions: deps.pushActions,
    client: new GatewayClient(pushGatewayPolicy, c.request_timeout_ms, deps.federation?.transport.resolver),
    log: log.child({ subsystem: 'push-sender' }),
    options: {
      retryInitialMs: c.retry_initial_ms,
      retryMaxMs: Math.max(c.retry_initial_ms, c.retry_max_ms),
      maxRetryDurationMs: c.max_retry_duration_ms,
      badgeIntervalMs: c.badge_interval_ms,
    },
  });
  return { pushSender, pushGatewayPolicy };
}

/**
 * Wakes the sender when evaluated push actions commit and when a local user's read receipt
 * lands (badge updates). Nothing is delivered before `pushSender.start()`.
 */
export function wirePushSender(ctx: AppContext): void {
  ctx.pushActions.onCommitted((_position, notified) => ctx.pushSender.onActionsCommitted(notified));
  // A phone that logs out or whose account goes away must stop getting notifications.
  ctx.accounts.hooks.onDevicesDeleted.push((userId, deviceIds) => ctx.pushStore.deletePushersOfDevices(userId, deviceIds));
  ctx.accounts.hooks.onUserDeactivated.push((userId) => ctx.pushStore.deletePushersOfUser(userId));
  ctx.notifier.on('change', (change) => {
    if (change.stream === 'receipts' && change.userId !== undefined) ctx.pushSender.onReceipt(change.userId);
  });
}
