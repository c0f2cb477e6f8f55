import { serverMeta } from './0001-server-meta.js';
import { accounts } from './0002-accounts.js';
import { events } from './0003-events.js';
import { receiptsPush } from './0004-receipts-push.js';
import { messaging } from './0005-messaging.js';
import { federation } from './0008-federation.js';
import { e2ee } from './0006-e2ee.js';
import { appservice } from './0009-appservice.js';
import { federationQueue } from './0010-federation-queue.js';
import { media } from './0011-media.js';
import { pusherDelivery } from './0012-pusher-delivery.js';
import { federationDevices } from './0013-federation-devices.js';
import { lateRedactions } from './0014-late-redactions.js';
import { dehydratedDevices } from './0015-dehydrated-devices.js';
import { accountModeration } from './0016-account-moderation.js';
import { timelineGaps } from './0017-timeline-gaps.js';
import { pushActionsLayout } from './0018-push-actions-layout.js';
import { sparseEventIndexes } from './0019-sparse-event-indexes.js';
import { openIdTokens } from './0020-openid-tokens.js';
import { deviceUserAgent } from './0021-device-user-agent.js';
import type { MigrationStep } from './types.js';

/** Every migration, in order. Append only: never edit or remove a released step. */
export const MIGRATIONS: readonly MigrationStep[] = [serverMeta, accounts, events, receiptsPush, messaging, e2ee, federation, appservice, federationQueue, media, pusherDelivery, federationDevices, lateRedactions, dehydratedDevices, accountModeration, timelineGaps, pushActionsLayout, sparseEventIndexes, openIdTokens, deviceUserAgent];
