import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRange } from '../../src/api/media/index.js';
import { contentDisposition, filenameFromDisposition, isInlineSafe, sanitizeContentType, sanitizeFilename } from '../../src/media/headers.js';
import { IpGuard, parseIp } from '../../src/media/ip-guard.js';
import { multipartBody, multipartBoundary, readMultipartMedia } from '../../src/media/multipart.js';
import { parseOpenGraph } from '../../src/media/preview.js';
import { chooseTarget, THUMBNAIL_PRESETS, thumbnailSize } from '../../src/media/thumbnails.js';

async function* from(...bufs: Buffer[]): AsyncGenerator<Buffer> {
  yield* bufs;
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of it) out.push(c);
  return Buffer.concat(out);
}

describe('media headers', () => {
  it('allows inline only for the spec list', () => {
    expect(isInlineSafe('image/png')).toBe(true);
    expect(isInlineSafe('text/plain; charset=utf-8')).toBe(true);
    expect(isInlineSafe('IMAGE/JPEG')).toBe(true);
    for (const t of ['text/html', 'image/svg+xml', 'application/xhtml+xml', 'application/javascript', 'text/xml', 'application/pdf']) {
      expect(isInlineSafe(t), t).toBe(false);
      expect(contentDisposition(t, undefined)).toBe('attachment');
    }
  });

  it('sanitises content types and file names', () => {
    expect(sanitizeContentType('Text/Plain; charset=utf-8')).toBe('text/plain; charset=utf-8');
    expect(sanitizeContentType('text/html\r\nSet-Cookie: x=1')).toBeUndefined();
    expect(sanitizeContentType('nonsense')).toBeUndefined();
    expect(sanitizeContentType('')).toBeUndefined();
    expect(sanitizeFilename('a\nb\u0000c.txt')).toBe('abc.txt');
    expect(sanitizeFilename('   ')).toBeUndefined();
  });

  it('round-trips file names through Content-Disposition (RFC 6266)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }), (name) => {
        const clean = sanitizeFilename(name);
        fc.pre(clean !== undefined);
        const header = contentDisposition('application/pdf', clean);
        expect(header.startsWith('attachment; filename="')).toBe(true);
        expect(/[\r\n]/.test(header)).toBe(false);
        expect(/^[\x20-\x7e]*$/.test(header)).toBe(true);
        expect(filenameFromDisposition(header)).toBe(clean);
      }),
    );
  });

  it('reads file names from other servers’ headers', () => {
    expect(filenameFromDisposition('inline; filename="a b.png"')).toBe('a b.png');
    expect(filenameFromDisposition('attachment; filename=plain.txt')).toBe('plain.txt');
    expect(filenameFromDisposition(`attachment; filename="x"; filename*=UTF-8''%E2%82%AC.txt`)).toBe('€.txt');
    expect(filenameFromDisposition('inline')).toBeUndefined();
  });

  it('parses byte ranges', () => {
    expect(parseRange('bytes=0-9', 100)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=50-500', 100)).toEqual({ start: 50, end: 99 });
    expect(parseRange('bytes=100-', 100)).toBe('unsatisfiable');
    expect(parseRange('bytes=0-1,5-6', 100)).toBeUndefined();
    expect(parseRange(undefined, 100)).toBeUndefined();
  });
});

describe('IP guard', () => {
  const guard = new IpGuard();
  it('refuses special-purpose IPv4 and IPv6 ranges', () => {
    for (const a of [
      '127.0.0.1',
      '127.255.0.9',
      '10.0.0.1',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '224.0.0.1',
      '255.255.255.255',
      '::',
      '::1',
      'fe80::1',
      'fc00::1',
      'fd12:3456::1',
      'ff02::1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '64:ff9b::a00:1',
      '2002:c0a8:0101::1',
      '[::1]',
      'fe80::1%eth0',
      'not an ip',
    ]) {
      expect(guard.isAllowed(a), a).toBe(false);
    }
  });
  it('allows public addresses', () => {
    for (const a of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '2002:0808:0808::1']) {
      expect(guard.isAllowed(a), a).toBe(true);
    }
  });
  it('applies configured extra and allowed ranges', () => {
    const g = new IpGuard({ deny: ['8.8.0.0/16', '2606:4700::/32'], allow: ['10.5.0.0/16'] });
    expect(g.isAllowed('8.8.8.8')).toBe(false);
    expect(g.isAllowed('2606:4700:4700::1111')).toBe(false);
    expect(g.isAllowed('10.5.1.1')).toBe(true);
    expect(g.isAllowed('10.6.1.1')).toBe(false);
    expect(() => new IpGuard({ deny: ['nonsense/8'] })).toThrow();
  });
  it('parses every IPv6 spelling of an address alike', () => {
    expect(parseIp('0:0:0:0:0:0:0:1')).toEqual(parseIp('::1'));
    expect(parseIp('::ffff:1.2.3.4')).toEqual(parseIp('::ffff:102:304'));
  });
});

