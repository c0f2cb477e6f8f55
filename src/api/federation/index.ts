/**
 * The server-server API on the federation listener: key publication and notary endpoints
 * (unauthenticated), `/version`, and the X-Matrix authentication other endpoints use.
 */
import { createRequire } from 'node:module';
import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { isValidServerName } from '../../protocol/identifiers.js';
import type { JsonObject } from '../../protocol/json.js';
import type { HttpApp } from '../http.js';
import { registerFederationOpenId } from './openid.js';
import { registerFederationThirdPartyInvites } from './third-party-invites.js';

const VERSION: string = (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;

/** Servers one notary request may ask about. */
const MAX_NOTARY_SERVERS = 100;
const NOTARY_CONCURRENCY = 8;

/** Route options that require an X-Matrix signed request; handlers read `originOf(req)`. */
export function federationAuth(ctx: Pick<AppContext, 'federation'>): {
  preHandler: (req: FastifyRequest, reply: FastifyReply) => Promise<void>;
} {
  return { preHandler: ctx.federation.verifier.preHandler };
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export function registerFederationApi(app: HttpApp, ctx: AppContext): void {
  const { keyring } = ctx.federation;

  const serverKeys = async (_req: FastifyRequest, reply: FastifyReply) => {
    reply.header('cache-control', 'public, max-age=3600');
    return keyring.ownKeyResponse();
  };
  app.get('/_matrix/key/v2/server', serverKeys);
  // Deprecated form with a key ID, still requested by some older servers; same answer.
  app.get('/_matrix/key/v2/server/:keyId', serverKeys);

  const notary = async (servers: Array<{ name: string; minValidUntil: number }>): Promise<{ server_keys: JsonObject[] }> => {
    const results = await mapLimit(servers, NOTARY_CONCURRENCY, (s) =>
      isValidServerName(s.name) && ctx.federation.isAllowed(s.name) ? keyring.notaryResponse(s.name, s.minValidUntil) : Promise.resolve(undefined),
    );
    return { server_keys: results.filter((r): r is JsonObject => r !== undefined) };
  };

  app.get(
    '/_matrix/key/v2/query/:serverName',
    {
      schema: {
        params: Type.Object({ serverName: Type.String() }),
        querystring: Type.Object({ minimum_valid_until_ts: Type.Optional(Type.Integer({ minimum: 0 })) }),
      },
    },
    async (req) => {
      const minValidUntil = req.query.minimum_valid_until_ts ?? Date.now();
      return notary([{ name: req.params.serverName, minValidUntil }]);
    },
  );

  app.post(
    '/_matrix/key/v2/query',
    {
      schema: {
        body: Type.Object({
          server_keys: Type.Record(
            Type.String(),
            Type.Record(Type.String(), Type.Object({ minimum_valid_until_ts: Type.Optional(Type.Integer()) })),
          ),
        }),
      },
    },
    async (req) => {
      const entries = Object.entries(req.body.server_keys);
      if (entries.length > MAX_NOTARY_SERVERS) throw errors.invalidParam(`At most ${MAX_NOTARY_SERVERS} servers per query`);
      const now = Date.now();
      return notary(
        entries.map(([name, keys]) => {
          const mins = Object.values(keys)
            .map((k) => k.minimum_valid_until_ts)
            .filter((m): m is number => typeof m === 'number');
          return { name, minValidUntil: mins.length > 0 ? Math.max(...mins) : now };
        }),
      );
    },
  );

  app.get('/_matrix/federation/v1/version', async () => ({ server: { name: 'Myelin', version: VERSION } }));
  registerFederationOpenId(app, ctx);
  registerFederationThirdPartyInvites(app, ctx);
}
