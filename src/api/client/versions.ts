import type { HttpApp } from '../http.js';

/**
 * The Matrix specification versions this server implements. Clients choose features by this list,
 * so a version is added only when its endpoints are served.
 */
export const SUPPORTED_SPEC_VERSIONS = [
  'r0.0.1',
  'r0.1.0',
  'r0.2.0',
  'r0.3.0',
  'r0.4.0',
  'r0.5.0',
  'r0.6.0',
  'r0.6.1',
  'v1.1',
  'v1.2',
  'v1.3',
  'v1.4',
  'v1.5',
  'v1.6',
  'v1.7',
  'v1.8',
  'v1.9',
  'v1.10',
  'v1.11',
  'v1.12',
  'v1.13',
  'v1.14',
  'v1.15',
  'v1.16',
  'v1.17',
  'v1.18',
  'v1.19',
] as const;

/** GET /_matrix/client/versions (no authentication). */
export function registerVersions(app: HttpApp, unstableFeatures: () => Record<string, boolean>): void {
  app.get('/_matrix/client/versions', async () => ({
    versions: [...SUPPORTED_SPEC_VERSIONS],
    unstable_features: unstableFeatures(),
  }));
}
