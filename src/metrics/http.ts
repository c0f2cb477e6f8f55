import { createHash, timingSafeEqual } from 'node:crypto';
import type { HttpApp } from '../api/http.js';
import type { Metrics } from './registry.js';

/** Routes whose requests are not timed: streams that stay open for as long as someone watches. */
const UNTIMED_ROUTES = new Set(['/_myelin/stats/events']);

/**
 * Counts and times every request of a listener by route template (`/_matrix/client/v3/rooms/:roomId/send/...`,
 * never the raw URL), method and status. Requests that matched no route count as route "unmatched".
 */
export function instrumentHttp(app: HttpApp, metrics: Metrics, listener: string): void {
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    if (!UNTIMED_ROUTES.has(route)) metrics.httpRequest(listener, req.method, route, reply.statusCode, reply.elapsedTime);
    done();
  });
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export interface BasicAuth {
  username: string;
  password: string;
}

/** Whether an Authorization header carries these Basic credentials (constant-time comparison). */
export function basicAuthMatches(header: string | undefined, auth: BasicAuth): boolean {
  const m = header ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
  const given = m ? Buffer.from(m[1]!, 'base64').toString('utf8') : '';
  const expected = `${auth.username}:${auth.password}`;
  return timingSafeEqual(sha256(given), sha256(expected)) && m !== null;
}

/** GET /metrics on the metrics listener: Prometheus text format, optionally behind Basic auth. */
export function registerMetricsEndpoint(app: HttpApp, metrics: Metrics, auth?: BasicAuth): void {
  app.get('/metrics', async (req, reply) => {
    if (auth && !basicAuthMatches(req.headers.authorization, auth)) {
      reply.code(401).header('www-authenticate', 'Basic realm="Myelin metrics", charset="UTF-8"').type('text/plain; charset=utf-8');
      return 'Unauthorized\n';
    }
    const text = await metrics.text();
    reply.type(metrics.contentType).header('cache-control', 'no-store');
    return text;
  });
}
