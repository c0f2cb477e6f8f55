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
 * Wakes long-polling readers when something they care about is committed. Waiting costs
 * nothing: no timers run while nobody waits and nothing changes, only the caller's own
 * timeout.
 */
export class Notifier extends EventEmitter<{ change: [StreamChange] }> {
  private readonly waiters = new Map<string, Set<() => void>>();
  private closed = false;

  constructor() {
    super();
    this.setMaxListeners(100);
  }

  /**
   * Resolves when any of `userIds` is notified, when `timeoutMs` passes, or when `signal`
   * aborts. Returns true if woken by a notification.
   */
  wait(userIds: string[], timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    return this.waitFor(userIds, timeoutMs, signal).woken;
  }

  /**
   * Like `wait`, with a `cancel()` that ends the wait at once (resolving false): for a reader
   * that starts waiting before it knows whether it will need to, without an AbortController.
   */
  waitFor(userIds: string[], timeoutMs: number, signal?: AbortSignal): { woken: Promise<boolean>; cancel(): void } {
    if (this.closed || timeoutMs <= 0 || signal?.aborted) return { woken: Promise.resolve(false), cancel: () => undefined };
    let finish!: (woken: boolean) => void;
    const woken = new Promise<boolean>((resolve) => {
      let done = false;
      finish = (w: boolean) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        for (const u of userIds) {
          const set = this.waiters.get(u);
          set?.delete(wake);
          if (set && set.size === 0) this.waiters.delete(u);
        }
        resolve(w);
      };
      const wake = () => finish(true);
      const onAbort = () => finish(false);
      for (const u of userIds) {
        let set = this.waiters.get(u);
        if (!set) this.waiters.set(u, (set = new Set()));
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

  /** Announces a committed change and wakes the given users. */
  publish(change: StreamChange, wakeUsers: Iterable<string>): void {
    this.emit('change', change);
    this.wake(wakeUsers);
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
    for (const set of [...this.waiters.values()]) for (const w of [...set]) w();
  }
}
