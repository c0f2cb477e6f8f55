import type { Config } from '../../config/schema.js';
import { errors } from '../../errors.js';
import type { HttpApp } from '../http.js';

/** What `/.well-known/matrix/server` delegates federation to: host[:port]. */
export function federationDelegation(config: Config): string {
  if (config.well_known.server) return config.well_known.server;
  const name = config.server_name;
  const hasPort = name.startsWith('[') ? /\]:\d+$/.test(name) : name.includes(':');
  // Port 0 (chosen by the OS at start) cannot be announced; fall back to the spec's default.
  const port = config.listeners.federation.port || 8448;
  return hasPort ? name : `${name}:${port}`;
}

export function clientBaseUrl(config: Config): string {
  return (config.well_known.client ?? config.public_baseurl).replace(/\/+$/, '');
}

/**
 * `/.well-known/matrix/client`, `/.well-known/matrix/server` and `/.well-known/matrix/support`
 * (404 unless `well_known.support` is configured).
 */
export function registerWellKnown(app: HttpApp, config: Config): void {
  app.get('/.well-known/matrix/client', async (_req, reply) => {
    reply.header('cache-control', 'public, max-age=3600');
    return { ...config.well_known.client_extra, 'm.homeserver': { base_url: clientBaseUrl(config) } };
  });
  app.get('/.well-known/matrix/server', async (_req, reply) => {
    reply.header('cache-control', 'public, max-age=3600');
    return { 'm.server': federationDelegation(config) };
  });
  app.get('/.well-known/matrix/support', async (_req, reply) => {
    const support = config.well_known.support;
    if (!support) throw errors.notFound('No support information is published for this server');
    reply.header('cache-control', 'public, max-age=3600');
    return support;
  });
}
