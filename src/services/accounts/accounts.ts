import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import { MatrixError, errors } from '../../errors.js';
import { localpartAllowed, parseUserId } from '../../protocol/identifiers.js';
import type { JsonObject, JsonValue } from '../../protocol/json.js';
import type { Database, Tx } from '../../storage/db.js';
import type { AccountStore, DeviceRow, RegistrationTokenRow, SeenFrom, UiaSessionRow, UserRow } from '../../storage/stores/accounts.js';
import { RateLimiter } from './rate-limit.js';
import { hashPassword, hashToken, needsRehash, newDeviceId, newToken, randomString, verifyPassword, type ScryptParams } from './secrets.js';
import { UiaService, type StageChecker, type UiaRequest } from './uia.js';

/** Who made an authenticated request. */
export interface Requester {
  userId: string;
  deviceId: string;
  isAdmin: boolean;
  isGuest: boolean;
  /** Row ID of the access token used (absent for requests not made with an access token). */
  accessTokenId?: number;
  /** Set when the request was made with an application service's as_token. */
  appserviceId?: string;
  /** The account is suspended by an administrator: it may read but not act (M_USER_SUSPENDED). */
  suspended?: boolean;
  /** The account is locked (only logout is answered; set only when the caller allowed it). */
  locked?: boolean;
}

/** What a locked account gets on every request but logout (and on login). */
export function userLockedError(): MatrixError {
  return new MatrixError('M_USER_LOCKED', 401, 'This account has been locked', { soft_logout: true });
}

/** What a suspended account gets for the actions it may not take. */
export function userSuspendedError(): MatrixError {
  return new MatrixError('M_USER_SUSPENDED', 403, 'You cannot perform this action while suspended');
}

/** Identity assertion of an application-service request (`user_id`, `device_id` query parameters). */
export interface IdentityAssertion {
  userId?: string;
  deviceId?: string;
}

/** Resolves application-service tokens; undefined when the token is not an as_token. */
export interface AppServiceAuthenticator {
  /** Whether the token is an application service's as_token (synchronous: asked on every request). */
  isAppServiceToken(token: string): boolean;
  authenticate(token: string, assertion: IdentityAssertion): Promise<Requester | undefined>;
}

export interface Profile {
  displayname?: string;
  avatar_url?: string;
  [key: string]: JsonValue | undefined;
}

/** Callbacks other parts of the server attach to (rooms, e2ee, sync). Errors are logged, never thrown. */
export interface AccountHooks {
  /** A user's displayname or avatar_url changed (rooms update member events). */
  onProfileChanged: Array<(userId: string, profile: { displayname: string | null; avatar_url: string | null }) => void | Promise<void>>;
  /** Devices were deleted (e2ee removes their keys, device-list updates). */
  onDevicesDeleted: Array<(userId: string, deviceIds: string[]) => void | Promise<void>>;
  /** A device was created (device-list updates). */
  onDeviceCreated: Array<(userId: string, deviceId: string) => void | Promise<void>>;
  /** A user was deactivated (rooms make them leave every room). */
  onUserDeactivated: Array<(userId: string) => void | Promise<void>>;
}

export interface SessionTokens {
  user_id: string;
  device_id: string;
  access_token: string;
  refresh_token?: string;
  expires_in_ms?: number;
}

export interface NewSession {
  userId: string;
  /** Reused when it is an existing device of the user (its old tokens are revoked). */
  deviceId?: string;
  displayName?: string;
  ip?: string | null;
  /** The client supports refresh tokens: issue one and an expiring access token. */
  refreshable?: boolean;
}

export interface CreateAccount {
  localpart: string;
  password?: string | null;
  admin?: boolean;
  /** Allow a localpart starting with "_" (reserved for application services). */
  allowReserved?: boolean;
  userType?: string | null;
  displayname?: string | null;
}

const MAX_DEVICE_ID_LENGTH = 255;
const MAX_DISPLAYNAME_LENGTH = 256;
const MAX_PROFILE_BYTES = 64 * 1024;
const DEVICE_SEEN_INTERVAL_MS = 60_000;
export const REGISTRATION_TOKEN_GRAMMAR = /^[A-Za-z0-9._~-]{1,64}$/;

