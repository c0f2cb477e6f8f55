import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { staticResolver } from '../../../src/federation/dns.js';
import { GatewayClient, GatewayFailedError, GatewayRefusedError, gatewayUrlProblem } from '../../../src/services/push/gateway-client.js';

const strict = { allowPrivate: false, allowHttp: false };
const open = { allowPrivate: true, allowHttp: true };

describe('gateway URL policy', () => {
  it('needs the notify path, https, no credentials and (by default) a public address', () => {
    expect(gatewayUrlProblem('https://push.example.org/_matrix/push/v1/notify', strict)).toBeUndefined();
    expect(gatewayUrlProblem('https://push.example.org/other', strict)).toMatch(/path/);
    expect(gatewayUrlProblem('ftp://push.example.org/_matrix/push/v1/notify', strict)).toBeDefined();
    expect(gatewayUrlProblem('not a url', strict)).toBeDefined();
    expect(gatewayUrlProblem('http://push.example.org/_matrix/push/v1/notify', strict)).toMatch(/https/);
    expect(gatewayUrlProblem('http://push.example.org/_matrix/push/v1/notify', { allowPrivate: false, allowHttp: true })).toBeUndefined();
    expect(gatewayUrlProblem('https://u:p@push.example.org/_matrix/push/v1/notify', strict)).toMatch(/credentials/);
    for (const host of ['127.0.0.1', '10.1.2.3', '192.168.1.10', '[::1]', '[fe80::1]', '169.254.169.254', '[::ffff:127.0.0.1]', '0.0.0.0']) {
      expect(gatewayUrlProblem(`https://${host}/_matrix/push/v1/notify`, strict), host).toMatch(/private/);
      expect(gatewayUrlProblem(`https://${host}/_matrix/push/v1/notify`, { allowPrivate: true, allowHttp: false }), host).toBeUndefined();
    }
    expect(gatewayUrlProblem('https://8.8.8.8/_matrix/push/v1/notify', strict)).toBeUndefined();
  });
});

describe('gateway client', () => {
  let server: Server;
  let base = '';
  let answer: (res: import('node:http').ServerResponse, body: any) => void = () => {};
  const bodies: any[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString());
        bodies.push({ body, headers: req.headers, method: req.method, url: req.url });
        answer(res, body);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));

  const url = () => `${base}/_matrix/push/v1/notify`;

  it('posts JSON and returns the rejected pushkeys', async () => {
    answer = (res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ rejected: ['bad', 7] }));
    const client = new GatewayClient(open, 5000);
    const res = await client.notify(url(), { notification: { devices: [] } });
    expect(res).toEqual({ status: 200, rejected: ['bad'] });
    const last = bodies[bodies.length - 1];
    expect(last.method).toBe('POST');
    expect(last.url).toBe('/_matrix/push/v1/notify');
    expect(last.headers['content-type']).toBe('application/json');
    expect(last.body).toEqual({ notification: { devices: [] } });
    // A 2xx answer that is not JSON is still a success.
    answer = (res) => res.writeHead(200).end('ok');
    expect(await client.notify(url(), {})).toEqual({ status: 200, rejected: [] });
    client.close();
  });

  it('retries 5xx, 429 and timeouts but not other 4xx answers', async () => {
    const client = new GatewayClient(open, 300);
    for (const [status, retry] of [
      [503, true],
      [500, true],
      [429, true],
      [400, false],
      [404, false],
    ] as const) {
      answer = (res) => res.writeHead(status).end('{}');
      const err = await client.notify(url(), {}).catch((e: unknown) => e);
      expect(err, String(status)).toBeInstanceOf(GatewayFailedError);
      expect((err as GatewayFailedError).retry, String(status)).toBe(retry);
      expect((err as GatewayFailedError).status).toBe(status);
    }
    answer = () => {}; // never answers
    const err = await client.notify(url(), {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayFailedError);
    expect((err as GatewayFailedError).retry).toBe(true);
    client.close();
  });

  it('refuses loopback by address and by name, and http, unless allowed', async () => {
    answer = (res) => res.writeHead(200).end('{"rejected":[]}');
    const client = new GatewayClient(strict, 2000);
    const port = new URL(base).port;
    const before = bodies.length;
    await expect(client.notify(url(), {})).rejects.toBeInstanceOf(GatewayRefusedError);
    const httpsOnly = new GatewayClient({ allowPrivate: false, allowHttp: true }, 2000);
    await expect(httpsOnly.notify(url(), {})).rejects.toBeInstanceOf(GatewayRefusedError);
    // 'localhost' resolves to loopback: refused when connecting, before any request is made.
    await expect(httpsOnly.notify(`http://localhost:${port}/_matrix/push/v1/notify`, {})).rejects.toBeInstanceOf(GatewayRefusedError);
    expect(bodies.length).toBe(before);
    client.close();
    httpsOnly.close();
  });

  it("checks every address a name resolves to through the server's resolver", async () => {
    const dns = staticResolver({ a: { 'evil.test': ['10.0.0.5', '127.0.0.1'] }, aaaa: { 'evil6.test': ['fd00::1'] } });
    const client = new GatewayClient(strict, 2000, dns);
    await expect(client.notify('https://evil.test/_matrix/push/v1/notify', {})).rejects.toBeInstanceOf(GatewayRefusedError);
    await expect(client.notify('https://evil6.test/_matrix/push/v1/notify', {})).rejects.toBeInstanceOf(GatewayRefusedError);
    expect(dns.queries).toEqual(expect.arrayContaining(['A evil.test', 'AAAA evil.test', 'A evil6.test']));
    // A name that does not resolve is a failure worth retrying (DNS may come back).
    const err = await client.notify('https://nowhere.test/_matrix/push/v1/notify', {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayFailedError);
    expect((err as GatewayFailedError).retry).toBe(true);
    client.close();
  });
});
