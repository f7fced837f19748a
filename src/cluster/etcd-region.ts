/**
 * One broker's connection to the etcd of its region: the client (endpoints, TLS,
 * credentials), the key layout, JSON reads that check what they read, and the one retry
 * loop every etcd operation of src/cluster goes through.
 *
 * etcd down: an operation is retried with exponential backoff and jitter until it
 * succeeds, its caller aborts, or its time budget runs out (METADATA_UNAVAILABLE, naming
 * the last error). Meanwhile `status()` says etcd is unreachable, since when and why; it is
 * what /v1/cluster and `meridian_cluster_etcd_up` will show.
 *
 * etcd3's own fault handling is switched off (its per-host circuit breaker would hold
 * every call, keepalives included, for 5 s after three failures, long enough to lose a
 * lease of a few seconds on a blip); the retries here are the only ones, so they are counted and shown.
 *
 * Lifecycle: construct, use, `close()` (idempotent; stops the client's connections; what
 * is waiting fails with ABORTED).
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { ExponentialBackoff, noop, type IBackoff } from 'cockatiel';
import { createRequire } from 'node:module';
import type * as Etcd3Module from 'etcd3';
import type { Etcd3, IKeyValue, IOptions } from 'etcd3';
import type { BrokerConfig } from '../config/schema.js';
import { ErrorCode, MeridianError } from '../errors.js';
import type { Logger } from '../logging.js';
import { regionKeys, type RegionKeys } from './etcd-keys.js';
import type { Versioned } from './partition-state.js';

export interface EtcdConnectionConfig {
  /** host:port or http(s)://host:port of each etcd member. */
  readonly endpoints: readonly string[];
  readonly tls?: { readonly caFile: string | null; readonly certFile: string | null; readonly keyFile: string | null };
  readonly username?: string | null;
  /** Never logged. */
  readonly password?: string | null;
  /** Key prefix (default /meridian); the region's keys are under `<prefix>/<region>/`. */
  readonly prefix: string;
}

export interface EtcdRegionOptions {
  readonly region: string;
  readonly etcd: EtcdConnectionConfig;
  readonly logger?: Logger;
  /** Deadline of one etcd call (unary RPC); default 2 s. */
  readonly callTimeoutMs?: number;
  /** Time budget of an operation across its retries; default 30 s. */
  readonly opTimeoutMs?: number;
  /** Backoff between retries: first and largest delay; default 50 ms and 1 s. */
  readonly retry?: { readonly initialMs: number; readonly maxMs: number };
}

/** Whether etcd answers, for the admin API and metrics. */
export interface EtcdStatus {
  readonly reachable: boolean;
  /** The last error an etcd call got (null when none since the start). */
  readonly lastError: string | null;
  /** When `reachable` took its current value (ms since the epoch). */
  readonly since: number;
  /** Failed etcd calls since the start (each retry counts). */
  readonly failures: number;
  readonly endpoints: readonly string[];
}

export interface OpOptions {
  readonly signal?: AbortSignal;
  /** Overrides the region's opTimeoutMs; Infinity waits until success or abort. */
  readonly timeoutMs?: number;
}

export interface EtcdRegionEvents {
  status: [EtcdStatus];
}

/** etcd3's revisions are decimal strings; Meridian's are bigints. */
export const rev = (s: string | number): bigint => BigInt(s);

const requireCjs = createRequire(import.meta.url);
let etcd3Module: typeof Etcd3Module | undefined;

/**
 * The etcd3 client library, loaded on first use: with its gRPC stack it costs about 0.4 s of
 * CPU to load, which a broker that is not part of a region cluster (and every CLI command)
 * no longer pays. etcd3 is CommonJS, so this is the module an `import` would give.
 */
export function etcd3(): typeof Etcd3Module {
  return (etcd3Module ??= requireCjs('etcd3') as typeof Etcd3Module);
}

export class EtcdRegion extends EventEmitter<EtcdRegionEvents> {
  readonly region: string;
  readonly keys: RegionKeys;
  readonly client: Etcd3;
  readonly logger: Logger | undefined;
  readonly callTimeoutMs: number;
  readonly #opTimeoutMs: number;
  readonly #retry: { initialMs: number; maxMs: number };
  readonly #endpoints: readonly string[];
  #status: EtcdStatus;
  #closed = false;
  readonly #closing = new AbortController();

