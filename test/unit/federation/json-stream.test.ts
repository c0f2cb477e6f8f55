import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JsonObjectStream, JsonStreamError } from '../../../src/federation/json-stream.js';

/** Feeds `body` cut at `cuts` (byte offsets) and returns what the stream reported. */
function run(body: string | Buffer, cuts: number[], streamed = ['state', 'auth_chain']) {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const got: Array<[string, unknown]> = [];
  const s = new JsonObjectStream({ streamed, onElement: (k, v) => got.push([k, v]) });
  let at = 0;
  for (const c of [...new Set(cuts)].filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b)) {
    s.write(bytes.subarray(at, c));
    at = c;
  }
  s.write(bytes.subarray(at));
  const rest = s.end();
  return { got, rest, count: s.elementCount, bytes: s.bytes };
}

/** Every split of `body` into two chunks, and into single bytes. */
function everySplit(body: string): Array<ReturnType<typeof run>> {
  const len = Buffer.byteLength(body);
  const out = [run(body, [])];
  for (let c = 1; c < len; c++) out.push(run(body, [c]));
  out.push(run(body, Array.from({ length: len }, (_, i) => i)));
  return out;
}

describe('JsonObjectStream', () => {
  it('hands over array elements one by one and keeps the other members', () => {
    const body = JSON.stringify({ origin: 'a.example', state: [{ a: 1 }, { b: [2, 3] }], members_omitted: false, auth_chain: [], event: { x: null } });
    const r = run(body, []);
    expect(r.got).toEqual([
      ['state', { a: 1 }],
      ['state', { b: [2, 3] }],
    ]);
    expect(r.rest).toEqual({ origin: 'a.example', members_omitted: false, event: { x: null } });
    expect(r.count).toBe(2);
    expect(r.bytes).toBe(Buffer.byteLength(body));
  });

  it('gives the same result however the body is cut: escapes, quotes, brackets in strings, unicode', () => {
    const value = {
      state: [
        { body: 'quote " and backslash \\ and \\" and "\\\\"', n: -1.5e3 },
        { body: 'brackets ] } [ { , : in a string', t: true, f: false, z: null },
        { body: 'unicode é 漢字 🎉 \u0000 \u2028 \ud83d\ude00 escapes \n\t\r\b\f \/' },
        'a bare string element',
        42,
        [[], {}, [{}]],
      ],
      auth_chain: [{ k: 'é' }],
      origin: 'ü.example',
      count: 12,
    };
    const body = JSON.stringify(value);
    for (const r of everySplit(body)) {
      expect(r.got.filter(([k]) => k === 'state').map(([, v]) => v)).toEqual(value.state);
      expect(r.got.filter(([k]) => k === 'auth_chain').map(([, v]) => v)).toEqual(value.auth_chain);
      expect(r.rest).toEqual({ origin: 'ü.example', count: 12 });
    }
  });

  it('decodes \\u escapes and multi-byte UTF-8 split at every byte', () => {
    const body = '{"state":["\\u00e9\\ud83c\\udf89","é🎉\\\\","\\"\\\\\\""],"x":"\\u0041"}';
    for (const r of everySplit(body)) {
      expect(r.got.map(([, v]) => v)).toEqual(['é🎉', 'é🎉\\', '"\\"']);
      expect(r.rest).toEqual({ x: 'A' });
    }
  });

  it('accepts whitespace anywhere between tokens and empty arrays and objects', () => {
    const body = ' \n{ "state" : [ \t{ "a" : [ ] } ,\r\n 1 ] , "auth_chain":[] , "e" : { } }\n ';
    for (const r of everySplit(body)) {
      expect(r.got).toEqual([
        ['state', { a: [] }],
        ['state', 1],
      ]);
      expect(r.rest).toEqual({ e: {} });
    }
    expect(run('{}', []).rest).toEqual({});
  });

  it('keeps a streamed key whose value is not an array as a member', () => {
    const r = run('{"state":{"not":"an array"}}', []);
    expect(r.got).toEqual([]);
    expect(r.rest).toEqual({ state: { not: 'an array' } });
  });

  it('keeps a "__proto__" member as an own property, as JSON.parse does', () => {
    const body = '{"__proto__":{"polluted":true},"state":[]}';
    const r = run(body, [3, 17], ['state']);
    expect(Object.getPrototypeOf(r.rest)).toBe(Object.prototype);
    expect(Object.keys(r.rest)).toEqual(['__proto__']);
    expect(r.rest).toEqual(JSON.parse('{"__proto__":{"polluted":true}}'));
  });

  it('agrees with JSON.parse on random objects cut at random places', () => {
    fc.assert(
      fc.property(
        fc.array(fc.jsonValue(), { maxLength: 8 }),
        fc.dictionary(fc.string().filter((k) => k !== 'state'), fc.jsonValue(), { maxKeys: 4 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (state, others, cutSeeds) => {
          const body = JSON.stringify({ ...others, state });
          const len = Buffer.byteLength(body);
          const r = run(body, cutSeeds.map((c) => c % Math.max(1, len)), ['state']);
          // JSON.stringify turns -0 into 0; compare through the same round trip.
          expect(r.got.map(([, v]) => v)).toEqual(JSON.parse(JSON.stringify(state)));
          expect(r.rest).toEqual(JSON.parse(JSON.stringify(others)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses bodies that are not one complete JSON object', () => {
    const bad = ['[1,2]', '{"state":[1,2}', '{"state":[1 2]}', '{"a":1', '{"a":1}}', '{"a" 1}', '{a:1}', '{"state":[{"x":tru}]}', '{"state":["unterminated]}', ''];
    for (const body of bad) {
      expect(() => run(body, []), body).toThrow(JsonStreamError);
    }
  });

  it('refuses a value larger than the limit without buffering the rest', () => {
    const s = new JsonObjectStream({ streamed: ['state'], onElement: () => {}, maxValueBytes: 100 });
    s.write('{"state":[{"a":"');
    expect(() => s.write('x'.repeat(200))).toThrow(/larger than 100 bytes/);
  });

  it('hands over elements while the rest of the body has not arrived', () => {
    const seen: unknown[] = [];
    const s = new JsonObjectStream({ streamed: ['state'], onElement: (_k, v) => seen.push(v) });
    s.write('{"state":[{"n":1},{"n":');
    expect(seen).toEqual([{ n: 1 }]);
    s.write('2}');
    expect(seen).toEqual([{ n: 1 }, { n: 2 }]);
    s.write(']}');
    expect(s.end()).toEqual({});
  });
});
