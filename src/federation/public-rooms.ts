/**
 * Another server's public room directory, for a client's `/publicRooms?server=` (Element's
 * "Explore rooms" on another server): asked with the federation `/publicRooms`, its answer
 * checked for shape and passed on.
 */
import { errors, MatrixError } from '../errors.js';
import { isJsonObject, type JsonObject } from '../protocol/json.js';
import type { FederationClient } from './client.js';
import { FederationHttpError, FederationNotAllowedError } from './errors.js';

const TIMEOUT_MS = 15_000;
const MAX_BYTES = 4 * 1024 * 1024;

export interface RemoteDirectoryQuery {
  limit?: number;
  since?: string;
  /** Only with POST: a search term, and which networks (application services) to list. */
  filter?: { generic_search_term?: string };
  include_all_networks?: boolean;
  third_party_instance_id?: string;
}

export async function queryRemotePublicRooms(client: Pick<FederationClient, 'get' | 'post'>, server: string, q: RemoteDirectoryQuery): Promise<JsonObject> {
  const path = '/_matrix/federation/v1/publicRooms';
  const opts = { timeoutMs: TIMEOUT_MS, maxBytes: MAX_BYTES };
  // The plain listing goes as GET (which every server serves); a search or a network, as POST.
  const plain = q.filter?.generic_search_term === undefined && q.include_all_networks === undefined && q.third_party_instance_id === undefined;
  let answer: unknown;
  try {
    if (plain) {
      const query: Record<string, string> = {};
      if (q.limit !== undefined) query['limit'] = String(q.limit);
      if (q.since !== undefined) query['since'] = q.since;
      answer = await client.get(server, path, { ...opts, query });
    } else {
      const body: JsonObject = {};
      for (const [k, v] of Object.entries(q)) if (v !== undefined) body[k] = v as JsonObject[string];
      answer = await client.post(server, path, body, opts);
    }
  } catch (err) {
    if (err instanceof FederationNotAllowedError) throw errors.forbidden(`Federation with ${server} is not allowed`);
    if (err instanceof FederationHttpError && err.status >= 400 && err.status < 500) {
      const why = `${server} refused to list its rooms: ${err.message}`;
      if (err.status === 404) throw errors.notFound(why);
      if (err.status === 401 || err.status === 403) throw errors.forbidden(why);
      throw errors.invalidParam(why);
    }
    throw new MatrixError('M_UNKNOWN', 502, `Could not list the public rooms of ${server}: ${(err as Error).message}`);
  }
  if (!isJsonObject(answer) || !Array.isArray(answer['chunk'])) throw new MatrixError('M_UNKNOWN', 502, `${server} answered its room directory request with something other than a room list`);
  const out: JsonObject = { chunk: answer['chunk'].filter(isJsonObject) };
  for (const key of ['next_batch', 'prev_batch'] as const) if (typeof answer[key] === 'string') out[key] = answer[key];
  if (typeof answer['total_room_count_estimate'] === 'number') out['total_room_count_estimate'] = answer['total_room_count_estimate'];
  return out;
}
