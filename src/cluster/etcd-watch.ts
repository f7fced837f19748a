/**
 * A watch on a key prefix that never misses a change: it continues from the revision its
 * caller loaded at, and after a lost connection it resumes from the last revision it
 * delivered (not from etcd3's own bookkeeping, which moves to the watch-creation header
 * and can skip replayed events when the stream breaks right after creation). When the
 * revision it needs was compacted away, it reloads the prefix and delivers the whole
 * state again (`reset`), so its listener always ends up with etcd's state.
 *
 * Events are delivered in revision order, one at a time per watch.
 *
 * Lifecycle: `start()` then `close()` (idempotent).
 */
import type { Watcher } from 'etcd3';
import type { Versioned } from './partition-state.js';
import { describe, rev, versioned, type EtcdRegion } from './etcd-region.js';

export interface PrefixListener<T> {
  /** A key created or changed (a value that does not parse goes to `error`, the watch goes on). */
  put(key: string, value: Versioned<T>): void;
  /** A key deleted (its lease expired, or deleted), at `revision`. */
  delete(key: string, revision: bigint): void;
  /** After a compaction: the whole prefix as it is at `revision`; keys not in it are gone. */
  reset?(entries: Map<string, Versioned<T>>, revision: bigint): void;
  error?(err: Error): void;
}

export class PrefixWatch<T> {
  readonly #region: EtcdRegion;
  readonly #prefix: string;
  readonly #parse: (key: string, raw: Buffer) => T;
  readonly #listener: PrefixListener<T>;
  /** The next revision to deliver. */
  #next: bigint;
  #watcher: Watcher | undefined;
  #closed = false;
  #backoff = 50;
  #timer: NodeJS.Timeout | undefined;

  /** Watches `prefix` from `fromRevision` (the revision of the caller's load + 1). */
  constructor(region: EtcdRegion, prefix: string, fromRevision: bigint, parse: (key: string, raw: Buffer) => T, listener: PrefixListener<T>) {
    this.#region = region;
    this.#prefix = prefix;
    this.#parse = parse;
    this.#listener = listener;
    this.#next = fromRevision;
  }

  /** The next revision this watch will deliver (everything before it was delivered). */
  get nextRevision(): bigint {
    return this.#next;
  }

  start(): void {
    if (this.#closed || this.#watcher !== undefined) return;
    const w = this.#region.client.watch().prefix(this.#prefix).startRevision(this.#next.toString()).watcher();
    this.#watcher = w;
    w.on('connected', () => {
      this.#backoff = 50;
      this.#region.markReachable();
    });
    w.on('data', (res) => {
      if (this.#watcher !== w) return;
      const from = this.#next;
      for (const ev of res.events) {
        const key = ev.kv.key.toString();
        const at = rev(ev.kv.mod_revision);
        if (at < from) continue; // delivered before a reconnect
        // Only an event moves the resume point: a catching-up watch's header revision can be
        // ahead of the events sent so far (etcd sends at most 1,000 revisions at once).
        if (at + 1n > this.#next) this.#next = at + 1n;
        if (ev.type === 'Put') {
          let value: Versioned<T>;
          try {
            value = versioned(ev.kv, this.#parse);
          } catch (err) {
            this.#listener.error?.(err as Error);
            continue;
          }
          this.#deliver(() => this.#listener.put(key, value));
        } else {
          this.#deliver(() => this.#listener.delete(key, at));
        }
      }
    });
    w.on('disconnected', (err) => {
      this.#region.markFailure(err);
      this.#restart();
    });
    w.on('error', (err) => {
      // etcd cancelled the watch: the revision it needs was compacted (etcd 3.4 gives no
      // reason text then), or a permission changed. Reloading is right in every case.
      this.#region.logger?.warn({ prefix: this.#prefix, revision: this.#next.toString(), error: describe(err) }, 'etcd cancelled a watch; reloading the prefix');
      this.#reload();
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    const w = this.#watcher;
    this.#watcher = undefined;
    if (w !== undefined && !this.#region.closed) void w.cancel().catch(() => undefined);
  }

  /** Drops the current watcher and starts a new one from #next after a backoff. */
  #restart(): void {
    const w = this.#watcher;
    this.#watcher = undefined;
    if (w !== undefined) void w.cancel().catch(() => undefined);
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.start(), this.#backoff);
    this.#backoff = Math.min(1000, this.#backoff * 2);
  }

  #reload(): void {
    const w = this.#watcher;
    this.#watcher = undefined;
    if (w !== undefined) void w.cancel().catch(() => undefined);
    void this.#region
      .getPrefix(this.#prefix, this.#parseLenient, { timeoutMs: Infinity, signal: this.#region.closingSignal })
      .then(({ entries, revision }) => {
        if (this.#closed) return;
        const good = new Map<string, Versioned<T>>();
        for (const [k, v] of entries) if (v.value !== undefined) good.set(k, v as Versioned<T>);
        this.#next = revision + 1n;
        this.#listener.reset?.(good, revision);
        this.start();
      })
      .catch((err: Error) => {
        if (!this.#closed) this.#listener.error?.(err);
      });
  }

  /** A listener that throws must not break the watch (etcd3 would rethrow it out of the stream). */
  #deliver(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#listener.error?.(err as Error);
    }
  }

  readonly #parseLenient = (key: string, raw: Buffer): T | undefined => {
    try {
      return this.#parse(key, raw);
    } catch (err) {
      this.#listener.error?.(err as Error);
      return undefined;
    }
  };
}
