/**
 * What media responses say about their content: a sanitised Content-Type, a Content-Disposition
 * that is `inline` only for types a browser cannot run as a page (client-server API "Serving
 * inline content"), and headers that keep uploaded HTML or SVG inert.
 */

/** Content types the spec allows to be served with `Content-Disposition: inline`. */
export const INLINE_CONTENT_TYPES: ReadonlySet<string> = new Set([
  'text/css',
  'text/plain',
  'text/csv',
  'application/json',
  'application/ld+json',
  'image/jpeg',
  'image/gif',
  'image/png',
  'image/apng',
  'image/webp',
  'image/avif',
  'video/mp4',
  'video/webm',
  'video/ogg',
  'video/quicktime',
  'audio/mp4',
  'audio/webm',
  'audio/aac',
  'audio/mpeg',
  'audio/ogg',
  'audio/wave',
  'audio/wav',
  'audio/x-wav',
  'audio/x-pn-wav',
  'audio/flac',
  'audio/x-flac',
]);

/** The recommended Content-Security-Policy for served media, plus media-src for players. */
export const MEDIA_CSP =
  "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';";

/** Headers on every media response (downloads, thumbnails, and their errors). */
export const MEDIA_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': MEDIA_CSP,
  'x-content-type-options': 'nosniff',
  'cross-origin-resource-policy': 'cross-origin',
};

const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const MEDIA_TYPE_RE = new RegExp(`^${TOKEN}/${TOKEN}$`);
const PARAM_RE = new RegExp(`^(${TOKEN})=(${TOKEN}|"[^"\\\\\\r\\n]*")$`);

export const OCTET_STREAM = 'application/octet-stream';

/**
 * A content type safe to echo in a header: `type/subtype` with simple parameters, lower-cased
 * type. Anything malformed (or with control characters) is undefined.
 */
export function sanitizeContentType(raw: string | undefined | null): string | undefined {
  if (raw === undefined || raw === null) return undefined;
  const trimmed = raw.trim();
  if (trimmed === '' || trimmed.length > 255 || /[\u0000-\u001f\u007f]/.test(trimmed)) return undefined;
  const [type, ...params] = trimmed.split(';').map((p) => p.trim());
  if (!type || !MEDIA_TYPE_RE.test(type)) return undefined;
  const kept: string[] = [];
  for (const p of params) {
    if (p === '') continue;
    if (!PARAM_RE.test(p)) return undefined;
    kept.push(p);
  }
  return [type.toLowerCase(), ...kept].join('; ');
}

/** The media type without parameters, lower case (`text/plain; charset=utf-8` → `text/plain`). */
export function essence(contentType: string): string {
  return contentType.split(';')[0]!.trim().toLowerCase();
}

export function isInlineSafe(contentType: string): boolean {
  return INLINE_CONTENT_TYPES.has(essence(contentType));
}

/** A file name fit for storage: no path, no control characters, at most 255 characters. */
export function sanitizeFilename(raw: string | undefined | null): string | undefined {
  if (raw === undefined || raw === null) return undefined;
  const name = raw.replace(/[\u0000-\u001f\u007f]/g, '').trim();
  if (name === '') return undefined;
  return [...name].slice(0, 255).join('');
}

/** RFC 5987 `value-chars` percent-encoding (attr-char kept, everything else %XX of UTF-8). */
function encodeRfc5987(s: string): string {
  return encodeURIComponent(s).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * `Content-Disposition` per RFC 6266: `inline` for inline-safe types, `attachment` otherwise,
 * with `filename="..."` (ASCII, quotes and backslashes escaped, other characters replaced) and
 * `filename*=utf-8''...` when the name is not plain ASCII.
 */
export function contentDisposition(contentType: string, filename: string | undefined, forceInline = false): string {
  const kind = forceInline || isInlineSafe(contentType) ? 'inline' : 'attachment';
  if (filename === undefined || filename === '') return kind;
  const ascii = /^[\x20-\x7e]*$/.test(filename);
  const fallback = filename.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, (c) => `\\${c}`);
  if (ascii) return `${kind}; filename="${fallback}"`;
  return `${kind}; filename="${fallback}"; filename*=utf-8''${encodeRfc5987(filename)}`;
}

/** The file name in a Content-Disposition header (filename* preferred), if any. */
export function filenameFromDisposition(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const star = /filename\*\s*=\s*([^;]+)/i.exec(header);
  if (star) {
    const m = /^([A-Za-z0-9!#$&+.^_`{}~-]+)'[^']*'(.*)$/.exec(star[1]!.trim());
    if (m) {
      try {
        const bytes = Buffer.from(decodeURIComponent(m[2]!.replace(/"/g, '')), 'utf8');
        return sanitizeFilename(/^utf-?8$/i.test(m[1]!) ? bytes.toString('utf8') : bytes.toString('latin1'));
      } catch {
        /* fall back to filename= */
      }
    }
  }
  const quoted = /filename\s*=\s*"((?:[^"\\]|\\.)*)"/i.exec(header);
  if (quoted) return sanitizeFilename(quoted[1]!.replace(/\\(.)/g, '$1'));
  const token = /filename\s*=\s*([^;\s]+)/i.exec(header);
  if (token) return sanitizeFilename(token[1]);
  return undefined;
}