  constructor(options: EtcdRegionOptions) {
    super();
    const { etcd } = options;
    if (etcd.endpoints.length === 0) {
      throw new MeridianError(ErrorCode.BadConfig, 'cluster.etcd.endpoints is empty: a region cluster needs at least one etcd endpoint (host:port)');
    }
    this.region = options.region;
    this.keys = regionKeys(etcd.prefix, options.region);
    this.logger = options.logger;
    this.callTimeoutMs = options.callTimeoutMs ?? 2000;
    this.#opTimeoutMs = options.opTimeoutMs ?? 30_000;
    this.#retry = { initialMs: options.retry?.initialMs ?? 50, maxMs: options.retry?.maxMs ?? 1000 };
    const tls = etcd.tls;
    const secure = tls !== undefined && (tls.caFile !== null || tls.certFile !== null);
    this.#endpoints = etcd.endpoints.map((e) => (/^https?:\/\//.test(e) ? e : `${secure ? 'https' : 'http'}://${e}`));
    const clientOptions: IOptions = {
      hosts: [...this.#endpoints],
      dialTimeout: this.callTimeoutMs,
      // etcd3's watch reconnect backoff grows to 30 s (and its timer outlives a close); the
      // watches here restart themselves (etcd-watch.ts), so keep it short.
      // (etcd3 types watchBackoff as an IBackoff but calls it as the factory it is: next().)
      faultHandling: { host: () => noop, global: noop, watchBackoff: new ExponentialBackoff({ initialDelay: 50, maxDelay: 1000 }) as unknown as IBackoff<unknown> },
      // grpc's reconnect backoff grows to 120 s by default: after a long etcd outage the
      // broker would stay away that long once etcd is back. Keep it within the retry loop's.
      grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 },
      // Unary calls get a deadline so that a dead etcd fails a call instead of hanging it;
      // streams (watches, keepalives) live on and are given their own deadlines.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + this.callTimeoutMs }),
    };
    if (secure) {
      clientOptions.credentials = {
        rootCertificate: readPem(tls!.caFile, 'cluster.etcd.tls.caFile'),
        ...(tls!.certFile !== null ? { certChain: readPem(tls!.certFile, 'cluster.etcd.tls.certFile') } : {}),
        ...(tls!.keyFile !== null ? { privateKey: readPem(tls!.keyFile, 'cluster.etcd.tls.keyFile') } : {}),
      };
    }
    if (etcd.username != null) {
      clientOptions.auth = {
        username: etcd.username,
        password: etcd.password ?? '',
        callOptions: () => ({ deadline: Date.now() + this.callTimeoutMs }),
      };
    }
    this.client = new (etcd3().Etcd3)(clientOptions);
    this.#status = { reachable: true, lastError: null, since: Date.now(), failures: 0, endpoints: this.#endpoints };
  }

  /** The region of a broker config (`cluster.etcd`, `region`); the config must have endpoints. */
  static fromConfig(config: BrokerConfig, logger?: Logger): EtcdRegion {
    return new EtcdRegion({ region: config.region, etcd: config.cluster.etcd, ...(logger !== undefined ? { logger } : {}) });
  }