/**
 * Accounts, devices, access/refresh/login tokens, passwords, profiles, registration tokens and
 * user-interactive authentication. HTTP-independent: handlers and the CLI call it.
 */
export class AccountService {
  readonly hooks: AccountHooks = { onProfileChanged: [], onDevicesDeleted: [], onDeviceCreated: [], onUserDeactivated: [] };
  readonly uia: UiaService;
  readonly loginLimiter: RateLimiter;
  readonly registrationLimiter: RateLimiter;
  /** When each device's last use was last recorded: user ID → device ID → time. */
  private readonly seen = new Map<string, Map<string, number>>();
  private seenCount = 0;
  /** Application-service tokens are tried first when set. */
  appServiceAuth: AppServiceAuthenticator | undefined;

  constructor(
    private readonly config: Config,
    private readonly database: Database,
    readonly store: AccountStore,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.uia = new UiaService(store, (s) => this.releaseRegistrationToken(s), now);
    this.loginLimiter = new RateLimiter(config.rate_limits.login);
    this.registrationLimiter = new RateLimiter(config.rate_limits.registration);
  }

  get serverName(): string {
    return this.config.server_name;
  }

  private get scrypt(): ScryptParams {
    return { logN: this.config.password_hashing.scrypt_log_n, r: 8, p: 1 };
  }

  private fire<A extends unknown[]>(list: Array<(...args: A) => void | Promise<void>>, ...args: A): void {
    for (const fn of list) {
      try {
        Promise.resolve(fn(...args)).catch((err: unknown) => this.log.error({ err }, 'account hook failed'));
      } catch (err) {
        this.log.error({ err }, 'account hook failed');
      }
    }
  }

  isLocalUser(userId: string): boolean {
    return userId.endsWith(`:${this.config.server_name}`) && userId.startsWith('@');
  }

  // ---- users

  /** The lower-cased localpart a registration asks for, or M_INVALID_USERNAME. */
  normaliseLocalpart(username: string, allowReserved = false): string {
    const lp = username.startsWith('@') && username.endsWith(`:${this.serverName}`) ? username.slice(1, -this.serverName.length - 1) : username;
    const lower = lp.toLowerCase();
    if (!localpartAllowed(lower, this.serverName)) {
      throw new MatrixError('M_INVALID_USERNAME', 400, 'User ID may only contain a-z, 0-9, ".", "_", "=", "-", "/" and "+", and be at most 255 bytes long');
    }
    if (lower.startsWith('_') && !allowReserved) throw new MatrixError('M_INVALID_USERNAME', 400, 'User IDs starting with "_" are reserved');
    return lower;
  }

  /** Throws M_INVALID_USERNAME or M_USER_IN_USE unless the localpart can be registered. */
  async checkAvailable(username: string): Promise<string> {
    const lp = this.normaliseLocalpart(username);
    if (await this.store.getUser(`@${lp}:${this.serverName}`)) throw new MatrixError('M_USER_IN_USE', 400, 'User ID already taken');
    return lp;
  }

  async getUser(userId: string): Promise<UserRow | undefined> {
    return this.store.getUser(userId);
  }

  /** A fresh numeric localpart for registrations that do not choose one. */
  async generateLocalpart(): Promise<string> {
    for (let i = 0; i < 20; i++) {
      const lp = String(100000 + Math.floor(Math.random() * 9_900_000_000));
      if (!(await this.store.getUser(`@${lp}:${this.serverName}`))) return lp;
    }
    return randomString(9).toLowerCase().replace(/[^a-z0-9]/g, 'x');
  }

  /** Creates an account (no device). The display name defaults to the localpart. */
  async createAccount(a: CreateAccount): Promise<string> {
    return (await this.registerAccount(a, {})).userId;
  }

