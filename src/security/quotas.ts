/**
 * Client quotas per principal, measured and enforced as Kafka's ClientQuotaManager does:
 * produce bytes, fetch bytes and requests per second, each a rate over sampled windows, and
 * a request that takes the rate over its quota earns a throttle time — how long the client
 * must stay quiet for the rate to fall back to the quota. The dispatcher (broker/kafka/
 * quota-enforcement.ts) puts that time in the response's throttle_time_ms and mutes the
 * connection for it (KIP-219), so clients slow down instead of failing.
 *
 * Which quota applies (Kafka's user quotas, per key): a principal's override of a key wins
 * over the default of `security.quotas`; an override of `null` means no quota for that
 * principal even when a default exists (Kafka has no null: operators set a huge value); a
 * key the principal does not override takes the default. Overrides are per region, set at
 * runtime (admin API, CLI) and kept in `<dataDir>/security/quotas.json`, written atomically
 * before they apply; a file that does not parse stops the start (BAD_CONFIG): a broker never
 * serves with fewer limits than the operator set.
 *
 * The rate (Kafka's Rate over a SampledStat, quota.window.num = 11 samples of
 * quota.window.size.seconds = 1): a sample starts at the first value recorded after the
 * previous one is a window old; samples older than the whole span are reset; the rate is the
 * samples' total over the time they cover. A value that takes the rate over the quota earns
 * throttle = (rate - quota) / quota * time covered (QuotaUtils.throttleTime), capped at the
 * span (11 s).
 *
 * One deliberate difference: Kafka counts the time covered as at least (windows - 1)
 * windows, so a principal new or idle for the span may send 10 s of quota at once, and a
 * greedy client, muted, then idle past a sample, gets that credit again: over 20 s it runs
 * 10-13% above its quota. Here the time covered is at least one window: a new principal
 * may send one second of quota at once, and a greedy client stays within a few percent of
 * its quota over any span past the first seconds (test/security/quotas.test.ts simulates it).
 *
 * Memory: state exists only for principals a quota applies to, and only while they are
 * used: a principal idle for an hour (Kafka's sensor expiry) is forgotten by a sweep that
 * runs, at most once a minute, when a principal's state is made (the only time memory grows)
 * or the states are listed. No timers. A principal no quota applies to costs two map
 * lookups per request (`of()` returns null), none when no quota is set at all.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, MeridianError } from '../errors.js';
import { jsonErrorWhere } from './json-error.js';
import { fsyncDirSync, storageError, writeFileAtomicSync } from '../storage/fs-util.js';
import { parseSize } from '../units.js';
import { parsePrincipal } from './principal.js';

const QUOTAS_FILE = 'quotas.json';
const SECURITY_DIR = 'security';

/** The three quotas, by the name the config and the admin API use. */
export interface Quotas {
  /** Produce record bytes per second. */
  readonly producerByteRate: number | null;
  /** Fetch record bytes per second. */
  readonly consumerByteRate: number | null;
  /** Requests per second (every API but ApiVersions and SASL). */
  readonly requestRate: number | null;
}

export type QuotaKey = keyof Quotas;
export const QUOTA_KEYS: readonly QuotaKey[] = ['producerByteRate', 'consumerByteRate', 'requestRate'];

/** What is measured: produce bytes, fetch bytes, requests; `kind` labels the metrics. */
export const QuotaKind = { Produce: 0, Fetch: 1, Request: 2 } as const;
export type QuotaKind = (typeof QuotaKind)[keyof typeof QuotaKind];
export const QUOTA_KIND_NAMES = ['produce', 'fetch', 'request'] as const;

/** A principal's overrides: a key present wins over the default (null: no quota); absent: the default applies. */
export type QuotaOverride = { -readonly [K in QuotaKey]?: number | null };

/** A change to a principal's overrides: a value, null (no quota), or 'default' (drop the override of that key). */
export type QuotaChange = { [K in QuotaKey]?: number | string | null };

const MAX_RATE: Readonly<Record<QuotaKey, number>> = { producerByteRate: Number.MAX_SAFE_INTEGER, consumerByteRate: Number.MAX_SAFE_INTEGER, requestRate: 1_000_000_000 };

