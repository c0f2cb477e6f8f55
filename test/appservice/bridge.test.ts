/**
 * A small bridge built on matrix-appservice-bridge (the library real bridges use) against
 * Myelin: ghost users, rooms created on alias queries, messages relayed both ways with a fake
 * remote network in-process, transactions received; and delivery across a server restart while
 * the bridge is down.
 */
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../client/_client.js';
import { eventually, freePort, Homeserver, type Registration } from './_harness.js';

// The bridge library loads the bot SDK, which loads native end-to-end-encryption bindings that
// are downloaded at install time. This bridge does not encrypt; when the binary is absent
// (offline installs), stand in for it so the library can load.
const require = createRequire(import.meta.url);
const cryptoPath = require.resolve('@matrix-org/matrix-sdk-crypto-nodejs', { paths: [require.resolve('@vector-im/matrix-bot-sdk')] });
try {
  require(cryptoPath);
} catch {
  const unavailable = class {
    constructor() {
      throw new Error('end-to-end encryption is not available in this test bridge');
    }
  };
  const stub = new Proxy({}, { get: (_t, k) => (k === '__esModule' ? false : typeof k === 'symbol' ? undefined : unavailable) });
  require.cache[cryptoPath] = { id: cryptoPath, filename: cryptoPath, loaded: true, exports: stub, children: [], paths: [] } as never;
}
const lib = await import('matrix-appservice-bridge');
const { Bridge, AppServiceRegistration, Logger } = lib;
Logger.configure({ console: 'off' });

const AS_TOKEN = 'as-token-bridge-test-000000000000';
const HS_TOKEN = 'hs-token-bridge-test-000000000000';
const BOT = '@fakebridge:localhost';

function registration(url: string): Registration {
  return {
    id: 'fakebridge',
    url,
    as_token: AS_TOKEN,
    hs_token: HS_TOKEN,
    sender_localpart: 'fakebridge',
    namespaces: {
      users: [{ regex: '@_fake_.*:localhost', exclusive: true }],
      aliases: [{ regex: '#_fake_.*:localhost', exclusive: true }],
      rooms: [],
    },
    rate_limited: false,
    protocols: ['fakenet'],
  };
}

/** The remote chat network: channels of messages; what reaches it from Matrix lands in `inbox`. */
class FakeNetwork {
  readonly inbox: Array<{ channel: string; from: string; text: string }> = [];
  deliver(channel: string, from: string, text: string): void {
    this.inbox.push({ channel, from, text });
  }
}

/** The bridge: Matrix rooms `#_fake_<channel>` ↔ remote channels, remote users ↔ `@_fake_<nick>`. */
class TestBridge {
  readonly seen = new Map<string, number>();
  readonly transactions: string[] = [];
  readonly rooms = new Map<string, string>(); // room ID -> channel
  bridge: InstanceType<typeof Bridge>;

  constructor(hsUrl: string, readonly port: number, readonly remote: FakeNetwork) {
    const reg = AppServiceRegistration.fromObject(registration(`http://127.0.0.1:${port}`) as never);
    this.bridge = new Bridge({
      homeserverUrl: hsUrl,
      domain: 'localhost',
      registration: reg,
      disableStores: true,
      disableContext: true,
      controller: {
        onUserQuery: (user) => ({ name: `${user.localpart.replace(/^_fake_/, '')} (fake)` }),
        onAliasQuery: (_alias, localpart) => ({
          creationOpts: { room_alias_name: localpart, preset: 'public_chat', name: localpart.replace(/^_fake_/, '') },
        }),
        onAliasQueried: async (alias, roomId) => {
          this.rooms.set(roomId, alias.slice('#_fake_'.length).split(':')[0]!);
        },
        onEvent: (request) => {
          const ev = request.getData() as { event_id: string; type: string; sender: string; room_id: string; content: { body?: string } };
          this.seen.set(ev.event_id, (this.seen.get(ev.event_id) ?? 0) + 1);
          if (ev.type !== 'm.room.message' || ev.sender === BOT || ev.sender.startsWith('@_fake_')) return;
          const channel = this.rooms.get(ev.room_id);
          if (channel) this.remote.deliver(channel, ev.sender, ev.content.body ?? '');
        },
        onLog: () => undefined,
      },
    });
  }

  async start(): Promise<void> {
    await this.bridge.initialise();
    await this.bridge.listen(this.port, '127.0.0.1');
    this.bridge.appService.on('http-log', (line: string) => {
      const m = /transactions\/(\d+)/.exec(line);
      if (m) this.transactions.push(m[1]!);
    });
  }

  /** A remote user speaks in a channel: its ghost says it in the Matrix room. */
  async fromRemote(roomId: string, nick: string, text: string): Promise<string> {
    const intent = this.bridge.getIntent(`@_fake_${nick}:localhost`);
    const res = (await intent.sendText(roomId, text)) as { event_id: string };
    return res.event_id;
  }

  async stop(): Promise<void> {
    await this.bridge.close();
  }
}