  /**
   * Registration's final step, in one transaction: create the account, settle the UIA session
   * (and the registration token it used), and log in unless `login` is undefined.
   */
  async registerAccount(
    a: CreateAccount,
    opts: { session?: UiaSessionRow; login?: Omit<NewSession, 'userId'> },
  ): Promise<{ userId: string; tokens?: SessionTokens }> {
    const lp = this.normaliseLocalpart(a.localpart, a.allowReserved);
    const userId = `@${lp}:${this.serverName}`;
    // Hash before the transaction: SQLite serialises transactions, so keep them short.
    const passwordHash = a.password ? await hashPassword(a.password, this.scrypt) : null;
    const tokens = await this.database.transaction(async (tx) => {
      const ok = await this.store.insertUser(tx, {
        user_id: userId,
        password_hash: passwordHash,
        is_admin: a.admin ?? false,
        user_type: a.userType ?? null,
        created_ts: this.now(),
        displayname: a.displayname === undefined ? lp : a.displayname,
      });
      if (!ok) throw new MatrixError('M_USER_IN_USE', 400, 'User ID already taken');
      if (opts.session) {
        await this.completeRegistrationToken(opts.session, tx);
        await this.uia.finish(opts.session, tx);
      }
      return opts.login ? this.createSession({ ...opts.login, userId }, tx) : undefined;
    });
    return { userId, tokens };
  }

  // ---- sessions and tokens

  /** Creates (or reuses) a device and issues its tokens. */
  async createSession(s: NewSession, tx?: Tx): Promise<SessionTokens> {
    if (s.deviceId !== undefined && (s.deviceId.length === 0 || s.deviceId.length > MAX_DEVICE_ID_LENGTH)) {
      throw errors.invalidParam('device_id must be 1 to 255 characters');
    }
    const deviceId = s.deviceId ?? newDeviceId();
    const now = this.now();
    const accessToken = newToken('access');
    const refreshToken = s.refreshable ? newToken('refresh') : undefined;
    const lifetime = this.config.access_token_lifetime_ms;
    let created = false;
    const run = async (t: Tx) => {
      const existing = await this.store.getDevice(s.userId, deviceId, t);
      if (existing) await this.store.deleteAccessTokensOfDevice(t, s.userId, deviceId);
      else created = true;
      await this.store.upsertDevice(t, { user_id: s.userId, device_id: deviceId, display_name: s.displayName ?? null, created_ts: now, ip: s.ip ?? null });
      const refreshId = refreshToken
        ? await this.store.insertRefreshToken(t, { token_hash: hashToken(refreshToken), user_id: s.userId, device_id: deviceId, created_ts: now })
        : null;
      await this.store.insertAccessToken(t, {
        token_hash: hashToken(accessToken),
        user_id: s.userId,
        device_id: deviceId,
        created_ts: now,
        expires_ts: refreshToken ? now + lifetime : null,
        refresh_token_id: refreshId,
      });
      t.onCommit(() => {
        if (created) this.fire(this.hooks.onDeviceCreated, s.userId, deviceId);
      });
    };
    if (tx) await run(tx);
    else await this.database.transaction(run);
    return {
      user_id: s.userId,
      device_id: deviceId,
      access_token: accessToken,
      ...(refreshToken ? { refresh_token: refreshToken, expires_in_ms: lifetime } : {}),
    };
  }

  /**
   * Resolves an access token: M_UNKNOWN_TOKEN (401) when unknown, with `soft_logout: true`
   * when it merely expired (the client can refresh); M_USER_DEACTIVATED for deactivated users.
   */
  async authenticate(token: string, seen: SeenFrom, assertion: IdentityAssertion = {}, opts: { allowLocked?: boolean } = {}): Promise<Requester> {
    const appServices = this.appServiceAuth;
    if (appServices?.isAppServiceToken(token)) {
      const asRequester = await appServices.authenticate(token, assertion);
      if (asRequester) {
        if (asRequester.locked && !opts.allowLocked) throw userLockedError();
        return asRequester;
      }
    }
    const row = await this.store.findAccessToken(hashToken(token));
    if (!row) throw new MatrixError('M_UNKNOWN_TOKEN', 401, 'Unknown access token', { soft_logout: false });
    const now = this.now();
    if (row.expires_ts !== null && row.expires_ts <= now) {
      throw new MatrixError('M_UNKNOWN_TOKEN', 401, 'Access token has expired', { soft_logout: true });
    }
    if (row.deactivated) throw new MatrixError('M_USER_DEACTIVATED', 403, 'This account has been deactivated');
    if (row.locked && !opts.allowLocked) throw userLockedError();
    if (this.seenDue(row.user_id, row.device_id, now)) await this.noteSeen(row.user_id, row.device_id, now, seen);
    const requester: Requester = {
      userId: row.user_id,
      deviceId: row.device_id,
      isAdmin: row.is_admin === 1,
      isGuest: row.is_guest === 1,
      accessTokenId: Number(row.id),
    };
    if (row.suspended) requester.suspended = true;
    if (row.locked) requester.locked = true;
    return requester;
  }

