/**
 * The broker-wide budget of request bytes in memory: received but not yet handled, across
 * every connection (Kafka's queued.max.request.bytes). Without it each connection is bounded
 * only by maxFrameBytes, so enough connections that each announce a large frame and send part
 * of it pin as much memory as they like.
 *
 * Bytes are charged as they arrive, not when a size prefix announces them: a client that
 * announces 100 MiB and sends 2 MiB costs 2 MiB. They cannot be refused (the socket already
 * read them), so the budget is soft: `take()` always succeeds, and a connection that finds it
 * `exhausted` stops reading and `wait()`s. Each paused connection can thus overshoot by the
 * read that crossed the limit plus the one Node reads ahead into the paused socket, at most
 * 64 KiB each, so memory is bounded by the limit plus 128 KiB per connection caught reading.
 *
 * Waiters resume in arrival order as bytes come back, one per 64 KiB of room, so a release
 * does not wake every paused socket at once only to pause them again a read later.
 *
 * Not thread-safe and needs none: owned by one KafkaServer, used from the event loop.
 */

/** What one socket read can add: libuv hands Node reads of at most 64 KiB. */
const READ_BYTES = 64 * 1024;

export class RequestBudget {
  readonly limit: number;
  #used = 0;
  /** Resume callbacks of paused connections, oldest first. */
  #waiters = new Set<() => void>();

  constructor(limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`request budget must be a positive integer, got ${limit}`);
    this.limit = limit;
  }

  /** Bytes currently charged. May exceed `limit` by the overshoot described above. */
  get used(): number {
    return this.#used;
  }

  get exhausted(): boolean {
    return this.#used >= this.limit;
  }

  /** Connections waiting for room. */
  get waiting(): number {
    return this.#waiters.size;
  }

  /** Charges bytes that have arrived. */
  take(bytes: number): void {
    this.#used += bytes;
  }

  /** Returns bytes whose request finished (or whose connection closed). */
  give(bytes: number): void {
    if (bytes > this.#used) throw new RangeError(`request budget: giving back ${bytes} bytes but only ${this.#used} are charged`);
    this.#used -= bytes;
    this.#wake();
  }

  /**
   * Registers `resume`, called once when there is room again; for a caller that found the
   * budget exhausted. Returns a cancel function for a connection that closes while waiting.
   */
  wait(resume: () => void): () => void {
    const entry = () => resume();
    this.#waiters.add(entry);
    return () => this.#waiters.delete(entry);
  }

  #wake(): void {
    let room = this.limit - this.#used;
    while (room > 0 && this.#waiters.size > 0) {
      const [first] = this.#waiters;
      this.#waiters.delete(first);
      first();
      room -= READ_BYTES;
    }
  }
}
