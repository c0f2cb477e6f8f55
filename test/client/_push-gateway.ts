/**
 * A push gateway for tests, per the push gateway API: POST /_matrix/push/v1/notify records the
 * notification and answers `{rejected: [...]}`; unknown endpoints get 404 and other methods
 * 405 `M_UNRECOGNIZED`. It can reject pushkeys and fail temporarily (503).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  /** The `notification` object of the request. */
  n: any;
  /** Whether the gateway accepted it (false: answered with an error while failing). */
  accepted: boolean;
  at: number;
}

export class TestPushGateway {
  readonly received: Received[] = [];
  /** Pushkeys answered as rejected. */
  readonly rejectKeys = new Set<string>();
  /** While true, every notify request gets 503. */
  failing = false;
  private server!: Server;
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const send = (status: number, body: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        };
        if (req.url !== '/_matrix/push/v1/notify') return send(404, { errcode: 'M_UNRECOGNIZED', error: 'Unknown endpoint' });
        if (req.method !== 'POST') return send(405, { errcode: 'M_UNRECOGNIZED', error: 'Method not allowed' });
        let body: any;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          return send(400, { errcode: 'M_NOT_JSON', error: 'not JSON' });
        }
        if (typeof body?.notification !== 'object' || !Array.isArray(body.notification.devices)) {
          return send(400, { errcode: 'M_BAD_JSON', error: 'notification.devices is required' });
        }
        const accepted = !this.failing;
        this.received.push({ n: body.notification, accepted, at: Date.now() });
        if (!accepted) return send(503, { errcode: 'M_UNKNOWN', error: 'temporarily unavailable' });
        const rejected = body.notification.devices.map((d: any) => d.pushkey).filter((k: string) => this.rejectKeys.has(k));
        send(200, { rejected });
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/_matrix/push/v1/notify`;
    return this;
  }

  /** Accepted notifications sent to a pushkey. */
  forKey(pushkey: string): any[] {
    return this.received.filter((r) => r.accepted && r.n.devices.some((d: any) => d.pushkey === pushkey)).map((r) => r.n);
  }

  /** Waits until `pred` holds (polling), failing after `ms`. */
  async until<T>(pred: () => T | undefined | false, ms = 20_000, what = 'the push gateway'): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = pred();
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; received: ${JSON.stringify(this.received.map((r) => ({ ...r.n, accepted: r.accepted })))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
