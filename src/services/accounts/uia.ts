import { MatrixError, errors, type Errcode } from '../../errors.js';
import type { Tx } from '../../storage/db.js';
import type { AccountStore, UiaSessionRow } from '../../storage/stores/accounts.js';
import { randomString } from './secrets.js';

/** How long an unfinished user-interactive-auth session lives. */
export const UIA_SESSION_LIFETIME_MS = 60 * 60 * 1000;

/**
 * The 401 of the user-interactive authentication API: `flows`, `params`, `session`,
 * `completed`, and `errcode`/`error` only when a stage was attempted and failed.
 */
export class UiaRequired extends MatrixError {
  constructor(
    readonly body: { flows: Array<{ stages: string[] }>; params: Record<string, unknown>; session: string; completed: string[] },
    readonly failure?: { errcode: Errcode; error: string },
  ) {
    super(failure?.errcode ?? 'M_UNAUTHORIZED', 401, failure?.error ?? 'Additional authentication is required');
  }

  override toJSON(): Record<string, unknown> {
    return this.failure ? { ...this.body, ...this.failure } : { ...this.body };
  }
}

/** What a stage checker decides: done (with data to keep in the session), or failed. */
export type StageResult = { ok: true; data?: Record<string, unknown> } | { ok: false; errcode: Errcode; error: string };

export type StageChecker = (auth: Record<string, unknown>, session: UiaSessionRow, tx?: Tx) => Promise<StageResult>;

export interface UiaRequest {
  /** What the session authorises; a session cannot be reused for another purpose. */
  purpose: string;
  flows: string[][];
  params?: Record<string, unknown>;
  checkers: Record<string, StageChecker>;
}

/** Drives user-interactive authentication sessions stored in the database. */
export class UiaService {
  private lastSweep = 0;

  constructor(
    private readonly store: AccountStore,
    /** Called for each expired session before it is removed (e.g. to release a registration token). */
    private readonly onExpire: (session: UiaSessionRow) => Promise<void>,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Checks the `auth` dict of a request. Returns the completed session (the caller finishes the
   * operation, then calls `finish`), or throws UiaRequired (401) with what is still needed.
   */
  async check(auth: unknown, req: UiaRequest): Promise<UiaSessionRow> {
    const flows = req.flows.map((stages) => ({ stages }));
    const params = req.params ?? {};
    if (auth !== undefined && (auth === null || typeof auth !== 'object' || Array.isArray(auth))) {
      throw errors.badJson('auth must be an object');
    }
    const dict = (auth ?? {}) as Record<string, unknown>;
    if (dict.session !== undefined && typeof dict.session !== 'string') throw errors.badJson('auth.session must be a string');
    if (dict.type !== undefined && typeof dict.type !== 'string') throw errors.badJson('auth.type must be a string');

    let session: UiaSessionRow;
    if (typeof dict.session === 'string') {
      const found = await this.store.getUiaSession(dict.session);
      if (!found || found.created_ts < this.now() - UIA_SESSION_LIFETIME_MS) {
        throw new MatrixError('M_UNKNOWN', 400, 'Unknown or expired user-interactive auth session');
      }
      if (found.purpose !== req.purpose) throw errors.forbidden('This auth session was started for a different request');
      session = found;
    } else {
      await this.sweep();
      session = { session_id: randomString(18), purpose: req.purpose, completed: [], data: {}, created_ts: this.now() };
      await this.store.insertUiaSession(session);
    }
    const body = () => ({ flows, params, session: session.session_id, completed: [...session.completed] });

    const type = dict.type as string | undefined;
    if (type !== undefined && !session.completed.includes(type)) {
      const allowed = req.flows.some((f) => f.includes(type));
      const checker = req.checkers[type];
      if (!allowed || !checker) {
        throw new UiaRequired(body(), { errcode: 'M_UNRECOGNIZED', error: `Authentication type ${type} is not offered here` });
      }
      const res = await checker(dict, session);
      if (!res.ok) throw new UiaRequired(body(), { errcode: res.errcode, error: res.error });
      session.completed.push(type);
      session.data = { ...session.data, ...res.data };
      await this.store.updateUiaSession(session.session_id, session.completed, session.data);
    }
    const done = req.flows.some((f) => f.every((stage) => session.completed.includes(stage)));
    if (!done) throw new UiaRequired(body());
    return session;
  }

  /** Removes a completed session (inside the operation's transaction when given). */
  async finish(session: UiaSessionRow, tx?: Tx): Promise<void> {
    await this.store.deleteUiaSession(session.session_id, tx);
  }

  /** Drops expired sessions, at most once a minute. */
  async sweep(force = false): Promise<void> {
    const now = this.now();
    if (!force && now - this.lastSweep < 60_000) return;
    this.lastSweep = now;
    for (const s of await this.store.expiredUiaSessions(now - UIA_SESSION_LIFETIME_MS)) {
      await this.onExpire(s);
      await this.store.deleteUiaSession(s.session_id);
    }
  }
}
