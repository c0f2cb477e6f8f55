import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import { MatrixError } from '../../errors.js';
import type { Database } from '../../storage/db.js';
import { OpenIdStore } from '../../storage/stores/openid.js';
import type { AccountService } from './accounts.js';
import { hashToken, randomString } from './secrets.js';

/** How long an OpenID token is valid (the spec's example, and what clients expect). */
export const OPENID_TOKEN_LIFETIME_MS = 3_600_000;
/** Expired tokens are swept at most this often, when a new token is issued. */
const SWEEP_INTERVAL_MS = 60_000;

/** The body of POST /user/{userId}/openid/request_token. */
export interface OpenIdToken {
  access_token: string;
  token_type: 'Bearer';
  matrix_server_name: string;
  /** Seconds. */
  expires_in: number;
}

export interface OpenIdOptions {
  lifetimeMs?: number;
  now?: () => number;
}

/**
 * OpenID tokens: a user asks for one and hands it to a third party (a widget, an integration
 * manager, a call), which exchanges it over federation (`/openid/userinfo`) for the user's ID.
 * The tokens prove identity only; they authenticate nothing else. They are stored hashed and
 * expire; expired ones are removed when looked up and swept when new ones are issued.
 */
export class OpenIdService {
  private readonly lifetimeMs: number;
  private readonly now: () => number;
  private lastSweep = -Infinity;

  constructor(
    private readonly store: OpenIdStore,
    private readonly accounts: Pick<AccountService, 'getUser'>,
    private readonly serverName: string,
    private readonly log: Logger,
    opts: OpenIdOptions = {},
  ) {
    this.lifetimeMs = opts.lifetimeMs ?? OPENID_TOKEN_LIFETIME_MS;
    this.now = opts.now ?? Date.now;
  }

  /** A new token for a user of this server. */
  async issue(userId: string): Promise<OpenIdToken> {
    const now = this.now();
    await this.sweep(now);
    const token = randomString(32);
    await this.store.insert({ token_hash: hashToken(token), user_id: userId, expires_ts: now + this.lifetimeMs });
    return { access_token: token, token_type: 'Bearer', matrix_server_name: this.serverName, expires_in: Math.floor(this.lifetimeMs / 1000) };
  }

  /**
   * The user a token was issued to. 401 M_UNKNOWN_TOKEN when it is unknown, expired (it is
   * then removed), or its account has since been deactivated or locked.
   */
  async userIdOf(token: string): Promise<string> {
    const unknown = () => new MatrixError('M_UNKNOWN_TOKEN', 401, 'Access token unknown or expired');
    const tokenHash = hashToken(token);
    const row = await this.store.find(tokenHash);
    if (!row) throw unknown();
    if (row.expires_ts <= this.now()) {
      await this.store.delete(tokenHash);
      throw unknown();
    }
    const user = await this.accounts.getUser(row.user_id);
    if (!user || user.deactivated || user.locked) throw unknown();
    return row.user_id;
  }

  /** Removes a user's tokens (when the account is deactivated). */
  async revokeAll(userId: string): Promise<void> {
    await this.store.deleteOfUser(userId);
  }

  private async sweep(now: number): Promise<void> {
    if (now - this.lastSweep < SWEEP_INTERVAL_MS) return;
    this.lastSweep = now;
    const removed = await this.store.deleteExpired(now);
    if (removed > 0) this.log.debug({ removed }, 'expired OpenID tokens removed');
  }
}

/** The part of the AppContext for OpenID tokens. */
export interface OpenIdContext {
  readonly openid: OpenIdService;
}

export function createOpenIdServices(
  config: Config,
  database: Database,
  log: Logger,
  accounts: Pick<AccountService, 'getUser' | 'hooks'>,
  opts: OpenIdOptions = {},
): OpenIdContext {
  const openid = new OpenIdService(new OpenIdStore(database), accounts, config.server_name, log.child({ subsystem: 'openid' }), opts);
  accounts.hooks.onUserDeactivated.push((userId) => openid.revokeAll(userId));
  return { openid };
}