  status(): EtcdStatus {
    return this.#status;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Aborted when the region closes: long waits of other modules listen to it. */
  get closingSignal(): AbortSignal {
    return this.#closing.signal;
  }

  /** Records a call's success (keepalives and watches report here too). */
  markReachable(): void {
    if (this.#status.reachable) return;
    this.#status = { ...this.#status, reachable: true, since: Date.now() };
    this.logger?.info({ etcd: this.#endpoints }, 'etcd reachable again');
    this.emit('status', this.#status);
  }

  /** Records a failed call: etcd counts as unreachable until a call succeeds. */
  markFailure(err: unknown): void {
    const message = describe(err);
    const was = this.#status.reachable;
    this.#status = { ...this.#status, reachable: false, lastError: message, failures: this.#status.failures + 1, since: was ? Date.now() : this.#status.since };
    if (was) {
      this.logger?.warn({ etcd: this.#endpoints, error: message }, 'etcd unreachable: metadata changes (ISR, topics, leader elections) wait and are retried');
      this.emit('status', this.#status);
    }
  }

  /**
   * Runs `op` until it succeeds. Transient failures (etcd unreachable, no etcd leader, a
   * call past its deadline) are retried with backoff; others fail at once. `op` may run
   * more than once, also after a failure whose outcome is unknown (a transaction etcd
   * applied but whose answer was lost), so it must be safe to repeat: every write of
   * src/cluster is a compare-and-swap that recognises its own earlier success.
   */
  async run<T>(what: string, op: () => Promise<T>, options: OpOptions = {}): Promise<T> {
    const budget = options.timeoutMs ?? this.#opTimeoutMs;
    const deadline = Date.now() + budget;
    let delay = this.#retry.initialMs;
    for (let attempt = 1; ; attempt++) {
      this.#checkOpen(what, options.signal);
      try {
        const v = await op();
        this.markReachable();
        return v;
      } catch (err) {
        if (err instanceof MeridianError) throw err;
        if (this.#closed) throw new MeridianError(ErrorCode.Aborted, `${what}: the etcd client closed`, { cause: err });
        if (!isTransient(err)) throw classify(what, err);
        this.markFailure(err);
        if (Date.now() + delay > deadline) {
          throw new MeridianError(ErrorCode.MetadataUnavailable, `${what}: etcd (${this.#endpoints.join(', ')}) did not answer within ${budget} ms (${attempt} attempts); last error: ${describe(err)}`, { cause: err });
        }
        await sleep(delay * (0.5 + Math.random() / 2), options.signal, this.#closing.signal);
        delay = Math.min(this.#retry.maxMs, delay * 2);
      }
    }
  }

  /** Reads one key; undefined when absent. */
  async getJson<T>(key: string, parse: (key: string, raw: Buffer) => T, options: OpOptions = {}): Promise<Versioned<T> | undefined> {
    const res = await this.run(`read ${key}`, () => this.client.get(key).exec(), options);
    const kv = res.kvs[0];
    return kv === undefined ? undefined : versioned(kv, parse);
  }

  /** Reads every key under a prefix at one revision (returned, for a watch that continues from it). */
  async getPrefix<T>(prefix: string, parse: (key: string, raw: Buffer) => T, options: OpOptions = {}): Promise<{ entries: Map<string, Versioned<T>>; revision: bigint }> {
    const res = await this.run(`read ${prefix}*`, () => this.client.getAll().prefix(prefix).exec(), options);
    const entries = new Map<string, Versioned<T>>();
    for (const kv of res.kvs) entries.set(kv.key.toString(), versioned(kv, parse));
    return { entries, revision: rev(res.header.revision) };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    this.client.close();
  }

  #checkOpen(what: string, signal: AbortSignal | undefined): void {
    if (this.#closed) throw new MeridianError(ErrorCode.Aborted, `${what}: the etcd client closed`);
    if (signal?.aborted) throw new MeridianError(ErrorCode.Aborted, `${what}: aborted`, { cause: signal.reason });
  }
}

export function versioned<T>(kv: IKeyValue, parse: (key: string, raw: Buffer) => T): Versioned<T> {
  return { value: parse(kv.key.toString(), kv.value), modRevision: rev(kv.mod_revision), createRevision: rev(kv.create_revision) };
}

function readPem(file: string | null, field: string): Buffer {
  if (file === null) throw new MeridianError(ErrorCode.BadConfig, `${field} is needed for TLS to etcd (the CA that signed etcd's certificate)`);
  try {
    return readFileSync(file);
  } catch (err) {
    throw new MeridianError(ErrorCode.BadConfig, `${field}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

/** Errors worth retrying: the transport, etcd without a leader, a deadline. */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (etcd3().isRecoverableError(err)) return true;
  // Connection failures that reach us unclassified by etcd3 (grpc-js status 14 UNAVAILABLE, 4 DEADLINE_EXCEEDED).
  const code = (err as { code?: unknown }).code;
  return code === 14 || code === 4 || /UNAVAILABLE|DEADLINE_EXCEEDED|ECONNREFUSED|No connection established|etcdserver: (no leader|request timed out|leader changed|too many requests)/i.test(err.message);
}

function classify(what: string, err: unknown): MeridianError {
  const name = err instanceof Error ? err.constructor.name : '';
  if (/Authentication|Unauthenticated|PermissionDenied|InvalidAuthToken/.test(name)) {
    return new MeridianError(ErrorCode.BadConfig, `${what}: etcd refused Meridian's credentials or permissions (${describe(err)}); check cluster.etcd.username, the password and the user's role on the key prefix`, { cause: err });
  }
  return new MeridianError(ErrorCode.MetadataUnavailable, `${what}: etcd failed: ${describe(err)}`, { cause: err, retriable: false });
}

export function describe(err: unknown): string {
  return err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err);
}

/** Waits `ms`, or less when a signal aborts (then throws ABORTED). */
export function sleep(ms: number, ...signals: Array<AbortSignal | undefined>): Promise<void> {
  return new Promise((resolve, reject) => {
    const live = signals.filter((s): s is AbortSignal => s !== undefined);
    const aborted = live.find((s) => s.aborted);
    if (aborted !== undefined) return reject(new MeridianError(ErrorCode.Aborted, 'aborted', { cause: aborted.reason }));
    const onAbort = (ev: Event) => {
      clearTimeout(timer);
      for (const s of live) s.removeEventListener('abort', onAbort);
      reject(new MeridianError(ErrorCode.Aborted, 'aborted', { cause: (ev.target as AbortSignal).reason }));
    };
    const timer = setTimeout(() => {
      for (const s of live) s.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    for (const s of live) s.addEventListener('abort', onAbort, { once: true });
  });
}