export interface QuotaOptions {
  /** Monotonic milliseconds (default performance.now). */
  now?: () => number;
}

/** Kafka's quota.window.num and quota.window.size.seconds. */
const WINDOWS = 11;
const WINDOW_MS = 1000;
/** A principal's state is forgotten after this long without a request (Kafka's sensor expiry). */
const IDLE_MS = 3_600_000;
const SWEEP_EVERY_MS = 60_000;

/**
 * Kafka's Rate over a SampledStat: `windows` samples of `windowMs`, circular. Exported for
 * the unit tests of the math.
 */
export class SampledRate {
  readonly #starts: Float64Array;
  readonly #values: Float64Array;
  readonly #windowMs: number;
  #current = 0;
  #count = 0;

  constructor(windows: number, windowMs: number) {
    this.#starts = new Float64Array(windows);
    this.#values = new Float64Array(windows);
    this.#windowMs = windowMs;
  }

  record(value: number, now: number): void {
    if (this.#count === 0) {
      this.#count = 1;
      this.#starts[0] = now;
    } else if (now - this.#starts[this.#current] >= this.#windowMs) {
      this.#current = (this.#current + 1) % this.#starts.length;
      if (this.#current >= this.#count) this.#count++;
      this.#starts[this.#current] = now;
      this.#values[this.#current] = 0;
    }
    this.#values[this.#current] += value;
  }