describe('multipart/mixed', () => {
  it('reads back what it writes, however the bytes are chunked', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 5000 }), fc.integer({ min: 1, max: 700 }), async (bytes, chunk) => {
        const data = Buffer.from(bytes);
        const { stream, length } = multipartBody('b0undary', { k: 'v' }, { headers: { 'Content-Type': 'image/png' }, body: from(data), bodyLength: data.length });
        const whole = await collect(stream);
        expect(whole.length).toBe(length);
        const chunks = async function* () {
          for (let i = 0; i < whole.length; i += chunk) yield whole.subarray(i, i + chunk);
        };
        const parsed = await readMultipartMedia(chunks(), 'b0undary');
        expect(parsed.metadata).toEqual({ k: 'v' });
        expect(parsed.headers['content-type']).toBe('image/png');
        expect((await collect(parsed.body)).equals(data)).toBe(true);
      }),
      { numRuns: 60 },
    );
  });
  it('reads a Location part and other servers’ formatting', async () => {
    const text = '\r\n--xyz\r\nContent-Type: application/json\r\n\r\n{}\r\n--xyz\r\nLocation: https://cdn.example/x\r\n\r\n\r\n--xyz--\r\n';
    const parsed = await readMultipartMedia(from(Buffer.from(text)), 'xyz');
    expect(parsed.headers.location).toBe('https://cdn.example/x');
    expect((await collect(parsed.body)).length).toBe(0);
    expect(multipartBoundary('multipart/mixed; boundary="a b"')).toBe('a b');
    expect(multipartBoundary('multipart/mixed; boundary=abc')).toBe('abc');
    expect(multipartBoundary('application/octet-stream')).toBeUndefined();
    await expect(readMultipartMedia(from(Buffer.from('--xyz\r\nContent-Type: application/json\r\n\r\n{}\r\n--xyz\r\n\r\nabc')), 'xyz').then((p) => collect(p.body))).rejects.toThrow();
  });
});

describe('thumbnail sizes', () => {
  it('picks the smallest covering recommended size', () => {
    expect(chooseTarget(32, 32, 'crop')).toEqual({ width: 32, height: 32, method: 'crop' });
    expect(chooseTarget(33, 20, 'crop')).toEqual({ width: 96, height: 96, method: 'crop' });
    expect(chooseTarget(100, 100, 'scale')).toEqual({ width: 320, height: 240, method: 'scale' });
    expect(chooseTarget(700, 100, 'scale')).toEqual({ width: 800, height: 600, method: 'scale' });
    expect(chooseTarget(1000, 10, 'scale')).toEqual({ width: 1000, height: 10, method: 'scale' });
  });
  it('never upscales, never goes below the request when the source allows, keeps the aspect', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 1500 }), fc.integer({ min: 1, max: 1500 }), fc.boolean(), (sw, sh, w, h, crop) => {
        const method = crop ? 'crop' : 'scale';
        const t = chooseTarget(w, h, method);
        const out = thumbnailSize(sw, sh, t);
        expect(out.width).toBeLessThanOrEqual(Math.max(sw, 1));
        expect(out.height).toBeLessThanOrEqual(Math.max(sh, 1));
        if (crop && sw >= t.width && sh >= t.height) expect(out).toEqual({ width: t.width, height: t.height });
        if (!crop) {
          // Fits the box, touching it on one side unless the source is smaller.
          expect(out.width).toBeLessThanOrEqual(t.width);
          expect(out.height).toBeLessThanOrEqual(t.height);
          if (sw >= t.width || sh >= t.height) expect(out.width === t.width || out.height === t.height).toBe(true);
        }
      }),
    );
    expect(THUMBNAIL_PRESETS).toHaveLength(5);
  });
});

describe('OpenGraph parsing', () => {
  it('reads og: tags in any attribute order, decodes entities, falls back to title and description', () => {
    const og = parseOpenGraph(`<head><title>T</title>
      <meta content='It&#39;s &quot;here&quot; &#x2764;' property='og:title'>
      <META PROPERTY="og:image" CONTENT="https://x/y.png">
      <meta name="description" content="d"></head>`);
    expect(og).toEqual({ 'og:title': 'It\'s "here" ❤', 'og:image': 'https://x/y.png', 'og:description': 'd' });
    expect(parseOpenGraph('<title>\n  Only   title\n</title>')).toEqual({ 'og:title': 'Only title' });
    expect(parseOpenGraph('no html')).toEqual({});
  });
});
