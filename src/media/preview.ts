/**
 * URL previews (GET /media/preview_url): OpenGraph data of a page, its image stored as local
 * media. Off unless media.url_preview.enabled; every fetch goes through safeFetch, so private,
 * loopback and link-local addresses are refused at connect time, redirects included.
 */
import type { Logger } from 'pino';
import type { MediaConfig } from '../config/schema.js';
import { MatrixError, errors } from '../errors.js';
import type { DnsResolver } from '../federation/dns.js';
import type { JsonObject } from '../protocol/json.js';
import { LruCache } from '../util/lru.js';
import { ContentTooLargeError } from './file-store.js';
import { essence, sanitizeContentType } from './headers.js';
import type { IpGuard } from './ip-guard.js';
import { newMediaId, type MediaRepository } from './repository.js';
import { ForbiddenAddressError, readLimited, safeFetch, type SafeFetchOptions } from './safe-fetch.js';
import { imageInfo } from './thumbnails.js';

/** HTML beyond this is not parsed (the head is at the start). */
const HTML_PARSE_BYTES = 1024 * 1024;
const CACHE_MS = 3_600_000;

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', '#39': "'" };

export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z0-9]+);/gi, (m, e: string) => {
    if (e[0] === '#') {
      const code = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return Number.isFinite(code) && code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : m;
    }
    return ENTITIES[e.toLowerCase()] ?? m;
  });
}

function attributes(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))/g;
  for (let m = re.exec(tag); m; m = re.exec(tag)) out[m[1]!.toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  return out;
}

/**
 * OpenGraph properties of an HTML document (`og:*` meta tags), with `og:title` from <title> and
 * `og:description` from the description meta tag when the page has no OpenGraph data for them.
 */
export function parseOpenGraph(html: string): Record<string, string> {
  const og: Record<string, string> = {};
  let description: string | undefined;
  for (const m of html.matchAll(/<meta\b[^>]*>/gi)) {
    const a = attributes(m[0]);
    const key = a['property'] ?? a['name'];
    const content = a['content'];
    if (key === undefined || content === undefined) continue;
    const k = key.toLowerCase();
    if (k.startsWith('og:') && !(k in og)) og[k] = content.trim().slice(0, 4096);
    if (k === 'description' && description === undefined) description = content.trim();
  }
  if (og['og:title'] === undefined) {
    const t = /<title\b[^>]*>([\s\S]*?)<\/title>/i.exec(html);
    if (t) og['og:title'] = decodeEntities(t[1]!.replace(/\s+/g, ' ').trim()).slice(0, 1024);
  }
  if (og['og:description'] === undefined && description !== undefined) og['og:description'] = description.slice(0, 4096);
  return og;
}

export interface UrlPreviewerDeps {
  config: MediaConfig;
  repository: MediaRepository;
  resolver: DnsResolver;
  guard: IpGuard;
  log: Logger;
}

export class UrlPreviewer {
  private readonly cache = new LruCache<string, { at: number; value: JsonObject }>(1000);

  constructor(private readonly deps: UrlPreviewerDeps) {}

  private fetchOptions(): SafeFetchOptions {
    const p = this.deps.config.url_preview;
    return { resolver: this.deps.resolver, guard: this.deps.guard, timeoutMs: p.timeout_ms, maxRedirects: p.max_redirects };
  }

  async preview(url: string, userId: string): Promise<JsonObject> {
    if (!this.deps.config.url_preview.enabled) throw errors.unrecognized('URL previews are disabled on this server');
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw errors.invalidParam('url is not a valid URL');
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw errors.invalidParam('Only http and https URLs can be previewed');
    parsed.hash = '';
    const key = parsed.toString();
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < CACHE_MS) return hit.value;
    const value = await this.fetchPreview(key, userId);
    this.cache.set(key, { at: Date.now(), value });
    return value;
  }

  private async fetchPreview(url: string, userId: string): Promise<JsonObject> {
    const max = this.deps.config.url_preview.max_size;
    try {
      const res = await safeFetch(url, this.fetchOptions());
      if (res.status !== 200) {
        res.abort();
        throw new MatrixError('M_UNKNOWN', 502, `The page answered ${res.status}`);
      }
      const type = sanitizeContentType(first(res.headers['content-type'])) ?? 'application/octet-stream';
      if (essence(type).startsWith('image/')) {
        return await this.storeImage(res.body, type, userId, max);
      }
      if (essence(type) !== 'text/html' && essence(type) !== 'application/xhtml+xml') {
        res.abort();
        return {};
      }
      const { body } = await readLimited(res, Math.min(max, HTML_PARSE_BYTES));
      const og: JsonObject = parseOpenGraph(body.toString('utf8'));
      const image = og['og:image'];
      delete og['og:image'];
      if (typeof image === 'string' && image !== '') {
        try {
          const imgUrl = new URL(image, url).toString();
          const imgRes = await safeFetch(imgUrl, this.fetchOptions());
          const imgType = sanitizeContentType(first(imgRes.headers['content-type'])) ?? '';
          if (imgRes.status === 200 && essence(imgType).startsWith('image/')) Object.assign(og, await this.storeImage(imgRes.body, imgType, userId, max));
          else imgRes.abort();
        } catch (err) {
          this.deps.log.debug({ err: (err as Error).message }, 'URL preview image not fetched');
        }
      }
      return og;
    } catch (err) {
      if (err instanceof MatrixError) throw err;
      if (err instanceof ForbiddenAddressError) throw errors.forbidden('That URL is not allowed to be previewed');
      if (err instanceof ContentTooLargeError) throw new MatrixError('M_TOO_LARGE', 502, 'The page is too large to preview');
      throw new MatrixError('M_UNKNOWN', 502, `Could not fetch the URL: ${(err as Error).message}`);
    }
  }

  /** Stores an image as local media and describes it OpenGraph-style. */
  private async storeImage(body: AsyncIterable<Buffer>, contentType: string, userId: string, max: number): Promise<JsonObject> {
    const repo = this.deps.repository;
    const temp = await repo.files.writeTemp(body, max);
    const mediaId = newMediaId();
    const now = Date.now();
    await repo.files.commit(temp);
    await repo.store.insert({
      serverName: repo.serverName,
      mediaId,
      uploader: null,
      contentType,
      filename: null,
      size: temp.size,
      sha256: temp.sha256,
      createdTs: now,
      unusedExpiresTs: null,
      lastAccessTs: now,
      authenticatedOnly: repo.config.freeze_unauthenticated,
    });
    const out: JsonObject = { 'og:image': `mxc://${repo.serverName}/${mediaId}`, 'og:image:type': essence(contentType), 'matrix:image:size': temp.size };
    try {
      const info = await imageInfo(repo.files.pathOf(temp.sha256), repo.config.max_thumbnail_pixels);
      out['og:image:width'] = info.width;
      out['og:image:height'] = info.height;
    } catch {
      /* not an image sharp can read: no dimensions */
    }
    void userId;
    return out;
  }
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
