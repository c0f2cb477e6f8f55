/** Helpers for media tests: servers with an injected resolver, raw byte requests, test images. */
import { rmSync } from 'node:fs';
import sharp from 'sharp';
import { Myelin } from '../../src/app.js';
import { staticResolver, type StaticDnsRecords } from '../../src/federation/dns.js';
import { databaseOverrides, memoryLog, tempDir, type Engine } from '../_util/server.js';
import { TEST_OVERRIDES, TestClient } from '../client/_client.js';

export interface MediaServer {
  server: Myelin;
  url: string;
  dataDir: string;
  logs: string[];
  close(): Promise<void>;
}

export async function startMediaServer(engine: Engine, overrides: Record<string, unknown> = {}, dns: StaticDnsRecords = {}): Promise<MediaServer> {
  const dataDir = tempDir('myelin-media-');
  const logs: string[] = [];
  const db = await databaseOverrides(engine);
  const server = await Myelin.create({
    dataDir,
    env: {},
    logDestination: memoryLog(logs),
    federation: { resolver: staticResolver(dns) },
    overrides: {
      ...TEST_OVERRIDES,
      server_name: 'media.test',
      log_level: 'debug',
      database: db.database,
      listeners: { client: { bind: '127.0.0.1', port: 0 }, federation: { enabled: false }, metrics: { enabled: false } },
      ...overrides,
    },
  });
  const urls = await server.start();
  return {
    server,
    url: urls.client!,
    dataDir,
    logs,
    async close() {
      await server.stop();
      await db.pg?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface RawResponse {
  status: number;
  headers: Headers;
  body: Buffer;
  json(): any;
}

export async function raw(
  url: string,
  opts: { method?: string; token?: string; headers?: Record<string, string>; body?: Buffer | string | ReadableStream } = {},
): Promise<RawResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const res = await fetch(url, {
    method: opts.method ?? 'GET',
    headers,
    body: opts.body as RequestInit['body'],
    ...(opts.body instanceof ReadableStream ? { duplex: 'half' } : {}),
  } as RequestInit);
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) };
}

/** Uploads bytes through POST /_matrix/media/v3/upload; returns [serverName, mediaId]. */
export async function upload(base: string, token: string, data: Buffer | string, contentType?: string, filename?: string): Promise<[string, string]> {
  const q = filename !== undefined ? `?filename=${encodeURIComponent(filename)}` : '';
  const res = await raw(`${base}/_matrix/media/v3/upload${q}`, {
    method: 'POST',
    token,
    body: typeof data === 'string' ? Buffer.from(data) : data,
    headers: contentType ? { 'content-type': contentType } : {},
  });
  if (res.status !== 200) throw new Error(`upload: ${res.status} ${res.body.toString()}`);
  const uri: string = res.json().content_uri;
  const m = /^mxc:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!m) throw new Error(`bad content_uri ${uri}`);
  return [m[1]!, m[2]!];
}

export async function userClient(base: string, name: string): Promise<TestClient> {
  const c = new TestClient(base);
  await c.register(name);
  return c;
}

/** A test image: a gradient with some shapes, so crops and scales differ. */
export async function testImage(format: 'png' | 'jpeg' | 'gif' | 'webp', width: number, height: number, frames = 1): Promise<Buffer> {
  const pageHeight = height;
  const pixels = Buffer.alloc(width * pageHeight * frames * 4);
  for (let f = 0; f < frames; f++) {
    for (let y = 0; y < pageHeight; y++) {
      for (let x = 0; x < width; x++) {
        const i = ((f * pageHeight + y) * width + x) * 4;
        pixels[i] = (x * 255) / width;
        pixels[i + 1] = (y * 255) / pageHeight;
        pixels[i + 2] = (f * 80) % 256;
        pixels[i + 3] = 255;
      }
    }
  }
  let img = sharp(pixels, { raw: { width, height: pageHeight * frames, channels: 4, pageHeight } as any });
  if (format === 'png') img = img.png();
  else if (format === 'jpeg') img = img.jpeg();
  else if (format === 'gif') img = img.gif({ delay: Array(frames).fill(100) } as any);
  else img = img.webp({ delay: Array(frames).fill(100) } as any);
  return img.toBuffer();
}