async function message(client: TestClient, roomId: string, text: string, txn: string): Promise<string> {
  const res = await client.put(`/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txn}`, { msgtype: 'm.text', body: text });
  if (res.status !== 200) throw new Error(`send: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.event_id;
}

describe.each(['sqlite', 'postgres'] as const)('a matrix-appservice-bridge bridge (%s)', (engine) => {
  let hs: Homeserver;
  let port: number;
  let remote: FakeNetwork;
  let bridge: TestBridge;
  let dave: TestClient;

  beforeAll(async () => {
    port = await freePort();
    hs = await Homeserver.create(engine, [registration(`http://127.0.0.1:${port}`)]);
    await hs.start();
    remote = new FakeNetwork();
    bridge = new TestBridge(hs.url, port, remote);
    await bridge.start();
    dave = new TestClient(hs.url);
    await dave.register('dave');
  }, 60000);
  afterAll(async () => {
    await bridge?.stop().catch(() => undefined);
    await hs?.destroy();
  });

  it('creates rooms on alias queries, registers ghosts and relays messages both ways', async () => {
    // Joining an unknown alias in the bridge's namespace makes the bridge create the room.
    const join = await dave.post(`/_matrix/client/v3/join/${encodeURIComponent('#_fake_general:localhost')}`, {});
    expect(join.status).toBe(200);
    const roomId = join.body.room_id as string;
    expect(bridge.rooms.get(roomId)).toBe('general');

    // Matrix -> remote.
    const fromDave = await message(dave, roomId, 'hello from matrix', 'd1');
    await eventually(() => remote.inbox.some((m) => m.text === 'hello from matrix'), 15000, 'the remote network to get the message');
    expect(remote.inbox.find((m) => m.text === 'hello from matrix')).toEqual({ channel: 'general', from: '@dave:localhost', text: 'hello from matrix' });
    expect(bridge.seen.get(fromDave)).toBe(1);

    // Remote -> Matrix: the ghost is registered and joins on first use.
    const fromRemote = await bridge.fromRemote(roomId, 'alice', 'hello from the remote network');
    const ev = await dave.get(`/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(fromRemote)}`);
    expect(ev.body).toMatchObject({ sender: '@_fake_alice:localhost', content: { body: 'hello from the remote network' } });
    const members = await dave.get(`/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`);
    expect(Object.keys(members.body.joined).sort()).toEqual([BOT, '@_fake_alice:localhost', '@dave:localhost'].sort());
    // The ghost's own message comes back in a transaction; the library drops the echo (suppressEcho).
    expect(bridge.seen.has(fromRemote)).toBe(false);

    // Looking up an unknown ghost asks the bridge, which provisions it with a display name.
    const profile = await dave.get(`/_matrix/client/v3/profile/${encodeURIComponent('@_fake_bob:localhost')}`);
    expect(profile.body.displayname).toBe('bob (fake)');
    // Inviting an unknown ghost into one's own room asks the bridge first; the invite reaches it.
    const own = (await dave.post('/_matrix/client/v3/createRoom', {})).body.room_id as string;
    const invite = await dave.post(`/_matrix/client/v3/rooms/${encodeURIComponent(own)}/invite`, { user_id: '@_fake_carol:localhost' });
    expect(invite.status).toBe(200);
    expect((await dave.get(`/_matrix/client/v3/profile/${encodeURIComponent('@_fake_carol:localhost')}`)).body.displayname).toBe('carol (fake)');
    const state = await dave.get(`/_matrix/client/v3/rooms/${encodeURIComponent(own)}/state/m.room.member/${encodeURIComponent('@_fake_carol:localhost')}?format=event`);
    await eventually(() => bridge.seen.has(state.body.event_id), 15000, 'the invite to reach the bridge');
    expect(bridge.transactions.length).toBeGreaterThan(0);
    // Nothing was delivered twice.
    expect([...bridge.seen.values()].every((n) => n === 1)).toBe(true);
  });

  it('delivers every event once after a server restart while the bridge was down', async () => {
    const join = await dave.post(`/_matrix/client/v3/join/${encodeURIComponent('#_fake_restart:localhost')}`, {});
    const roomId = join.body.room_id as string;
    await bridge.stop();

    const sent: string[] = [];
    for (let i = 0; i < 3; i++) sent.push(await message(dave, roomId, `before restart ${i}`, `r${i}`));
    await new Promise((r) => setTimeout(r, 500)); // the server tries and fails at least once
    await hs.stop();
    await hs.start();
    dave = new TestClient(hs.url, dave.token);
    for (let i = 3; i < 6; i++) sent.push(await message(dave, roomId, `after restart ${i}`, `r${i}`));

    const channel = bridge.rooms.get(roomId)!;
    bridge = new TestBridge(hs.url, port, remote);
    bridge.rooms.set(roomId, channel);
    await bridge.start();
    await eventually(() => sent.every((id) => bridge.seen.has(id)), 20000, 'every message to reach the bridge');
    // Give duplicates, if any, a chance to arrive before counting.
    await new Promise((r) => setTimeout(r, 1000));
    for (const id of sent) expect(bridge.seen.get(id)).toBe(1);
    const relayed = remote.inbox.filter((m) => m.channel === 'restart').map((m) => m.text);
    expect(relayed).toEqual(['before restart 0', 'before restart 1', 'before restart 2', 'after restart 3', 'after restart 4', 'after restart 5']);
  }, 60000);
});
