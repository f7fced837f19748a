/**
 * Log lines about events that come in floods (refused connections during an attack, appends
 * refused on a full disk, reads of a corrupt batch), at most one per reason per interval: a
 * log that grows by a line per event would become the next thing to fill a disk. The first
 * event of a reason is logged at once; later ones within the interval are only counted, and
 * the next line of that reason (from `warn()`/`error()`, or from `tick()` once the interval
 * has passed) carries `suppressed`, the count not logged since the last line.
 *
 * Each owner (a KafkaServer, a PartitionLog) has its own; owners with a timer call `tick()`
 * periodically and `flush()` on close.
 */
import type { Logger } from 'pino';

interface ReasonState {
  loggedAt: number;
  suppressed: number;
  last: Record<string, unknown>;
  message: string;
  level: 'warn' | 'error';
}

const performanceNow = (): number => performance.now();

export class ThrottledLog {
  readonly #logger: Logger | undefined;
  readonly #intervalMs: number;
  readonly #now: () => number;
  /** Made at the first event: a log per partition (10,000 of them) mostly never has one. */
  #reasons: Map<string, ReasonState> | undefined;

  constructor(logger: Logger | undefined, intervalMs = 10_000, now: () => number = performanceNow) {
    this.#logger = logger;
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /** `reason` is the stable key lines are limited by; `fields` say where (a remote address, a file). */
  warn(reason: string, fields: Record<string, unknown>, message: string): void {
    this.#event('warn', reason, fields, message);
  }

  error(reason: string, fields: Record<string, unknown>, message: string): void {
    this.#event('error', reason, fields, message);
  }

  #event(level: 'warn' | 'error', reason: string, fields: Record<string, unknown>, message: string): void {
    const now = this.#now();
    const state = this.#reasons?.get(reason);
    if (state !== undefined && now - state.loggedAt < this.#intervalMs) {
      state.suppressed++;
      state.last = fields;
      state.message = message;
      return;
    }
    const suppressed = state?.suppressed ?? 0;
    (this.#reasons ??= new Map()).set(reason, { loggedAt: now, suppressed: 0, last: fields, message, level });
    this.#logger?.[level]({ ...fields, reason, ...(suppressed > 0 ? { suppressed } : {}) }, message);
  }

  /** Logs the counts of reasons whose interval has passed since their last line. */
  tick(): void {
    if (this.#reasons === undefined) return;
    const now = this.#now();
    for (const [reason, state] of this.#reasons) {
      if (now - state.loggedAt >= this.#intervalMs) this.#summarize(reason, state, now);
    }
  }

  /** Logs every count not logged yet. */
  flush(): void {
    if (this.#reasons === undefined) return;
    const now = this.#now();
    for (const [reason, state] of this.#reasons) this.#summarize(reason, state, now);
  }

  #summarize(reason: string, state: ReasonState, now: number): void {
    if (state.suppressed === 0) {
      // Nothing pending: forget the reason so the map holds only recent ones.
      if (now - state.loggedAt >= this.#intervalMs) this.#reasons?.delete(reason);
      return;
    }
    // The fields are those of the latest event counted: a sample of the flood.
    this.#logger?.[state.level]({ ...state.last, reason, suppressed: state.suppressed }, `${state.message} (repeated; the latest shown)`);
    state.loggedAt = now;
    state.suppressed = 0;
  }
}
