import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, MatrixError } from 'matrix-js-sdk';
import type { TestServer } from '../_util/server.js';
import { startAccountsServer } from './_client.js';

/** The real matrix-js-sdk (no crypto, no sync) against the server: registration, login, devices, profile. */
describe.each(['sqlite', 'postgres'] as const)('matrix-js-sdk on %s', (engine) => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startAccountsServer(engine);
  });
  afterAll(async () => {
    await srv?.close();
  });

  it('registers, logs in, and uses whoami, getDevices, setDisplayName, setDeviceDetails, deleteDevice', async () => {
    const anon = createClient({ baseUrl: srv.clientUrl });
    expect(await anon.isUsernameAvailable('sdkuser')).toBe(true);

    // Registration through user-interactive auth: the first call returns the flows and session.
    let session: string | undefined;
    try {
      await anon.registerRequest({ username: 'sdkuser', password: 'sdk password' });
      expect.unreachable('registration without auth must ask for user-interactive auth');
    } catch (e) {
      expect(e).toBeInstanceOf(MatrixError);
      const err = e as MatrixError;
      expect(err.httpStatus).toBe(401);
      expect(err.data.flows).toEqual([{ stages: ['m.login.dummy'] }]);
      session = err.data.session as string;
    }
    const reg = await anon.registerRequest({
      username: 'sdkuser',
      password: 'sdk password',
      initial_device_display_name: 'first',
      auth: { type: 'm.login.dummy', session },
    });
    expect(reg.user_id).toBe('@sdkuser:localhost');
    // The SDK turns M_USER_IN_USE into false.
    expect(await anon.isUsernameAvailable('sdkuser')).toBe(false);

    const login = await anon.loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'sdkuser' }, password: 'sdk password' });
    const client = createClient({ baseUrl: srv.clientUrl, accessToken: login.access_token, userId: login.user_id, deviceId: login.device_id });

    const who = await client.whoami();
    expect(who.user_id).toBe('@sdkuser:localhost');
    expect(who.device_id).toBe(login.device_id);

    const { devices } = await client.getDevices();
    expect(devices.map((d) => d.device_id).sort()).toEqual([reg.device_id!, login.device_id].sort());

    await client.setDisplayName('SDK User');
    expect(await client.getProfileInfo('@sdkuser:localhost')).toEqual({ displayname: 'SDK User' });

    await client.setDeviceDetails(reg.device_id!, { display_name: 'renamed' });
    expect((await client.getDevices()).devices.find((d) => d.device_id === reg.device_id)?.display_name).toBe('renamed');

    const uia = await client.deleteDevice(reg.device_id!).catch((e: MatrixError) => e);
    expect((uia as MatrixError).httpStatus).toBe(401);
    await client.deleteDevice(reg.device_id!, {
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: 'sdkuser' },
      password: 'sdk password',
      session: (uia as MatrixError).data.session as string,
    });
    expect((await client.getDevices()).devices.map((d) => d.device_id)).toEqual([login.device_id]);

    const caps = await client.getCapabilities();
    expect(caps['m.room_versions']?.default).toBe('12');
    await client.logout();
  });
});
