/** Helpers for metrics tests: a server with its metrics listener on a free loopback port. */
import { startServer, type Engine, type TestServer } from '../_util/server.js';
import { TEST_OVERRIDES, TestClient } from '../client/_client.js';
import { parsePrometheusText, type Family } from '../_util/prom-text.js';

export const C = '/_matrix/client/v3';

export interface MetricsServer extends TestServer {
  metricsUrl: string;
  scrape(auth?: string): Promise<Map<string, Family>>;
}

export async function startMetricsServer(engine: Engine, overrides: Record<string, any> = {}): Promise<MetricsServer> {
  const { listeners, ...rest } = overrides;
  const t = await startServer({
    engine,
    overrides: {
      ...TEST_OVERRIDES,
      listeners: {
        client: { bind: '127.0.0.1', port: 0 },
        federation: { bind: '127.0.0.1', port: 0 },
        metrics: { bind: '127.0.0.1', port: 0, ...(listeners?.metrics ?? {}) },
      },
      ...rest,
    },
  });
  const addr = t.server.address('metrics')!;
  const metricsUrl = `http://127.0.0.1:${addr.port}`;
  return {
    ...t,
    metricsUrl,
    async scrape(auth?: string) {
      const res = await fetch(`${metricsUrl}/metrics`, auth ? { headers: { authorization: auth } } : {});
      if (res.status !== 200) throw new Error(`scrape: ${res.status}`);
      if (!res.headers.get('content-type')?.startsWith('text/plain; version=0.0.4')) throw new Error('scrape: unexpected content type');
      return parsePrometheusText(await res.text());
    },
  };
}

/** Registers a user, creates a room and returns the client and room ID. */
export async function userWithRoom(base: string, name: string): Promise<{ client: TestClient; roomId: string }> {
  const client = new TestClient(base);
  await client.register(name);
  const r = await client.post(`${C}/createRoom`, { preset: 'private_chat' });
  if (r.status !== 200) throw new Error(`createRoom: ${r.status}`);
  return { client, roomId: r.body.room_id };
}

export async function sendText(client: TestClient, roomId: string, txn: string, body = 'hello'): Promise<string> {
  const r = await client.put(`${C}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txn}`, { msgtype: 'm.text', body });
  if (r.status !== 200) throw new Error(`send: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.event_id;
}
