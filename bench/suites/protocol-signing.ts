/**
 * Protocol hot paths: signing and verifying a ~1 KB event, canonical JSON, and event ID
 * derivation for v4+ events.
 */
import { report, throughput } from '../report.js';
import { canonicalJson } from '../../src/protocol/canonical-json.js';
import type { Pdu } from '../../src/protocol/event.js';
import { computeEventId } from '../../src/protocol/event-id.js';
import { checkContentHash } from '../../src/protocol/event-hash.js';
import { signEvent, verifyEventSignature } from '../../src/protocol/event-signing.js';
import { getRoomVersion } from '../../src/protocol/room-versions.js';
import { signingKeyFromSeed } from '../../src/protocol/signing.js';

const SUITE = 'protocol-signing';
const rv = getRoomVersion('10')!;
const key = signingKeyFromSeed('ed25519:bench', new Uint8Array(32).map((_, i) => i * 7));

function event(i: number): Pdu {
  return {
    type: 'm.room.message',
    room_id: '!benchroom0123456789:example.org',
    sender: '@someone.with.a.long.name:example.org',
    origin_server_ts: 1_700_000_000_000 + i,
    content: {
      msgtype: 'm.text',
      body: `message ${i}: ` + 'lorem ipsum dolor sit amet, consectetur adipiscing elit. '.repeat(8),
      format: 'org.matrix.custom.html',
      formatted_body: `<p>message ${i}</p>`,
      'm.mentions': { user_ids: ['@alice:example.org', '@bob:example.org'] },
    },
    prev_events: ['$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg'],
    auth_events: [
      '$AAAAF-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg',
      '$BBBBF-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg',
      '$CCCCF-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg',
    ],
    depth: 1000 + i,
    hashes: {} as Pdu['hashes'],
    signatures: {},
    unsigned: { age_ts: 1_700_000_000_000 },
  } as Pdu;
}

const signed = signEvent(event(0), rv, 'example.org', key);
const size = Buffer.byteLength(JSON.stringify(signed));
console.error(`event size ${size} bytes`);
report(SUITE, 'event size (signed, JSON)', size, 'bytes');

let i = 0;
const events = Array.from({ length: 256 }, (_, n) => event(n));
report(SUITE, 'signEvent (hash + redact + sign)', throughput(() => {
  signEvent(events[i++ & 255]!, rv, 'example.org', key);
}, 1500), 'ops/s');

const signedEvents = events.map((e) => signEvent(e, rv, 'example.org', key));
report(SUITE, 'verifyEventSignature', throughput(() => {
  if (!verifyEventSignature(signedEvents[i++ & 255]!, rv, 'example.org', key.keyId, key.publicKey)) throw new Error('verify failed');
}, 1500), 'ops/s');

report(SUITE, 'checkContentHash', throughput(() => {
  if (!checkContentHash(signedEvents[i++ & 255]!)) throw new Error('hash mismatch');
}, 1000), 'ops/s');

const cjBytes = Buffer.byteLength(canonicalJson(signed));
const cjOps = throughput(() => {
  canonicalJson(signedEvents[i++ & 255]!);
}, 1500);
report(SUITE, 'canonicalJson (~1 KB event)', cjOps, 'ops/s');
report(SUITE, 'canonicalJson throughput', (cjOps * cjBytes) / 1e6, 'MB/s');
report(SUITE, 'canonicalJson strict (~1 KB event)', throughput(() => {
  canonicalJson(signedEvents[i++ & 255]!, { strict: true });
}, 1000), 'ops/s');
report(SUITE, 'JSON.stringify baseline (~1 KB event)', throughput(() => {
  JSON.stringify(signedEvents[i++ & 255]!);
}, 1000), 'ops/s');

const v11 = getRoomVersion('11')!;
report(SUITE, 'computeEventId v10 (urlsafe)', throughput(() => {
  computeEventId(signedEvents[i++ & 255]!, rv);
}, 1500), 'ops/s');
report(SUITE, 'computeEventId v11', throughput(() => {
  computeEventId(signedEvents[i++ & 255]!, v11);
}, 1000), 'ops/s');