  /**
   * Whether a device's last use is due to be recorded (at most once a minute per device); when
   * it is, takes the turn. Synchronous, so a request that records nothing awaits nothing.
   */
  private seenDue(userId: string, deviceId: string, now: number): boolean {
    let devices = this.seen.get(userId);
    const last = devices?.get(deviceId);
    if (last !== undefined && now - last < DEVICE_SEEN_INTERVAL_MS) return false;
    if (last === undefined && this.seenCount >= 10_000) {
      this.seen.clear();
      this.seenCount = 0;
      devices = undefined;
    }
    if (!devices) this.seen.set(userId, (devices = new Map()));
    if (last === undefined) this.seenCount++;
    devices.set(deviceId, now);
    return true;
  }

  /** Records a device's last use. Awaited (not fire-and-forget) so no write outlives its request, e.g. at shutdown. */
  private async noteSeen(userId: string, deviceId: string, now: number, seen: SeenFrom): Promise<void> {
    await this.store.touchDevice(userId, deviceId, now, seen).catch((err: unknown) => this.log.warn({ err }, 'could not record device last-seen'));
  }

  /** Password login: the user (full ID or localpart) and password, or 403 M_FORBIDDEN. */
  async checkPasswordLogin(user: string, password: string): Promise<string> {
    const userId = this.resolveLoginUser(user);
    const row = userId ? ((await this.store.getUser(userId)) ?? (await this.store.getUser(userId.toLowerCase()))) : undefined;
    if (!row || !row.password_hash) {
      // Same work as a real check, so timing does not reveal which users exist.
      await verifyPassword(password, dummyHash(this.scrypt.logN)).catch(() => false);
      throw errors.forbidden('Invalid username or password');
    }
    if (!(await verifyPassword(password, row.password_hash))) throw errors.forbidden('Invalid username or password');
    if (row.deactivated) throw new MatrixError('M_USER_DEACTIVATED', 403, 'This account has been deactivated');
    if (row.locked) throw userLockedError();
    if (needsRehash(row.password_hash, this.scrypt)) {
      await this.store.updateUser(row.user_id, { password_hash: await hashPassword(password, this.scrypt) });
    }
    return row.user_id;
  }

  private resolveLoginUser(user: string): string | undefined {
    if (!user.startsWith('@')) return `@${user.toLowerCase()}:${this.serverName}`;
    try {
      const id = parseUserId(user, { historical: true });
      return id.serverName === this.serverName ? user : undefined;
    } catch {
      return undefined;
    }
  }

  /** Token login (m.login.token): consumes the login token. */
  async checkTokenLogin(token: string): Promise<string> {
    const userId = await this.store.takeLoginToken(hashToken(token), this.now());
    if (!userId) throw errors.forbidden('Invalid or expired login token');
    const row = await this.store.getUser(userId);
    if (!row || row.deactivated) throw new MatrixError('M_USER_DEACTIVATED', 403, 'This account has been deactivated');
    if (row.locked) throw userLockedError();
    return userId;
  }

  /** A short-lived single-use token for m.login.token (POST /login/get_token). */
  async createLoginToken(userId: string): Promise<{ login_token: string; expires_in_ms: number }> {
    const token = newToken('login');
    const lifetime = this.config.login_token_lifetime_ms;
    await this.store.insertLoginToken({ token_hash: hashToken(token), user_id: userId, expires_ts: this.now() + lifetime });
    return { login_token: token, expires_in_ms: lifetime };
  }

