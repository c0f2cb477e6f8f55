/**
 * Signs the canonical JSON of local events off the main thread. The main thread computes the
 * hashes, the event ID and the text to sign (`prepareEventSignature`); only the ed25519
 * signature, which nothing but the write needs, is made elsewhere:
 *
 * - `worker`: one worker thread holding the key (sent once), requests of one event-loop turn
 *   sent together in one message (`crypto.sign` on libuv's thread pool was tried instead: it
 *   costs the main thread nearly as much as signing there, one callback per signature);
 * - `inline`: on the main thread (one core, or after a failure or stop).
 *
 * A failure of the worker (it dies, errors, answers nonsense) is logged once and
 * every pending and later request is signed inline: a request is never lost.
 */
import type { KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { encodeBase64 } from '../../protocol/base64.js';
import { privateKeyObject, signBytes, type SigningKey } from '../../protocol/signing.js';

export type SignerBackend = 'worker' | 'inline';

export interface EventSignerOptions {
  key: SigningKey;
  log: Logger;
  /** Defaults to `worker` when more than one core is available, else `inline`. */
  backend?: SignerBackend;
  /** Replaces the worker's script (tests). */
  workerSource?: string;
}

/** The worker: signs each text of a request with the key from workerData, answers in order. */
const WORKER_SOURCE = `'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const { sign } = require('node:crypto');
const key = workerData.key;
parentPort.on('message', (m) => {
  const texts = m.texts;
  const sigs = new Array(texts.length);
  for (let i = 0; i < texts.length; i++) {
    const s = sign(null, Buffer.from(texts[i], 'utf8'), key).toString('base64');
    let end = s.length;
    while (end > 0 && s.charCodeAt(end - 1) === 61) end--;
    sigs[i] = s.slice(0, end);
  }
  parentPort.postMessage({ id: m.id, sigs });
});
`;

/**
 * Small heap limits: the worker holds a few strings at a time. The young generation is what
 * it allocates per request (the texts, the signatures); its old generation stays near the
 * size of a fresh isolate.
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 8, codeRangeSizeMb: 2, stackSizeMb: 1 };

interface Waiter {
  resolve: (sig: string) => void;
  reject: (err: unknown) => void;
}

interface Batch {
  texts: string[];
  waiters: Waiter[];
}

export class EventSigner {
  private mode: SignerBackend;
  private readonly key: KeyObject;
  private worker: Worker | undefined;
  private queued: Batch | undefined;
  private readonly inflight = new Map<number, Batch>();
  private nextId = 0;
  private stopped = false;

  constructor(private readonly opts: EventSignerOptions) {
    this.key = privateKeyObject(opts.key);
    this.mode = opts.backend ?? (availableParallelism() > 1 ? 'worker' : 'inline');
  }

  /** Where requests are signed now (`inline` after a failure or stop). */
  get backend(): SignerBackend {
    return this.mode;
  }

  /** The ed25519 signature of `text` (UTF-8) as unpadded base64. */
  sign(text: string): Promise<string> {
    switch (this.mode) {
      case 'inline':
        try {
          return Promise.resolve(this.signInline(text));
        } catch (err) {
          return Promise.reject(err);
        }
      case 'worker':
        return new Promise<string>((resolve, reject) => {
          let batch = this.queued;
          if (!batch) {
            batch = this.queued = { texts: [], waiters: [] };
            setImmediate(() => this.flush());
          }
          batch.texts.push(text);
          batch.waiters.push({ resolve, reject });
        });
    }
  }

  /**
   * Signs what is pending, then signs inline from now on and ends the worker. Requests made
   * meanwhile or later are still answered.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.mode = 'inline';
    this.flush();
    const worker = this.worker;
    this.worker = undefined;
    if (worker) {
      this.signInflightInline();
      await worker.terminate();
    }
  }

  private signInline(text: string): string {
    return encodeBase64(signBytes(this.opts.key, text));
  }

  private answerInline(batch: Batch): void {
    batch.texts.forEach((text, i) => {
      const w = batch.waiters[i]!;
      try {
        w.resolve(this.signInline(text));
      } catch (err) {
        w.reject(err);
      }
    });
  }

  private signInflightInline(): void {
    const batches = [...this.inflight.values()];
    this.inflight.clear();
    for (const batch of batches) this.answerInline(batch);
  }

  private flush(): void {
    const batch = this.queued;
    if (!batch) return;
    this.queued = undefined;
    const worker = this.mode === 'worker' ? this.workerOrStart() : undefined;
    if (!worker) {
      this.answerInline(batch);
      return;
    }
    const id = ++this.nextId;
    this.inflight.set(id, batch);
    // The worker keeps the process alive only while it owes answers.
    if (this.inflight.size === 1) worker.ref();
    worker.postMessage({ id, texts: batch.texts });
  }

  private workerOrStart(): Worker | undefined {
    if (this.worker) return this.worker;
    let worker: Worker;
    try {
      worker = new Worker(this.opts.workerSource ?? WORKER_SOURCE, {
        eval: true,
        workerData: { key: this.key },
        resourceLimits: WORKER_LIMITS,
        // Nothing of the parent's command line (loaders, inspector) is needed to sign.
        execArgv: [],
        stdout: false,
        stderr: false,
      });
    } catch (err) {
      this.fail(err, 'could not start the event signing worker');
      return undefined;
    }
    this.worker = worker;
    worker.on('message', (m: { id?: unknown; sigs?: unknown }) => this.answered(worker, m));
    worker.on('error', (err) => this.fail(err, 'the event signing worker failed'));
    worker.on('messageerror', (err) => this.fail(err, 'the event signing worker sent an unreadable message'));
    worker.on('exit', (code) => {
      if (this.worker === worker) this.fail(new Error(`exit code ${code}`), 'the event signing worker exited');
    });
    return worker;
  }

  private answered(worker: Worker, m: { id?: unknown; sigs?: unknown }): void {
    if (worker !== this.worker) return;
    const batch = typeof m.id === 'number' ? this.inflight.get(m.id) : undefined;
    if (!batch) return;
    const sigs = m.sigs;
    if (!Array.isArray(sigs) || sigs.length !== batch.texts.length || !sigs.every((s) => typeof s === 'string')) {
      this.fail(new Error('malformed answer'), 'the event signing worker answered nonsense');
      return;
    }
    this.inflight.delete(m.id as number);
    if (this.inflight.size === 0) worker.unref();
    batch.waiters.forEach((w, i) => w.resolve(sigs[i] as string));
  }

  /** Logs the failure once; what is in flight and everything later is signed inline. */
  private fail(err: unknown, message: string): void {
    if (this.mode !== 'inline') this.opts.log.error({ err }, `${message}; signing events on the main thread from now on`);
    this.mode = 'inline';
    const worker = this.worker;
    this.worker = undefined;
    this.signInflightInline();
    this.flush();
    if (worker) void worker.terminate().catch(() => undefined);
  }
}
