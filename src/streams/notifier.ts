import { EventEmitter } from 'node:events';

/** What changed, for readers of the stream (sync, federation senders, appservices, stats). */
export type StreamChange =
  | { stream: 'events'; position: number; roomId: string; eventId: string; type: string; stateKey?: string; sender: string }
  | { stream: 'account_data'; position: number; userId: string; roomId?: string }
  | { stream: 'to_device'; position: number; userId: string }
  | { stream: 'receipts' | 'typing'; position: number; roomId: string; /** A local user's own receipt: whose. */ userId?: string }
  | { stream: 'presence'; position: number; userId: string }
  | { stream: 'device_lists'; position: number; userId: string };

/**
 * What a wait can be ended by: an AbortSignal, or anything as small that tells when the
 * reader went away (see ClientGone).
 */
export interface WaitSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/**
 * A WaitSignal raised once, for one waiter at a time: cheaper than an AbortController, which a
 * long-poll would otherwise build for every request only to learn that its client went away.
 */
export class ClientGone implements WaitSignal {
  aborted = false;
  private listener: (() => void) | undefined;
  /** Raises the signal (bound: usable as an event handler). */
  readonly abort = (): void => {
    if (this.aborted) return;
    this.aborted = true;
    const l = this.listener;
    this.listener = undefined;
    l?.();
  };

  addEventListener(_type: 'abort', listener: () => void): void {
    if (this.listener) throw new Error('ClientGone takes one listener at a time');
    this.listener = listener;
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    if (this.listener === listener) this.listener = undefined;
  }
}

/**
 * Wakes long-polling readers when something they care about is committed. Waiting costs
 * nothing: no timers run while nobody waits and nothing changes, only the caller's own
 * timeout.
 */
export class Notifier extends EventEmitter<{ change: [StreamChange, /** The users woken for it. */ readonly string[]] }> {
  private readonly waiters = new Map<string, Set<() => void>>();
  /** Readers of one room's new events (room previews), by room ID: woken by its `events` changes. */
  private readonly roomWaiters = new Map<string, Set<() => void>>();
  private closed = false;

  constructor() {
    super();
    this.setMaxListeners(100);
  }

  /**
   * Resolves when any of `userIds` is notified, when `timeoutMs` passes, or when `signal`
   * aborts. Returns true if woken by a notification.
   */
  wait(userIds: string[], timeoutMs: number, signal?: WaitSignal): Promise<boolean> {
    return this.waitFor(userIds, timeoutMs, signal).woken;
  }

  /**
   * Like `wait`, with a `cancel()` that ends the wait at once (resolving false): for a reader
   * that starts waiting before it knows whether it will need to, without an AbortController.
   */
  waitFor(userIds: string[], timeoutMs: number, signal?: WaitSignal): { woken: Promise<boolean>; cancel(): void } {
    return this.waitIn(this.waiters, userIds, timeoutMs, signal);
  }

  /**
   * Like `waitFor`, woken by the next event committed in the room rather than by a user: for
   * readers who need not be members (room previews).
   */
  waitForRoom(roomId: string, timeoutMs: number, signal?: WaitSignal): { woken: Promise<boolean>; cancel(): void } {
    return this.waitIn(this.roomWaiters, [roomId], timeoutMs, signal);
  }

  private waitIn(waiters: Map<string, Set<() => void>>, keys: string[], timeoutMs: number, signal?: WaitSignal): { woken: Promise<boolean>; cancel(): void } {
    if (this.closed || timeoutMs <= 0 || signal?.aborted) return { woken: Promise.resolve(false), cancel: () => undefined };
    let finish!: (woken: boolean) => void;
    const woken = new Promise<boolean>((resolve) => {
      let done = false;
      finish = (w: boolean) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        for (const u of keys) {
          const set = waiters.get(u);
          set?.delete(wake);
          if (set && set.size === 0) waiters.delete(u);
        }
        resolve(w);
      };
      const wake = () => finish(true);
      const onAbort = () => finish(false);
      for (const u of keys) {
        let set = waiters.get(u);
        if (!set) waiters.set(u, (set = new Set()));
        set.add(wake);
      }
      const timer = setTimeout(() => finish(false), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    return { woken, cancel: () => finish(false) };
  }

  /** Wakes every waiter of these users. */
  wake(userIds: Iterable<string>): void {
    for (const u of userIds) {
      const set = this.waiters.get(u);
      if (!set) continue;
      for (const w of [...set]) w();
    }
  }

  /**
   * Announces a committed change and wakes the given users: every user whose /sync it may
   * change must be among them (sync relies on it to skip users it did not wake, see
   * StreamActivity), except for presence and device-list changes, whose other users are woken
   * later with `wake`.
   */
  publish(change: StreamChange, wakeUsers: Iterable<string>): void {
    const users = Array.isArray(wakeUsers) ? (wakeUsers as string[]) : [...wakeUsers];
    this.emit('change', change, users);
    this.wake(users);
    if (change.stream === 'events' && this.roomWaiters.size !== 0) {
      const set = this.roomWaiters.get(change.roomId);
      if (set) for (const w of [...set]) w();
    }
  }

  /** Number of readers waiting (for metrics). */
  get waiting(): number {
    let n = 0;
    for (const s of this.waiters.values()) n += s.size;
    return n;
  }

  /** Wakes everyone and refuses new waits (shutdown). */
  close(): void {
    this.closed = true;
    for (const set of [...this.waiters.values(), ...this.roomWaiters.values()]) for (const w of [...set]) w();
  }
}