  /** Exchanges a refresh token (single use) for a new access token and refresh token. */
  async refresh(refreshToken: string): Promise<{ access_token: string; refresh_token: string; expires_in_ms: number }> {
    const now = this.now();
    const lifetime = this.config.access_token_lifetime_ms;
    return this.database.transaction(async (tx) => {
      const old = await this.store.takeRefreshToken(tx, hashToken(refreshToken));
      if (!old) throw new MatrixError('M_UNKNOWN_TOKEN', 401, 'Unknown or already used refresh token', { soft_logout: false });
      const user = await this.store.getUser(old.user_id, tx);
      if (!user || user.deactivated) throw new MatrixError('M_UNKNOWN_TOKEN', 401, 'Unknown refresh token', { soft_logout: false });
      if (user.locked) throw userLockedError();
      await this.store.deleteAccessTokensOfRefreshToken(tx, old.id);
      const access = newToken('access');
      const refresh = newToken('refresh');
      const refreshId = await this.store.insertRefreshToken(tx, { token_hash: hashToken(refresh), user_id: old.user_id, device_id: old.device_id, created_ts: now });
      await this.store.insertAccessToken(tx, {
        token_hash: hashToken(access),
        user_id: old.user_id,
        device_id: old.device_id,
        created_ts: now,
        expires_ts: now + lifetime,
        refresh_token_id: refreshId,
      });
      return { access_token: access, refresh_token: refresh, expires_in_ms: lifetime };
    });
  }

  // ---- devices

  async listDevices(userId: string): Promise<DeviceRow[]> {
    return this.store.listDevices(userId);
  }

  async getDevice(userId: string, deviceId: string): Promise<DeviceRow | undefined> {
    return this.store.getDevice(userId, deviceId);
  }

  async renameDevice(userId: string, deviceId: string, displayName: string): Promise<boolean> {
    return this.store.renameDevice(userId, deviceId, displayName);
  }

  /**
   * Creates a device without issuing tokens (application services manage their users' devices
   * this way). Returns false, renaming it when asked, when the device already exists.
   */
  async createDevice(userId: string, deviceId: string, displayName: string | undefined, ip: string | null): Promise<boolean> {
    if (deviceId.length === 0 || deviceId.length > MAX_DEVICE_ID_LENGTH) throw errors.invalidParam('device_id must be 1 to 255 characters');
    return this.database.transaction(async (t) => {
      const existing = await this.store.getDevice(userId, deviceId, t);
      if (existing) {
        if (displayName !== undefined) await this.store.renameDevice(userId, deviceId, displayName, t);
        return false;
      }
      await this.store.upsertDevice(t, { user_id: userId, device_id: deviceId, display_name: displayName ?? null, created_ts: this.now(), ip });
      t.onCommit(() => this.fire(this.hooks.onDeviceCreated, userId, deviceId));
      return true;
    });
  }

  /** Deletes devices and everything that authenticates them. */
  async deleteDevices(userId: string, deviceIds: readonly string[], tx?: Tx): Promise<string[]> {
    const run = async (t: Tx) => {
      const gone = await this.store.deleteDevices(t, userId, deviceIds);
      t.onCommit(() => {
        const devices = this.seen.get(userId);
        for (const d of gone) if (devices?.delete(d)) this.seenCount--;
        if (gone.length > 0) this.fire(this.hooks.onDevicesDeleted, userId, gone);
      });
      return gone;
    };
    return tx ? run(tx) : this.database.transaction(run);
  }

  /** Deletes every device of the user except `keep`. */
  async deleteOtherDevices(userId: string, keep: string | undefined, tx?: Tx): Promise<string[]> {
    const ids = (await this.store.listDevices(userId, tx)).map((d) => d.device_id).filter((d) => d !== keep);
    return this.deleteDevices(userId, ids, tx);
  }

  // ---- password and deactivation

  async setPassword(userId: string, newPassword: string, opts: { logoutDevices: boolean; keepDeviceId?: string }): Promise<void> {
    if (newPassword.length === 0) throw new MatrixError('M_WEAK_PASSWORD', 400, 'The password must not be empty');
    const hash = await hashPassword(newPassword, this.scrypt);
    await this.database.transaction(async (tx) => {
      await this.store.updateUser(userId, { password_hash: hash }, tx);
      if (opts.logoutDevices) await this.deleteOtherDevices(userId, opts.keepDeviceId, tx);
    });
  }

  /** Deactivates: no password, no devices or tokens, profile cleared when `erase`. Irreversible. */
  async deactivate(userId: string, opts: { erase?: boolean } = {}): Promise<void> {
    await this.database.transaction(async (tx) => {
      await this.store.updateUser(userId, { deactivated: 1, password_hash: null, ...(opts.erase ? { displayname: null, avatar_url: null, profile_extra: null } : {}) }, tx);
      await this.deleteOtherDevices(userId, undefined, tx);
      tx.onCommit(() => this.fire(this.hooks.onUserDeactivated, userId));
    });
  }

