import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../app.js';
import type { HttpApp } from '../api/http.js';
import { accessTokenOf, seenFrom } from '../api/auth.js';
import { MatrixError } from '../errors.js';
import { statsPage } from './page.js';
import type { StatsSample } from './sampler.js';

export const STATS_PATH = '/_myelin/stats';

/** Validated Basic credentials are remembered for a while, so EventSource reconnects do not rehash passwords. */
const BASIC_CACHE_MS = 10 * 60_000;

const require = createRequire(import.meta.url);
const assets = new Map<string, { type: string; body: Buffer }>();

function asset(file: string, type: string): { type: string; body: Buffer } {
  let a = assets.get(file);
  if (!a) {
    a = { type, body: readFileSync(require.resolve(`uplot/dist/${file}`)) };
    assets.set(file, a);
  }
  return a;
}

class Unauthorized extends Error {}

/**
 * The live stats page (GET /_myelin/stats, `?layout=small` for 480×320 and 320×240 screens),
 * its Server-Sent Events stream (GET /_myelin/stats/events: `history` once, then one `sample`
 * per interval) and its uPlot assets, served from the installed package. Access follows
 * `stats.access`: public, any local user, or administrators (Bearer token, `access_token`
 * query parameter, or HTTP Basic with a Matrix user name and password).
 */
export function registerStats(app: HttpApp, ctx: AppContext): void {
  const sampler = ctx.stats;
  const cfg = ctx.config.stats;
  const basicCache = new Map<string, { userId: string; until: number }>();
  const streams = new Set<ServerResponse>();

  async function authorise(req: FastifyRequest): Promise<void> {
    if (cfg.access === 'public') return;
    const header = req.headers.authorization;
    let userId: string;
    let isAdmin: boolean;
    if (header && /^Basic\s/i.test(header)) {
      const key = createHash('sha256').update(header).digest('base64');
      const now = Date.now();
      const hit = basicCache.get(key);
      if (hit && hit.until > now) userId = hit.userId;
      else {
        const decoded = Buffer.from(header.replace(/^Basic\s+/i, ''), 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon < 0) throw new Unauthorized();
        try {
          userId = await ctx.accounts.checkPasswordLogin(decoded.slice(0, colon), decoded.slice(colon + 1));
        } catch {
          throw new Unauthorized();
        }
        if (basicCache.size > 1000) basicCache.clear();
        basicCache.set(key, { userId, until: now + BASIC_CACHE_MS });
      }
      const user = await ctx.accounts.getUser(userId);
      if (!user || user.deactivated) throw new Unauthorized();
      isAdmin = user.is_admin === 1;
    } else {
      let token: string | undefined;
      try {
        token = accessTokenOf(req);
      } catch {
        throw new Unauthorized();
      }
      if (token === undefined) throw new Unauthorized();
      try {
        const r = await ctx.accounts.authenticate(token, seenFrom(req));
        userId = r.userId;
        isAdmin = r.isAdmin;
      } catch {
        throw new Unauthorized();
      }
    }
    if (cfg.access === 'admin' && !isAdmin) throw new MatrixError('M_FORBIDDEN', 403, 'The stats page is for server administrators');
  }

  async function guard(req: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    try {
      await authorise(req);
      return true;
    } catch (err) {
      if (!(err instanceof Unauthorized)) throw err;
      reply
        .code(401)
        .header('www-authenticate', 'Basic realm="Myelin stats", charset="UTF-8"')
        .header('cache-control', 'no-store')
        .type('text/plain; charset=utf-8')
        .send('Log in with your Matrix user name and password.\n');
      return false;
    }
  }

  app.get(STATS_PATH, async (req, reply) => {
    if (!(await guard(req, reply))) return reply;
    const q = req.query as Record<string, unknown>;
    const small = q.layout === 'small';
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store');
    return statsPage({ serverName: ctx.config.server_name, version: ctx.metrics.version, small, intervalMs: cfg.interval_ms });
  });

  for (const [file, type] of [
    ['uPlot.iife.min.js', 'text/javascript; charset=utf-8'],
    ['uPlot.min.css', 'text/css; charset=utf-8'],
  ] as const) {
    app.get(`${STATS_PATH}/${file}`, async (req, reply) => {
      if (!(await guard(req, reply))) return reply;
      const a = asset(file, type);
      reply.type(a.type).header('cache-control', 'public, max-age=86400');
      return a.body;
    });
  }

  app.get(`${STATS_PATH}/events`, async (req, reply) => {
    if (!(await guard(req, reply))) return reply;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
      'access-control-allow-origin': '*',
    });
    res.write(`retry: 3000\n\nevent: history\ndata: ${JSON.stringify(sampler.history())}\n\n`);
    streams.add(res);
    const send = (s: StatsSample) => {
      res.write(`event: sample\ndata: ${JSON.stringify(s)}\n\n`);
    };
    const unsubscribe = sampler.subscribe(send);
    const done = () => {
      streams.delete(res);
      unsubscribe();
    };
    res.on('close', done);
    res.on('error', done);
  });

  // Open streams would hold a graceful shutdown until its deadline: end them first.
  app.addHook('preClose', async () => {
    for (const res of [...streams]) res.end();
    streams.clear();
    sampler.stop();
  });
}