  /** The samples' total, after resetting those older than the span. */
  total(now: number): number {
    this.#purge(now);
    let sum = 0;
    for (let i = 0; i < this.#count; i++) sum += this.#values[i];
    return sum;
  }

  /** The time the rate is taken over: what the samples cover, at least one window (Kafka: windows - 1, see the header). */
  windowSizeMs(now: number): number {
    this.#purge(now);
    let oldest = now;
    for (let i = 0; i < this.#count; i++) oldest = Math.min(oldest, this.#starts[i]);
    return Math.max(now - oldest, this.#windowMs);
  }

  /** Per second. */
  rate(now: number): number {
    const total = this.total(now);
    return (total * 1000) / this.windowSizeMs(now);
  }

  #purge(now: number): void {
    const expireAge = this.#starts.length * this.#windowMs;
    for (let i = 0; i < this.#count; i++) {
      if (now - this.#starts[i] >= expireAge) {
        this.#starts[i] = now;
        this.#values[i] = 0;
      }
    }
  }
}

/** Kafka's QuotaUtils.throttleTime: the delay that brings `rate` back to `quota` over `windowMs`. */
export function throttleTimeMs(rate: number, quota: number, windowMs: number): number {
  return rate <= quota ? 0 : Math.round(((rate - quota) / quota) * windowMs);
}

/** One principal's quotas, rates and throttle totals while it is active. */
export class PrincipalQuota {
  readonly principal: string;
  /** By QuotaKind; null: no quota of that kind (the rate is still measured, for the admin API). */
  limits: Array<number | null>;
  readonly #rates: SampledRate[];
  /** Total throttle time given, in ms, and how many responses were throttled, by QuotaKind. */
  readonly throttledMs = [0, 0, 0];
  readonly throttled = [0, 0, 0];
  lastUsed: number;
  readonly #maxThrottleMs: number;
  readonly #burstMs: number;
  readonly #now: () => number;

  constructor(principal: string, limits: Array<number | null>, windows: number, windowMs: number, now: () => number) {
    this.principal = principal;
    this.limits = limits;
    this.#rates = [0, 1, 2].map(() => new SampledRate(windows, windowMs));
    this.#maxThrottleMs = windows * windowMs;
    this.#burstMs = (windows - 1) * windowMs;
    this.#now = now;
    this.lastUsed = now();
  }

  /** Records `value` of `kind`; the throttle it earns in ms (0 when under the quota). */
  record(kind: QuotaKind, value: number): number {
    const now = this.#now();
    this.lastUsed = now;
    const rate = this.#rates[kind];
    rate.record(value, now);
    const limit = this.limits[kind];
    if (limit === null) return 0;
    const ms = Math.min(throttleTimeMs(rate.rate(now), limit, rate.windowSizeMs(now)), this.#maxThrottleMs);
    if (ms > 0) {
      this.throttledMs[kind] += ms;
      this.throttled[kind]++;
    }
    return ms;
  }

  /** Takes back a value recorded (a throttled fetch answered without its data, as Kafka does). */
  unrecord(kind: QuotaKind, value: number): void {
    this.#rates[kind].record(-value, this.#now());
  }

  /** The most a quota window allows at once: Kafka bounds a fetch to it (getMaxValueInQuotaWindow). */
  windowCapacity(kind: QuotaKind): number {
    const limit = this.limits[kind];
    return limit === null ? Infinity : (limit * this.#burstMs) / 1000;
  }

  /** The current rate of `kind`, per second. */
  rate(kind: QuotaKind): number {
    return this.#rates[kind].rate(this.#now());
  }
}

/** What GET /v1/security/quotas shows of an active principal. */
export interface ActiveQuota {
  principal: string;
  quotas: Quotas;
  /** Bytes or requests per second now, by kind. */
  rates: { produce: number; fetch: number; request: number };
  throttleSeconds: { produce: number; fetch: number; request: number };
  throttledResponses: { produce: number; fetch: number; request: number };
}

interface QuotasFile {
  version: 1;
  overrides: Record<string, QuotaOverride>;
}

export class QuotaManager {
  readonly file: string;
  readonly defaults: Quotas;
  readonly #dataDir: string;
  readonly #overrides: Map<string, QuotaOverride>;
  readonly #active = new Map<string, PrincipalQuota>();
  readonly #now: () => number;
  #lastSweep: number;
  /** No default and no override: no principal has a quota, `of()` answers at once. */
  #none: boolean;
  /** Some default is set: every principal has a quota unless its overrides remove them all. */
  readonly #defaulted: boolean;
  /** In memory only (a scratch copy that computes a region-wide change): nothing is written. */
  readonly #memory: boolean;

  private constructor(dataDir: string, defaults: Quotas, overrides: Map<string, QuotaOverride>, options: QuotaOptions, memory = false) {
    this.#memory = memory;
    this.#dataDir = dataDir;
    this.file = path.join(dataDir, SECURITY_DIR, QUOTAS_FILE);
    this.defaults = Object.freeze({ ...defaults });
    this.#overrides = overrides;
    this.#now = options.now ?? (() => performance.now());
    this.#lastSweep = this.#now();
    this.#defaulted = QUOTA_KEYS.some((k) => this.defaults[k] !== null);
    this.#none = this.#computeNone();
  }

  /**
   * Loads the overrides of `<dataDir>/security/quotas.json` (none: no overrides). Throws
   * BAD_CONFIG naming the file when it does not parse or holds a bad value.
   */
  static open(dataDir: string, defaults: Quotas, options: QuotaOptions = {}): QuotaManager {
    const file = path.join(dataDir, SECURITY_DIR, QUOTAS_FILE);
    let text: string | undefined;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw storageError(`reading ${file}`, err);
    }
    return new QuotaManager(dataDir, defaults, text === undefined ? new Map() : parseQuotasFile(file, text), options);
  }

  /**
   * A manager in memory only, with this one's defaults and the overrides of `doc` (a
   * quotas.json text; `what` names where it comes from in an error; none: no overrides): a
   * region cluster runs a change on such a copy of the region's overrides to learn the
   * document to write (cluster/security-sync.ts).
   */
  inMemoryCopy(doc: string | undefined, what: string): QuotaManager {
    return new QuotaManager('', this.defaults, doc === undefined ? new Map() : parseQuotasFile(what, doc), { now: this.#now }, true);
  }

  /** How many principals have overrides. */
  get size(): number {
    return this.#overrides.size;
  }

  /** The overrides as quotas.json holds them: the region's document in etcd. */
  exportDoc(): string {
    return serialize(this.#overrides);
  }

  /**
   * Makes `doc` (a quotas.json text: the region's, from etcd) this broker's overrides: parsed
   * first (BAD_CONFIG naming `what`, and nothing changes), applied to every principal's next
   * request, then written to quotas.json as this broker's copy. Returns the error of the local
   * write, or null.
   */
  replaceFrom(doc: string, what: string): MeridianError | null {
    const all = parseQuotasFile(what, doc);
    if (doc === this.exportDoc()) return null;
    const touched = new Set([...this.#overrides.keys(), ...all.keys()]);
    let err: MeridianError | null = null;
    try {
      this.#persist(all);
    } catch (e) {
      err = e as MeridianError;
    }
    this.#replace(all, ...touched);
    return err;
  }

  /** The quota state of `principal`, or null when no quota applies to it (the hot path: map lookups only). */
  of(principal: string): PrincipalQuota | null {
    if (this.#none) return null;
    const active = this.#active.get(principal);
    if (active !== undefined) return active;
    // Without defaults, only an override can give a quota: one more lookup for everyone else.
    if (!this.#defaulted && !this.#overrides.has(principal)) return null;
    const limits = this.#limitsOf(principal);
    if (limits.every((l) => l === null)) return null;
    this.#sweep();
    const q = new PrincipalQuota(principal, limits, WINDOWS, WINDOW_MS, this.#now);
    this.#active.set(principal, q);
    return q;
  }

  /** The quotas that apply to `principal` now. */
  effective(principal: string): Quotas {
    const o = this.#overrides.get(principal);
    const pick = (k: QuotaKey) => (o !== undefined && k in o ? o[k]! : this.defaults[k]);
    return { producerByteRate: pick('producerByteRate'), consumerByteRate: pick('consumerByteRate'), requestRate: pick('requestRate') };
  }

  /** Every principal's overrides, by principal (sorted). */
  overrides(): Array<{ principal: string; override: QuotaOverride }> {
    return [...this.#overrides].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([principal, override]) => ({ principal, override: { ...override } }));
  }

  /**
   * Applies `change` to `principal`'s overrides (keys not named stay as they are), writes the
   * file, then applies it to the principal's next request. Throws INVALID_PRINCIPAL,
   * INVALID_CONFIG (naming the key) or STORAGE_IO; on a throw nothing changed.
   */
  set(principal: string, change: QuotaChange): QuotaOverride {
    parsePrincipal(principal);
    const next: QuotaOverride = { ...this.#overrides.get(principal) };
    for (const [key, value] of Object.entries(change)) {
      if (!QUOTA_KEYS.includes(key as QuotaKey)) throw invalidChange(`unknown quota ${JSON.stringify(key)}: expected ${QUOTA_KEYS.join(', ')}`);
      const k = key as QuotaKey;
      if (value === undefined) continue;
      if (value === 'default') delete next[k];
      else next[k] = quotaValue(k, value);
    }
    const all = new Map(this.#overrides);
    if (Object.keys(next).length === 0) all.delete(principal);
    else all.set(principal, next);
    this.#persist(all);
    this.#replace(all, principal);
    return { ...next };
  }

  /** Drops every override of `principal`; false when it had none. */
  remove(principal: string): boolean {
    if (!this.#overrides.has(principal)) return false;
    const all = new Map(this.#overrides);
    all.delete(principal);
    this.#persist(all);
    this.#replace(all, principal);
    return true;
  }

  /** The principals with quota state now (used within the idle expiry), with their rates and throttle totals. */
  active(): ActiveQuota[] {
    this.#sweep();
    const byKind = (f: (k: QuotaKind) => number) => ({ produce: f(QuotaKind.Produce), fetch: f(QuotaKind.Fetch), request: f(QuotaKind.Request) });
    return [...this.#active.values()]
      .sort((a, b) => (a.principal < b.principal ? -1 : a.principal > b.principal ? 1 : 0))
      .map((q) => ({
        principal: q.principal,
        quotas: this.effective(q.principal),
        rates: byKind((k) => q.rate(k)),
        throttleSeconds: byKind((k) => q.throttledMs[k] / 1000),
        throttledResponses: byKind((k) => q.throttled[k]),
      }));
  }

  #limitsOf(principal: string): Array<number | null> {
    const e = this.effective(principal);
    return [e.producerByteRate, e.consumerByteRate, e.requestRate];
  }

  #replace(all: Map<string, QuotaOverride>, ...principals: string[]): void {
    this.#overrides.clear();
    for (const [p, o] of all) this.#overrides.set(p, o);
    this.#none = this.#computeNone();
    for (const principal of principals) {
      const active = this.#active.get(principal);
      if (active === undefined) continue;
      const limits = this.#limitsOf(principal);
      // No quota any more: the principal goes back to the lookup-only path.
      if (limits.every((l) => l === null)) this.#active.delete(principal);
      else active.limits = limits;
    }
  }

  #computeNone(): boolean {
    return this.#overrides.size === 0 && !this.#defaulted;
  }

  /** Forgets principals idle for `idleMs`; runs at most once a minute. */
  #sweep(): void {
    const now = this.#now();
    if (now - this.#lastSweep < SWEEP_EVERY_MS) return;
    this.#lastSweep = now;
    for (const [p, q] of this.#active) if (now - q.lastUsed >= IDLE_MS) this.#active.delete(p);
  }

  #persist(all: Map<string, QuotaOverride>): void {
    if (this.#memory) return;
    const dir = path.dirname(this.file);
    try {
      if (!fs.existsSync(dir)) {
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
        fsyncDirSync(this.#dataDir);
      }
      writeFileAtomicSync(this.file, serialize(all));
    } catch (err) {
      throw storageError(`writing ${this.file}`, err);
    }
  }
}

function serialize(all: ReadonlyMap<string, QuotaOverride>): string {
  const body: QuotasFile = { version: 1, overrides: Object.fromEntries([...all].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) };
  return JSON.stringify(body, null, 2) + '\n';
}

function invalidChange(message: string): MeridianError {
  return new MeridianError(ErrorCode.InvalidConfig, message, { retriable: false });
}

/** A quota value: a positive whole number (a size like "1MiB" for the byte rates), or null for none. */
function quotaValue(key: QuotaKey, value: unknown): number | null {
  if (value === null) return null;
  const n = key === 'requestRate' ? (typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : undefined) : typeof value === 'number' || typeof value === 'string' ? parseSize(value) : undefined;
  if (n === undefined || !Number.isSafeInteger(n) || n < 1 || n > MAX_RATE[key]) {
    const what = key === 'requestRate' ? 'a whole number of requests per second' : 'a whole number of bytes per second or a size like 1MiB';
    throw invalidChange(`${key}: expected ${what} (at least 1, at most ${MAX_RATE[key]}), null for no quota or "default" for the default; got ${JSON.stringify(value)}`);
  }
  return n;
}

function parseQuotasFile(file: string, text: string): Map<string, QuotaOverride> {
  const fail = (what: string): MeridianError =>
    new MeridianError(ErrorCode.BadConfig, `${file}: ${what}; restore it from a backup, or remove it to start with the default quotas of security.quotas only`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw fail(`not valid JSON (${jsonErrorWhere(err)})`);
  }
  const f = parsed as Partial<QuotasFile> | null;
  if (f === null || typeof f !== 'object' || f.version !== 1 || f.overrides === null || typeof f.overrides !== 'object' || Array.isArray(f.overrides)) {
    throw fail('not a Meridian quota file (expected { version: 1, overrides: { "User:name": { producerByteRate, consumerByteRate, requestRate } } })');
  }
  const out = new Map<string, QuotaOverride>();
  for (const [principal, o] of Object.entries(f.overrides)) {
    try {
      parsePrincipal(principal);
      if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new Error('not an object');
      const override: QuotaOverride = {};
      for (const [k, v] of Object.entries(o)) {
        if (!QUOTA_KEYS.includes(k as QuotaKey)) throw new Error(`unknown quota ${JSON.stringify(k)}`);
        if (v !== null && typeof v !== 'number') throw new Error(`${k} is not a number or null`);
        override[k as QuotaKey] = quotaValue(k as QuotaKey, v);
      }
      out.set(principal, override);
    } catch (err) {
      throw fail(`the override of ${JSON.stringify(principal)} is not valid (${(err as Error).message})`);
    }
  }
  return out;
}
