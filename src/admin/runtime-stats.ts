/**
 * What the Node.js runtime did to request latency since the last reset: the event loop's
 * delay histogram (`perf_hooks.monitorEventLoopDelay`) and every garbage-collection pause
 * (a `gc` PerformanceObserver). Served at GET /v1/runtime (POST /v1/runtime/reset starts a
 * new window), so an operator or a benchmark can tell a produce tail caused by the disk from
 * one caused by a stalled loop or a long GC.
 *
 * The histogram samples with a timer every `resolutionMs`: a stall longer than that is always
 * seen; a shorter one only when it covers a sample. One timer per process, not per partition.
 */
import { constants, monitorEventLoopDelay, PerformanceObserver, type IntervalHistogram } from 'node:perf_hooks';

/** GC pauses kept for percentiles; past this only the counters grow. */
const MAX_PAUSES = 100_000;

const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

export interface PauseSummary {
  count: number;
  totalMs: number;
  maxMs: number;
}

export interface RuntimeSnapshot {
  /** When this window began (ms since the epoch) and how long it has run. */
  sinceMs: number;
  windowSeconds: number;
  resolutionMs: number;
  /** How late the loop's sample timer fired, in ms (0 for a loop that never stalled). */
  eventLoopDelayMs: { samples: number; mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
  gc: PauseSummary & { p50Ms: number; p99Ms: number; byKind: Record<string, PauseSummary> };
}

export class RuntimeStats {
  readonly resolutionMs: number;
  #loop: IntervalHistogram;
  #gc: PerformanceObserver;
  #since = Date.now();
  #pauses: number[] = [];
  #count = 0;
  #totalMs = 0;
  #maxMs = 0;
  #byKind = new Map<string, PauseSummary>();

  constructor(resolutionMs = 10) {
    this.resolutionMs = resolutionMs;
    this.#loop = monitorEventLoopDelay({ resolution: resolutionMs });
    this.#loop.enable();
    this.#gc = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) this.#onPause(e.duration, GC_KINDS[((e as { detail?: { kind?: number } }).detail)?.kind ?? -1] ?? 'other');
    });
    this.#gc.observe({ entryTypes: ['gc'] });
  }

  #onPause(ms: number, kind: string): void {
    this.#count++;
    this.#totalMs += ms;
    if (ms > this.#maxMs) this.#maxMs = ms;
    if (this.#pauses.length < MAX_PAUSES) this.#pauses.push(ms);
    const k = this.#byKind.get(kind) ?? { count: 0, totalMs: 0, maxMs: 0 };
    k.count++;
    k.totalMs += ms;
    if (ms > k.maxMs) k.maxMs = ms;
    this.#byKind.set(kind, k);
  }

  snapshot(now = Date.now()): RuntimeSnapshot {
    const h = this.#loop;
    // The histogram records nanoseconds of the whole timer period; the delay is what exceeds it.
    const late = (ns: number) => (h.count === 0 ? 0 : Math.max(0, ns / 1e6 - this.resolutionMs));
    const sorted = [...this.#pauses].sort((a, b) => a - b);
    const pct = (p: number) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]);
    return {
      sinceMs: this.#since,
      windowSeconds: (now - this.#since) / 1000,
      resolutionMs: this.resolutionMs,
      eventLoopDelayMs: {
        samples: h.count,
        mean: late(Number.isNaN(h.mean) ? 0 : h.mean),
        p50: late(h.percentile(50)),
        p90: late(h.percentile(90)),
        p99: late(h.percentile(99)),
        p999: late(h.percentile(99.9)),
        max: late(h.max),
      },
      gc: { count: this.#count, totalMs: this.#totalMs, maxMs: this.#maxMs, p50Ms: pct(50), p99Ms: pct(99), byKind: Object.fromEntries(this.#byKind) },
    };
  }

  /** Starts a new window. */
  reset(): void {
    this.#loop.reset();
    this.#since = Date.now();
    this.#pauses = [];
    this.#count = 0;
    this.#totalMs = 0;
    this.#maxMs = 0;
    this.#byKind.clear();
  }

  close(): void {
    this.#loop.disable();
    this.#gc.disconnect();
  }
}
