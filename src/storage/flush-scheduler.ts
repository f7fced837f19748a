/**
 * The interval-mode fdatasync of every partition log of a TopicManager, on one timer.
 *
 * A log registers itself (`schedule`) when it first holds written bytes that are not yet
 * fdatasync'd, with the time it wants them synced (now + its `flushIntervalMs`); the
 * scheduler calls it back at that time, once, and the log fdatasyncs whatever is dirty then.
 * A write after that callback registers the log again. So nothing written stays volatile
 * longer than one interval (plus the fdatasync itself), as with the per-log timer this
 * replaces, while an idle log costs no timer and no polling: with 10,000 partitions there
 * is one timer, armed only while some log is dirty, for the earliest deadline.
 *
 * When the timer fires it also takes the registrations due within the next quarter of
 * their interval (at most 250 ms): syncing those a little early is always safe and keeps
 * the wakeups to a few per interval when 10,000 logs get dirty at scattered moments,
 * instead of one per distinct deadline.
 *
 * Deadlines are kept in one FIFO queue per interval length: within a queue they are
 * registered in time order, so each queue is sorted and the next deadline is the smallest
 * head. Logs of topics with their own `flush.ms` get their own queue.
 *
 * Lifecycle: `close` drops every registration (each log flushes itself when it closes) and
 * the timer; the timer is `unref()`'d so it never keeps a process alive.
 */

/** How much earlier than its deadline a registration may be flushed along with a due one. */
const MAX_EARLY_MS = 250;

interface Entry {
  at: number;
  due: () => void;
}

/** A FIFO of deadlines; `head` moves instead of shifting, compacted when half is spent. */
class DeadlineQueue {
  entries: Entry[] = [];
  head = 0;

  get size(): number {
    return this.entries.length - this.head;
  }

  peek(): Entry | undefined {
    return this.entries[this.head];
  }

  take(): Entry {
    const e = this.entries[this.head];
    this.entries[this.head++] = undefined as unknown as Entry;
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    return e;
  }
}

export class FlushScheduler {
  #queues = new Map<number, DeadlineQueue>();
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;
  #closed = false;
  #onError: (err: unknown) => void;

  /** `onError` hears a callback that threw (the log's own errors never reach here). */
  constructor(onError: (err: unknown) => void = () => {}) {
    this.#onError = onError;
  }

  /** Registrations waiting for their deadline. */
  get pending(): number {
    let n = 0;
    for (const q of this.#queues.values()) n += q.size;
    return n;
  }

  /** Whether the timer is armed (false when no log is dirty). */
  get armed(): boolean {
    return this.#timer !== undefined;
  }

  /**
   * Calls `due` once, `intervalMs` from now. The caller registers at most once per dirty
   * spell (PartitionLog keeps a flag), so the queues hold at most one entry per log.
   */
  schedule(intervalMs: number, due: () => void): void {
    if (this.#closed) return;
    const at = Date.now() + intervalMs;
    let q = this.#queues.get(intervalMs);
    if (q === undefined) {
      q = new DeadlineQueue();
      this.#queues.set(intervalMs, q);
    }
    q.entries.push({ at, due });
    if (at < this.#timerAt) this.#arm(at);
  }

  close(): void {
    this.#closed = true;
    this.#queues.clear();
    this.#disarm();
  }

  #arm(at: number): void {
    this.#disarm();
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, at - Date.now()));
    this.#timer.unref();
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = Date.now();
    let next = Infinity;
    for (const [interval, q] of this.#queues) {
      const horizon = now + Math.min(interval / 4, MAX_EARLY_MS);
      while (q.size > 0 && q.peek()!.at <= horizon) {
        const { due } = q.take();
        try {
          due();
        } catch (err) {
          this.#onError(err);
        }
      }
      if (q.size === 0) this.#queues.delete(interval);
      else next = Math.min(next, q.peek()!.at);
    }
    if (next < Infinity && !this.#closed) this.#arm(next);
  }
}
