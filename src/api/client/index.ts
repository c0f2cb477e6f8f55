import type { AppContext } from '../../app.js';
import type { HttpApp } from '../http.js';
import { registerVersions } from './versions.js';

/**
 * The client-server API (/_matrix/client/...). One file per endpoint family, named after the
 * spec's operation; each exports a register function called here.
 */
export function registerClientApi(app: HttpApp, ctx: AppContext): void {
  registerVersions(app, () => ({}));
}