  async setAdmin(userId: string, admin: boolean): Promise<void> {
    await this.store.updateUser(userId, { is_admin: admin ? 1 : 0 });
  }

  /** Suspends or unsuspends a local user (reversible; the user keeps their sessions). */
  async setSuspended(userId: string, suspended: boolean): Promise<void> {
    await this.store.updateUser(userId, { suspended: suspended ? 1 : 0 });
  }

  /** Locks or unlocks a local user (reversible; access tokens stay valid for after the unlock). */
  async setLocked(userId: string, locked: boolean): Promise<void> {
    await this.store.updateUser(userId, { locked: locked ? 1 : 0 });
  }

  // ---- user-interactive auth

  /** UIA stage checker for m.login.password, bound to the user the operation is for. */
  passwordStage(userId: string): StageChecker {
    return async (auth) => {
      const identifier = auth.identifier as Record<string, unknown> | undefined;
      const user =
        identifier && typeof identifier === 'object' && identifier.type === 'm.id.user' && typeof identifier.user === 'string'
          ? identifier.user
          : typeof auth.user === 'string'
            ? auth.user
            : undefined;
      if (typeof auth.password !== 'string') return { ok: false, errcode: 'M_BAD_JSON', error: 'password is required' };
      if (user !== undefined && this.resolveLoginUser(user) !== userId && this.resolveLoginUser(user)?.toLowerCase() !== userId.toLowerCase()) {
        return { ok: false, errcode: 'M_FORBIDDEN', error: 'You can only authenticate as yourself' };
      }
      try {
        const who = await this.checkPasswordLogin(userId, auth.password);
        if (who !== userId) return { ok: false, errcode: 'M_FORBIDDEN', error: 'Invalid password' };
      } catch {
        return { ok: false, errcode: 'M_FORBIDDEN', error: 'Invalid password' };
      }
      return { ok: true };
    };
  }

  /** Requires the user to confirm their password before a sensitive operation. */
  async requirePassword(userId: string, purpose: string, auth: unknown): Promise<UiaSessionRow> {
    const req: UiaRequest = { purpose: `${purpose}:${userId}`, flows: [['m.login.password']], checkers: { 'm.login.password': this.passwordStage(userId) } };
    const session = await this.uia.check(auth, req);
    await this.uia.finish(session);
    return session;
  }

  // ---- registration tokens

  /** Stage checker for m.login.registration_token: holds one use of the token while the session lives. */
  registrationTokenStage(): StageChecker {
    return async (auth) => {
      const token = auth.token;
      if (typeof token !== 'string') return { ok: false, errcode: 'M_MISSING_PARAM', error: 'token is required' };
      return this.database.transaction(async (tx) => {
        const row = await this.store.getRegistrationToken(token, tx);
        if (!row || !this.tokenUsable(row)) return { ok: false as const, errcode: 'M_FORBIDDEN' as const, error: 'Invalid registration token' };
        await this.store.adjustRegistrationToken(tx, token, 1, 0);
        return { ok: true as const, data: { registration_token: token } };
      });
    };
  }

  tokenUsable(row: RegistrationTokenRow): boolean {
    if (row.expiry_time !== null && row.expiry_time <= this.now()) return false;
    return row.uses_allowed === null || row.pending + row.completed < row.uses_allowed;
  }

  async registrationTokenValid(token: string): Promise<boolean> {
    if (!REGISTRATION_TOKEN_GRAMMAR.test(token)) return false;
    const row = await this.store.getRegistrationToken(token);
    return row !== undefined && this.tokenUsable(row);
  }

  /** Turns the session's pending use of a registration token into a completed one. */
  async completeRegistrationToken(session: UiaSessionRow, tx: Tx): Promise<void> {
    const token = session.data.registration_token;
    if (typeof token === 'string') await this.store.adjustRegistrationToken(tx, token, -1, 1);
  }

  private async releaseRegistrationToken(session: UiaSessionRow): Promise<void> {
    const token = session.data.registration_token;
    if (typeof token === 'string') await this.database.transaction((tx) => this.store.adjustRegistrationToken(tx, token, -1, 0));
  }

