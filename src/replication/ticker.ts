/**
 * One periodic wake-up shared by every worker of a Replicator (issue 15: no per-partition
 * timers). A worker waiting on an event that may never come (an fdatasync that failed and
 * took its log offline, bytes that a read raced with) subscribes for as long as it waits, and
 * re-checks its condition at each tick. The interval runs only while someone is subscribed
 * (it stops at the first tick that finds no one, rather than at each unsubscribe: a live
 * partition subscribes and unsubscribes at every fdatasync it waits for), so a replicator
 * whose workers are idle (waiting for appends, which always come as events) holds no timer
 * at all after one tick; it is unref'd, so it never keeps the process alive.
 */
export class Ticker {
  readonly intervalMs: number;
  #subscribers = new Set<() => void>();
  #timer: NodeJS.Timeout | undefined;

  constructor(intervalMs: number) {
    this.intervalMs = intervalMs;
  }

  /** How many waiters are subscribed now (status, tests). */
  get waiting(): number {
    return this.#subscribers.size;
  }

  /** Whether the interval is running (it does only while someone waits). */
  get running(): boolean {
    return this.#timer !== undefined;
  }

  /** Calls `fn` at every tick until the returned function is called. */
  subscribe(fn: () => void): () => void {
    this.#subscribers.add(fn);
    this.#timer ??= setInterval(() => this.#tick(), this.intervalMs).unref();
    return () => {
      this.#subscribers.delete(fn);
    };
  }

  #tick(): void {
    if (this.#subscribers.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    for (const fn of [...this.#subscribers]) fn();
  }
}
