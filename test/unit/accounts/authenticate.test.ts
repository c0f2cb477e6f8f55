import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/schema.js';
import { AccountService, type AppServiceAuthenticator } from '../../../src/services/accounts/accounts.js';
import { hashToken } from '../../../src/services/accounts/secrets.js';
import type { Database, Tx } from '../../../src/storage/db.js';
import type { AccessTokenLookup, AccountStore, SeenFrom } from '../../../src/storage/stores/accounts.js';

const limits = { per_second: 1, burst: 1 };

/** An AccountService over a store that knows one token per device and records last-seen writes. */
function service() {
  let now = 1_000_000;
  const touched: Array<[string, string, number, string | null]> = [];
  const rows = new Map<string, AccessTokenLookup>();
  const store = {
    async findAccessToken(hash: string) {
      return rows.get(hash);
    },
    async touchDevice(userId: string, deviceId: string, ts: number, seen: SeenFrom) {
      touched.push([userId, deviceId, ts, seen.ip]);
    },
    async deleteDevices(_tx: Tx, _userId: string, deviceIds: readonly string[]) {
      return [...deviceIds];
    },
  } as unknown as AccountStore;
  const database = {
    async transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
      const hooks: Array<() => void> = [];
      const out = await fn({ onCommit: (h: () => void) => hooks.push(h) } as unknown as Tx);
      for (const h of hooks) h();
      return out;
    },
  } as unknown as Database;
  const config = { server_name: 'example.org', rate_limits: { login: limits, registration: limits } } as unknown as Config;
  const accounts = new AccountService(config, database, store, pino({ level: 'silent' }), () => now);
  const addToken = (token: string, row: Partial<AccessTokenLookup> & { user_id: string; device_id: string }) =>
    rows.set(hashToken(token), { id: rows.size + 1, expires_ts: null, is_admin: 0, is_guest: 0, deactivated: 0, suspended: 0, locked: 0, ...row });
  return { accounts, touched, addToken, advance: (ms: number) => (now += ms) };
}

describe('AccountService.authenticate', () => {
  it('records a device last use at most once a minute, and again once the device was deleted', async () => {
    const s = service();
    s.addToken('tok-a', { user_id: '@a:example.org', device_id: 'A' });
    s.addToken('tok-b', { user_id: '@a:example.org', device_id: 'B' });
    await s.accounts.authenticate('tok-a', { ip: '10.0.0.1' });
    await s.accounts.authenticate('tok-a', { ip: '10.0.0.2' });
    await s.accounts.authenticate('tok-b', { ip: null });
    expect(s.touched.map((t) => t.slice(1))).toEqual([
      ['A', 1_000_000, '10.0.0.1'],
      ['B', 1_000_000, null],
    ]);
    s.advance(59_999);
    await s.accounts.authenticate('tok-a', { ip: '10.0.0.3' });
    expect(s.touched).toHaveLength(2);
    s.advance(1);
    await s.accounts.authenticate('tok-a', { ip: '10.0.0.4' });
    expect(s.touched.at(-1)).toEqual(['@a:example.org', 'A', 1_060_000, '10.0.0.4']);
    await s.accounts.deleteDevices('@a:example.org', ['B']);
    await s.accounts.authenticate('tok-b', { ip: '10.0.0.5' });
    expect(s.touched.at(-1)).toEqual(['@a:example.org', 'B', 1_060_000, '10.0.0.5']);
    await s.accounts.authenticate('tok-a', { ip: '10.0.0.6' });
    expect(s.touched).toHaveLength(4);
  });

  it('returns the requester with its flags, and refuses expired, unknown, deactivated and locked tokens', async () => {
    const s = service();
    s.addToken('plain', { user_id: '@p:example.org', device_id: 'P', is_admin: 1 });
    s.addToken('susp', { user_id: '@s:example.org', device_id: 'S', suspended: 1 });
    s.addToken('locked', { user_id: '@l:example.org', device_id: 'L', locked: 1 });
    s.addToken('gone', { user_id: '@d:example.org', device_id: 'D', deactivated: 1 });
    s.addToken('old', { user_id: '@o:example.org', device_id: 'O', expires_ts: 1_000_000 });
    const plain = await s.accounts.authenticate('plain', { ip: null });
    expect(plain).toEqual({ userId: '@p:example.org', deviceId: 'P', isAdmin: true, isGuest: false, accessTokenId: 1 });
    expect(await s.accounts.authenticate('susp', { ip: null })).toEqual({ userId: '@s:example.org', deviceId: 'S', isAdmin: false, isGuest: false, accessTokenId: 2, suspended: true });
    await expect(s.accounts.authenticate('locked', { ip: null })).rejects.toMatchObject({ errcode: 'M_USER_LOCKED' });
    expect(await s.accounts.authenticate('locked', { ip: null }, {}, { allowLocked: true })).toMatchObject({ locked: true });
    await expect(s.accounts.authenticate('gone', { ip: null })).rejects.toMatchObject({ errcode: 'M_USER_DEACTIVATED' });
    await expect(s.accounts.authenticate('old', { ip: null })).rejects.toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', extra: { soft_logout: true } });
    await expect(s.accounts.authenticate('nope', { ip: null })).rejects.toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', extra: { soft_logout: false } });
  });

  it('asks the application services only about their own tokens', async () => {
    const s = service();
    s.addToken('user', { user_id: '@u:example.org', device_id: 'U' });
    const asked: string[] = [];
    const appServices: AppServiceAuthenticator = {
      isAppServiceToken: (token) => token === 'as-token',
      async authenticate(token, assertion) {
        asked.push(token);
        return { userId: assertion.userId ?? '@bridge:example.org', deviceId: '', isAdmin: false, isGuest: false, appserviceId: 'bridge' };
      },
    };
    s.accounts.appServiceAuth = appServices;
    expect((await s.accounts.authenticate('user', { ip: null })).userId).toBe('@u:example.org');
    expect(await s.accounts.authenticate('as-token', { ip: null }, { userId: '@bridge_x:example.org' })).toMatchObject({ userId: '@bridge_x:example.org', appserviceId: 'bridge' });
    expect(asked).toEqual(['as-token']);
  });
});
