/** One JSON request over a keep-alive agent (http or https, from the URL), for load generators. */
import http from 'node:http';
import https from 'node:https';

export interface JsonResponse {
  status: number;
  /** The parsed body; the text itself when it is not JSON; undefined when empty. */
  body: any;
}

export function jsonRequest(
  url: string,
  opts: { method: string; body?: unknown; token?: string; agent: http.Agent | https.Agent },
): Promise<JsonResponse> {
  const u = new URL(url);
  const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
  const headers: Record<string, string | number> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (payload) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = payload.length;
  }
  return new Promise((resolve, reject) => {
    const req = (u.protocol === 'https:' ? https : http).request(u, { method: opts.method, headers, agent: opts.agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          body = text;
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}