  async createRegistrationToken(opts: { token?: string; usesAllowed?: number | null; expiryTime?: number | null } = {}): Promise<RegistrationTokenRow> {
    const token = opts.token ?? randomString(12);
    if (!REGISTRATION_TOKEN_GRAMMAR.test(token)) throw errors.invalidParam('Registration tokens are 1 to 64 characters of A-Z a-z 0-9 . _ ~ -');
    const row = { token, uses_allowed: opts.usesAllowed ?? null, expiry_time: opts.expiryTime ?? null, created_ts: this.now() };
    if (!(await this.store.insertRegistrationToken(row))) throw errors.invalidParam(`Registration token ${token} already exists`);
    return { ...row, pending: 0, completed: 0 };
  }

  listRegistrationTokens(): Promise<RegistrationTokenRow[]> {
    return this.store.listRegistrationTokens();
  }

  deleteRegistrationToken(token: string): Promise<boolean> {
    return this.store.deleteRegistrationToken(token);
  }

  // ---- profiles

  /** A local user's profile, or undefined when there is no such (active) user. */
  async getProfile(userId: string): Promise<Profile | undefined> {
    const row = await this.store.getUser(userId);
    if (!row || row.deactivated) return undefined;
    const out: Profile = {};
    if (row.profile_extra) Object.assign(out, JSON.parse(row.profile_extra) as JsonObject);
    if (row.displayname !== null) out.displayname = row.displayname;
    if (row.avatar_url !== null) out.avatar_url = row.avatar_url;
    return out;
  }

  /** Sets (value) or removes (undefined) one profile field. */
  async setProfileField(userId: string, key: string, value: JsonValue | undefined): Promise<void> {
    const row = await this.store.getUser(userId);
    if (!row || row.deactivated) throw errors.notFound('No such user');
    if (key === 'displayname' || key === 'avatar_url') {
      if (value !== undefined && value !== null && typeof value !== 'string') throw errors.badJson(`${key} must be a string`);
      if (key === 'displayname' && typeof value === 'string' && value.length > MAX_DISPLAYNAME_LENGTH) {
        throw errors.badJson(`displayname is longer than ${MAX_DISPLAYNAME_LENGTH} characters`);
      }
      if (key === 'avatar_url' && typeof value === 'string' && value !== '' && !value.startsWith('mxc://')) {
        throw errors.badJson('avatar_url must be an mxc:// URI');
      }
      const v = typeof value === 'string' && value !== '' ? value : null;
      await this.store.updateUser(userId, { [key]: v });
      const next = { displayname: row.displayname, avatar_url: row.avatar_url, [key]: v };
      if (row[key] !== v) this.fire(this.hooks.onProfileChanged, userId, next);
      return;
    }
    if (key === 'm.tz' && value !== undefined && typeof value !== 'string') throw errors.badJson('m.tz must be a string');
    const extra = row.profile_extra ? (JSON.parse(row.profile_extra) as JsonObject) : {};
    if (value === undefined) delete extra[key];
    else extra[key] = value;
    const json = JSON.stringify(extra);
    const total = Buffer.byteLength(json) + Buffer.byteLength(row.displayname ?? '') + Buffer.byteLength(row.avatar_url ?? '');
    if (total > MAX_PROFILE_BYTES) throw new MatrixError('M_TOO_LARGE', 400, 'The profile would exceed 64 KiB');
    await this.store.updateUser(userId, { profile_extra: Object.keys(extra).length > 0 ? json : null });
  }

  async searchUsers(term: string, limit: number): Promise<{ limited: boolean; results: Array<{ user_id: string; display_name?: string; avatar_url?: string }> }> {
    const rows = await this.store.searchUsers(term, limit + 1);
    return {
      limited: rows.length > limit,
      results: rows.slice(0, limit).map((r) => ({
        user_id: r.user_id,
        ...(r.displayname !== null ? { display_name: r.displayname } : {}),
        ...(r.avatar_url !== null ? { avatar_url: r.avatar_url } : {}),
      })),
    };
  }
}

/** A valid hash of a random password, checked when the user does not exist (constant work). */
function dummyHash(logN: number): string {
  return `$scrypt$ln=${logN},r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`;
}
