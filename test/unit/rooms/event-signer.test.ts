import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { decodeBase64 } from '../../../src/protocol/base64.js';
import type { Pdu } from '../../../src/protocol/event.js';
import { computeEventId } from '../../../src/protocol/event-id.js';
import { eventIdFromSignable } from '../../../src/protocol/event-id.js';
import { attachEventSignature, prepareEventSignature, signEvent, verifyEventSignature } from '../../../src/protocol/event-signing.js';
import { ROOM_VERSIONS } from '../../../src/protocol/room-versions.js';
import { signingKeyFromSeed, verifyBytes } from '../../../src/protocol/signing.js';
import { EventSigner, type SignerBackend } from '../../../src/services/rooms/event-signer.js';

const KEY = signingKeyFromSeed('ed25519:1', decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1'));

/** A logger whose error lines are collected. */
function capture(): { log: pino.Logger; errors: string[] } {
  const errors: string[] = [];
  const log = pino({ level: 'error' }, { write: (line: string) => void errors.push(String((JSON.parse(line) as { msg: string }).msg)) });
  return { log, errors };
}

const texts = (n: number, tag = '') => Array.from({ length: n }, (_, i) => JSON.stringify({ n: i, tag, body: 'x'.repeat(i * 7) }));
const turn = () => new Promise<void>((r) => setImmediate(r));

describe('EventSigner', () => {
  for (const backend of ['worker', 'inline'] as SignerBackend[]) {
    it(`${backend}: signatures verify with the public key`, async () => {
      const { log, errors } = capture();
      const signer = new EventSigner({ key: KEY, log, backend });
      try {
        const ts = texts(20, backend);
        const sigs = await Promise.all(ts.map((t) => signer.sign(t)));
        for (let i = 0; i < ts.length; i++) {
          expect(sigs[i]).toMatch(/^[A-Za-z0-9+/]{86}$/);
          expect(verifyBytes(KEY.publicKey, ts[i]!, sigs[i]!)).toBe(true);
        }
        expect(signer.backend).toBe(backend);
        expect(errors).toEqual([]);
      } finally {
        await signer.stop();
      }
    });
  }

  it('sends the requests of one turn to the worker in one message', async () => {
    const { log } = capture();
    const signer = new EventSigner({ key: KEY, log, backend: 'worker' });
    try {
      await signer.sign('warm-up');
      const worker = (signer as unknown as { worker: { postMessage: (m: { texts: string[] }) => void } }).worker;
      const sizes: number[] = [];
      const post = worker.postMessage.bind(worker);
      worker.postMessage = (m) => {
        sizes.push(m.texts.length);
        post(m);
      };
      const ts = texts(7);
      const first = Promise.all(ts.map((t) => signer.sign(t)));
      await turn();
      const second = Promise.all(ts.slice(0, 3).map((t) => signer.sign(t)));
      const [a, b] = await Promise.all([first, second]);
      expect(sizes).toEqual([7, 3]);
      expect(b).toEqual(a.slice(0, 3));
      a.forEach((sig, i) => expect(verifyBytes(KEY.publicKey, ts[i]!, sig)).toBe(true));
    } finally {
      await signer.stop();
    }
  });

  it('signs inline what the worker owed when it dies, and everything later', async () => {
    const { log, errors } = capture();
    const signer = new EventSigner({ key: KEY, log, backend: 'worker' });
    try {
      await signer.sign('warm-up');
      const worker = (signer as unknown as { worker: { terminate: () => Promise<number> } }).worker;
      const ts = texts(5);
      const owed = ts.map((t) => signer.sign(t));
      await turn(); // sent to the worker
      await worker.terminate();
      const later = signer.sign('later');
      const sigs = await Promise.all(owed);
      sigs.forEach((sig, i) => expect(verifyBytes(KEY.publicKey, ts[i]!, sig)).toBe(true));
      expect(verifyBytes(KEY.publicKey, 'later', await later)).toBe(true);
      expect(signer.backend).toBe('inline');
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain('signing events on the main thread from now on');
    } finally {
      await signer.stop();
    }
  });

  it('falls back inline when the worker throws', async () => {
    const { log, errors } = capture();
    const workerSource = `require('node:worker_threads').parentPort.on('message', () => { throw new Error('boom'); });`;
    const signer = new EventSigner({ key: KEY, log, backend: 'worker', workerSource });
    try {
      const ts = texts(4);
      const sigs = await Promise.all(ts.map((t) => signer.sign(t)));
      sigs.forEach((sig, i) => expect(verifyBytes(KEY.publicKey, ts[i]!, sig)).toBe(true));
      expect(signer.backend).toBe('inline');
      expect(errors).toHaveLength(1);
    } finally {
      await signer.stop();
    }
  });

  it('falls back inline when the worker answers nonsense', async () => {
    const { log, errors } = capture();
    const workerSource = `const { parentPort } = require('node:worker_threads'); parentPort.on('message', (m) => parentPort.postMessage({ id: m.id, sigs: [] }));`;
    const signer = new EventSigner({ key: KEY, log, backend: 'worker', workerSource });
    try {
      const sig = await signer.sign('text');
      expect(verifyBytes(KEY.publicKey, 'text', sig)).toBe(true);
      expect(signer.backend).toBe('inline');
      expect(errors).toHaveLength(1);
    } finally {
      await signer.stop();
    }
  });

  it('stop answers what is pending, ends the worker and signs later requests inline', async () => {
    const { log, errors } = capture();
    const signer = new EventSigner({ key: KEY, log, backend: 'worker' });
    await signer.sign('warm-up');
    const worker = (signer as unknown as { worker: { threadId: number; once: (e: string, f: () => void) => void } }).worker;
    const exited = new Promise<void>((r) => worker.once('exit', r));
    const sent = signer.sign('sent');
    await turn();
    const queued = signer.sign('queued');
    await signer.stop();
    await exited;
    expect(verifyBytes(KEY.publicKey, 'sent', await sent)).toBe(true);
    expect(verifyBytes(KEY.publicKey, 'queued', await queued)).toBe(true);
    expect(verifyBytes(KEY.publicKey, 'after', await signer.sign('after'))).toBe(true);
    expect(signer.backend).toBe('inline');
    expect(errors).toEqual([]);
    await signer.stop();
  });
});

describe('prepareEventSignature / attachEventSignature', () => {
  const pdu = {
    room_id: '!r:example.org',
    type: 'm.room.message',
    sender: '@a:example.org',
    content: { body: 'hello', msgtype: 'm.text' },
    origin_server_ts: 1700000000000,
    prev_events: ['$p'],
    auth_events: ['$a'],
    depth: 3,
    signatures: { 'other.org': { 'ed25519:x': 'sig' } },
    unsigned: { age_ts: 5 },
  } as unknown as Pdu;

  it('gives the same event as signEvent, key order included', () => {
    for (const version of Object.values(ROOM_VERSIONS)) {
      const p = version.eventIdFormat === 'legacy' ? ({ ...pdu, event_id: '$e:example.org' } as Pdu) : pdu;
      const { hashed, signable } = prepareEventSignature(p, version);
      const signed = signEvent(p, version, 'example.org', KEY);
      const sig = signed.signatures['example.org']!['ed25519:1']!;
      expect(verifyBytes(KEY.publicKey, signable, sig)).toBe(true);
      expect(JSON.stringify(attachEventSignature(hashed, 'example.org', KEY.keyId, sig))).toBe(JSON.stringify(signed));
      expect(verifyEventSignature(signed, version, 'example.org', KEY.keyId, KEY.publicKey)).toBe(true);
      // The reference hash covers the same text.
      expect(eventIdFromSignable(hashed, signable, version)).toBe(computeEventId(signed, version));
    }
  });
});
