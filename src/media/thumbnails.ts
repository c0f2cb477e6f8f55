/**
 * Thumbnails with sharp (libvips): the sizes the spec recommends (32×32 and 96×96 crop,
 * 320×240, 640×480 and 800×600 scale), other sizes on request, never upscaled; animated WebP
 * from animated GIF/WebP when asked for. sharp is loaded on first use, so a platform without
 * its prebuilt binary still serves everything else.
 */
import type { Sharp, SharpOptions } from 'sharp';
import { essence } from './headers.js';

export type ThumbnailMethod = 'crop' | 'scale';

export interface ThumbnailTarget {
  width: number;
  height: number;
  method: ThumbnailMethod;
}

/** The spec's recommended sizes, generated for any request they cover. */
export const THUMBNAIL_PRESETS: readonly ThumbnailTarget[] = [
  { width: 32, height: 32, method: 'crop' },
  { width: 96, height: 96, method: 'crop' },
  { width: 320, height: 240, method: 'scale' },
  { width: 640, height: 480, method: 'scale' },
  { width: 800, height: 600, method: 'scale' },
];

/** Largest side of a thumbnail generated for a request no preset covers. */
export const MAX_DYNAMIC_SIDE = 2048;

/** Content types thumbnails are made from. */
export const THUMBNAILABLE_TYPES: ReadonlySet<string> = new Set(['image/jpeg', 'image/jpg', 'image/png', 'image/apng', 'image/gif', 'image/webp']);

export function canThumbnail(contentType: string | null): boolean {
  return contentType !== null && THUMBNAILABLE_TYPES.has(essence(contentType));
}

/**
 * The size to generate for a request: the smallest recommended size of the same method that is
 * at least as large as asked, else the requested size itself (capped at MAX_DYNAMIC_SIDE).
 */
export function chooseTarget(width: number, height: number, method: ThumbnailMethod): ThumbnailTarget {
  const covering = THUMBNAIL_PRESETS.filter((p) => p.method === method && p.width >= width && p.height >= height).sort(
    (a, b) => a.width * a.height - b.width * b.height,
  );
  if (covering[0]) return covering[0];
  return { width: Math.min(width, MAX_DYNAMIC_SIDE), height: Math.min(height, MAX_DYNAMIC_SIDE), method };
}

/** Output size of a thumbnail of a `sw`×`sh` image, never larger than the source. */
export function thumbnailSize(sw: number, sh: number, t: ThumbnailTarget): { width: number; height: number } {
  if (t.method === 'scale') {
    const f = Math.min(1, t.width / sw, t.height / sh);
    return { width: Math.max(1, Math.round(sw * f)), height: Math.max(1, Math.round(sh * f)) };
  }
  // crop: the target's aspect ratio; shrunk as a whole when the source is too small for it.
  const shrink = Math.min(1, sw / t.width, sh / t.height);
  return { width: Math.max(1, Math.round(t.width * shrink)), height: Math.max(1, Math.round(t.height * shrink)) };
}

export interface Thumbnail {
  data: Buffer;
  contentType: string;
  width: number;
  height: number;
  animated: boolean;
}

export class ThumbnailError extends Error {
  constructor(
    message: string,
    readonly reason: 'unsupported' | 'too_large',
  ) {
    super(message);
    this.name = 'ThumbnailError';
  }
}

type SharpFn = (input?: string | Buffer, options?: SharpOptions) => Sharp;
let sharpLoader: Promise<SharpFn | undefined> | undefined;

/** sharp, loaded once; undefined when it cannot be loaded on this platform. */
export function loadSharp(): Promise<SharpFn | undefined> {
  sharpLoader ??= import('sharp').then(
    (m) => {
      const sharp = (m.default ?? m) as unknown as SharpFn & { cache(v: boolean): void; concurrency(n: number): number };
      // No libvips operation cache (memory stays flat), one worker thread per image.
      sharp.cache(false);
      sharp.concurrency(1);
      return sharp;
    },
    () => undefined,
  );
  return sharpLoader;
}

/** Runs at most `limit` jobs at once. */
export class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

export interface SourceInfo {
  width: number;
  height: number;
  animated: boolean;
}

/** Dimensions of an image file (the first frame's height for animations). */
export async function imageInfo(path: string, maxPixels: number): Promise<SourceInfo> {
  const sharp = await loadSharp();
  if (!sharp) throw new ThumbnailError('image processing is not available on this server', 'unsupported');
  try {
    const meta = await sharp(path, { limitInputPixels: maxPixels }).metadata();
    if (!meta.width || !meta.height) throw new Error('no dimensions');
    const pages = meta.pages ?? 1;
    return { width: meta.width, height: meta.pageHeight ?? meta.height, animated: pages > 1 };
  } catch (err) {
    if (err instanceof ThumbnailError) throw err;
    const msg = (err as Error).message ?? '';
    if (/pixel limit/i.test(msg)) throw new ThumbnailError('image has too many pixels to thumbnail', 'too_large');
    throw new ThumbnailError('cannot read the image', 'unsupported');
  }
}

/**
 * Makes a thumbnail of the image at `path`. Animated output (WebP) only when `animated` is
 * asked for and the source has several frames; otherwise the first frame, as JPEG for JPEG
 * sources and PNG for the rest.
 */
export async function generateThumbnail(
  path: string,
  contentType: string,
  target: ThumbnailTarget,
  animated: boolean,
  maxPixels: number,
): Promise<Thumbnail> {
  const sharp = await loadSharp();
  if (!sharp) throw new ThumbnailError('image processing is not available on this server', 'unsupported');
  const info = await imageInfo(path, maxPixels);
  const animate = animated && info.animated;
  const size = thumbnailSize(info.width, info.height, target);
  try {
    let img = sharp(path, { limitInputPixels: maxPixels, animated: animate }).rotate();
    img = img.resize(size.width, size.height, {
      fit: target.method === 'crop' ? 'cover' : 'inside',
      withoutEnlargement: true,
    });
    if (animate) {
      const data = await img.webp({ effort: 2, quality: 80 }).toBuffer();
      return { data, contentType: 'image/webp', ...size, animated: true };
    }
    if (essence(contentType) === 'image/jpeg' || essence(contentType) === 'image/jpg') {
      const data = await img.jpeg({ quality: 80, mozjpeg: false }).toBuffer();
      return { data, contentType: 'image/jpeg', ...size, animated: false };
    }
    const data = await img.png({ compressionLevel: 6 }).toBuffer();
    return { data, contentType: 'image/png', ...size, animated: false };
  } catch (err) {
    const msg = (err as Error).message ?? '';
    if (/pixel limit/i.test(msg)) throw new ThumbnailError('image has too many pixels to thumbnail', 'too_large');
    throw new ThumbnailError(`cannot thumbnail the image: ${msg}`, 'unsupported');
  }
}
