/**
 * Media services of one server: the file store under media.store_path, the metadata store,
 * the repository (uploads, downloads, remote cache, thumbnails) and URL previews.
 */
import type { Logger } from 'pino';
import { ConfigError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { FederationContext } from '../federation/index.js';
import type { Database } from '../storage/db.js';
import { MediaStore } from '../storage/stores/media.js';
import { MediaFileStore } from './file-store.js';
import { IpGuard } from './ip-guard.js';
import { UrlPreviewer } from './preview.js';
import { MediaRepository } from './repository.js';

export interface MediaContext {
  readonly media: MediaRepository;
  readonly urlPreviews: UrlPreviewer;
}

export function createMediaServices(config: Config, database: Database, log: Logger, federation: FederationContext['federation']): MediaContext {
  const mlog = log.child({ subsystem: 'media' });
  const p = config.media.url_preview;
  let guard: IpGuard;
  try {
    guard = new IpGuard({ deny: p.ip_blacklist, allow: p.ip_whitelist });
  } catch (err) {
    throw new ConfigError(`media.url_preview.ip_blacklist / ip_whitelist: ${(err as Error).message}`);
  }
  const media = new MediaRepository({
    serverName: config.server_name,
    config: config.media,
    store: new MediaStore(database),
    files: new MediaFileStore(config.media.store_path),
    federation,
    guard,
    log: mlog,
  });
  const urlPreviews = new UrlPreviewer({ config: config.media, repository: media, resolver: federation.transport.resolver, guard, log: mlog });
  return { media, urlPreviews };
}

export { MediaRepository, type MediaInfo, type ThumbnailInfo } from './repository.js';
export { UrlPreviewer } from './preview.js';
export { IpGuard } from './ip-guard.js';
