/**
 * A cluster broker's topics follow etcd: the topic records are loaded at one revision and
 * then watched from the revision after it (etcd-topics.ts), and for each record the broker
 * opens the topic's partition logs locally (TopicManager.createTopic with etcd's topic id,
 * so every broker answers the same id), grows it when the record has more partitions, and
 * replaces a local topic of the same name whose id differs (left from before the region was
 * a cluster, or from a topic deleted and created again): etcd is the truth.
 *
 * Every partition of a topic is opened on every broker, also those this broker holds no
 * replica of: they stay empty (the replica manager neither leads nor follows them), and a
 * later reassignment finds the log already open. Metadata lists only topics etcd has
 * (`has`), so a local topic etcd does not know is not served in cluster mode.
 *
 * Topic configs live in the record too: AlterConfigs and IncrementalAlterConfigs on any
 * broker rewrite it by compare-and-swap (TopicStore.updateTopicConfigs), and every broker
 * applies a record whose configs differ from its local overrides (TopicManager
 * .updateTopicConfig), so the region's brokers agree on them; the asking broker answers once
 * its own copy has applied the change (`waitApplied`).
 *
 * A record deleted from etcd (DeleteTopics on any broker, topic-admin.ts) deletes the local
 * topic of the same id; the asking broker answers once its copy is gone (`waitGone`).
 */
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import type { TopicConfig, TopicInfo, TopicManager } from '../storage/topic-manager.js';
import type { OpOptions } from './etcd-region.js';
import type { TopicStore } from './etcd-topics.js';
import type { TopicRecord, Versioned } from './partition-state.js';

export interface TopicSyncOptions {
  readonly store: TopicStore;
  readonly topics: TopicManager;
  /** The local topic config of an etcd record's configs (what storage applies). */
  readonly localConfig: (record: TopicRecord) => TopicConfig;
  readonly logger?: Logger;
}

export class TopicSync {
  readonly #o: TopicSyncOptions;
  readonly #records = new Map<string, Versioned<TopicRecord>>();
  /** Per topic, the mod revision of the last record applied locally. */
  readonly #applied = new Map<string, bigint>();
  /** Per topic, the chain of local changes: one at a time, in the order etcd gave them. */
  readonly #chains = new Map<string, Promise<void>>();
  readonly #waiters = new Set<() => void>();
  #watch: { close(): void } | undefined;
  #closed = false;

  constructor(o: TopicSyncOptions) {
    this.#o = o;
  }

  /** Loads every topic record, opens the local logs, then watches. */
  async start(options: OpOptions = {}): Promise<void> {
    const snap = await this.#o.store.snapshot(options);
    for (const [name, r] of snap.topics) this.#changed(name, r);
    await Promise.all([...this.#chains.values()]);
    this.#watch = this.#o.store.watchTopics(snap.revision + 1n, {
      changed: (name, r) => this.#changed(name, r),
      removed: (name) => this.#removed(name),
      reset: (all) => {
        for (const [name, r] of all) this.#changed(name, r);
        // A reload after a compaction: records that are gone were deleted meanwhile.
        for (const name of [...this.#records.keys()]) if (!all.has(name)) this.#removed(name);
      },
      error: (err) => this.#o.logger?.error({ err }, 'topic watch'),
    });
  }

  close(): void {
    this.#closed = true;
    this.#watch?.close();
    this.#wake();
  }

  /** Whether etcd has the topic (as this broker last saw it). */
  has(name: string): boolean {
    return this.#records.has(name);
  }

  record(name: string): TopicRecord | undefined {
    return this.#records.get(name)?.value;
  }

  /** The etcd topic store this follows (reads by topic-admin.ts). */
  get store(): TopicStore {
    return this.#o.store;
  }

  /**
   * Resolves once etcd no longer lists the topic and this broker has deleted its local copy
   * of id `topicId`; METADATA_UNAVAILABLE after `timeoutMs`.
   */
  async waitGone(name: string, topicId: string, timeoutMs: number): Promise<void> {
    await this.#until(
      name,
      () => (this.#records.get(name)?.value.topicId === topicId || this.#o.topics.getTopic(name)?.id === topicId ? undefined : true),
      timeoutMs,
      `deleted in etcd but not yet on this broker within ${timeoutMs} ms; it goes once the broker's etcd watch delivers the deletion`,
    );
  }

  /** The record with its revisions (the CAS token of a config change). */
  versioned(name: string): Versioned<TopicRecord> | undefined {
    return this.#records.get(name);
  }

  records(): ReadonlyMap<string, TopicRecord> {
    return new Map([...this.#records].map(([k, v]) => [k, v.value]));
  }

  /**
   * Resolves once this broker has applied the topic's record at `modRevision` or later
   * (opened, grown, configs changed locally); METADATA_UNAVAILABLE after `timeoutMs`.
   */
  async waitApplied(name: string, modRevision: bigint, timeoutMs: number): Promise<void> {
    await this.#until(
      name,
      () => ((this.#applied.get(name) ?? -1n) >= modRevision ? true : undefined),
      timeoutMs,
      `the change was written to etcd but not applied on this broker within ${timeoutMs} ms; it applies once the broker's etcd watch delivers it`,
    );
  }

  /** The local topic, once it is open with etcd's id and partition count. */
  ready(name: string): TopicInfo | undefined {
    const r = this.#records.get(name)?.value;
    const local = this.#o.topics.getTopic(name);
    return r !== undefined && local !== undefined && local.id === r.topicId && local.partitions >= r.partitions ? local : undefined;
  }

  /** Resolves with the local topic once etcd has it and it is open here; METADATA_UNAVAILABLE after `timeoutMs`. */
  waitReady(name: string, timeoutMs: number, check?: () => Promise<void>): Promise<TopicInfo> {
    return this.#until(name, () => this.ready(name), timeoutMs, `not ready on this broker within ${timeoutMs} ms (etcd or the controller is slow or unreachable); retry`, check);
  }

  /**
   * Resolves with `done()`'s value once it has one, re-asking whenever this sync changes
   * something (and every 100 ms); METADATA_UNAVAILABLE (`topic <name>: <late>`) after
   * `timeoutMs`, ABORTED once closed. `check` runs between two asks and may throw.
   */
  async #until<T>(name: string, done: () => T | undefined, timeoutMs: number, late: string, check?: () => Promise<void>): Promise<T> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const v = done();
      if (v !== undefined) return v;
      if (this.#closed) throw new MeridianError(ErrorCode.Aborted, `topic ${name}: the broker is shutting down`);
      if (Date.now() >= until) throw new MeridianError(ErrorCode.MetadataUnavailable, `topic ${name}: ${late}`);
      await check?.();
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.#waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(100, Math.max(1, until - Date.now())));
        this.#waiters.add(wake);
      });
    }
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  #changed(name: string, v: Versioned<TopicRecord>): void {
    this.#records.set(name, v);
    const prev = this.#chains.get(name) ?? Promise.resolve();
    const next = prev
      .then(async () => {
        await this.#open(name, v.value);
        if ((this.#applied.get(name) ?? -1n) < v.modRevision) this.#applied.set(name, v.modRevision);
      })
      .catch((err: unknown) => this.#o.logger?.error({ err, topic: name }, 'could not open the topic etcd lists; retried at its next change'))
      .finally(() => this.#wake());
    this.#chains.set(name, next);
  }

  #removed(name: string): void {
    const old = this.#records.get(name);
    this.#records.delete(name);
    this.#applied.delete(name);
    if (old === undefined) return this.#wake();
    const prev = this.#chains.get(name) ?? Promise.resolve();
    const next = prev
      .then(async () => {
        const local = this.#o.topics.getTopic(name);
        // Created again meanwhile under a new id: that one stays.
        if (this.#closed || local === undefined || local.id !== old.value.topicId || this.#records.has(name)) return;
        await this.#o.topics.deleteTopic(name);
        this.#o.logger?.info({ topic: name, topicId: old.value.topicId }, 'topic deleted: etcd no longer lists it');
      })
      .catch((err: unknown) => this.#o.logger?.error({ err, topic: name }, 'could not delete the local copy of a topic etcd no longer lists'))
      .finally(() => this.#wake());
    this.#chains.set(name, next);
  }

  async #open(name: string, r: TopicRecord): Promise<void> {
    if (this.#closed) return;
    const topics = this.#o.topics;
    let local = topics.getTopic(name);
    if (local !== undefined && local.id !== r.topicId) {
      this.#o.logger?.warn({ topic: name, localId: local.id, etcdId: r.topicId }, 'a local topic has the name of an etcd topic with another id: replaced by the etcd topic');
      await topics.deleteTopic(name);
      local = undefined;
    }
    if (local === undefined) {
      await topics.createTopic(name, r.partitions, this.#o.localConfig(r), { id: r.topicId, startOffsets: [] });
      this.#o.logger?.info({ topic: name, partitions: r.partitions, topicId: r.topicId }, 'topic opened from etcd');
    } else if (local.partitions < r.partitions) {
      await topics.addPartitions(name, r.partitions);
    }
    const want = this.#o.localConfig(r);
    const now = topics.getTopic(name);
    if (now !== undefined && !sameTopicConfig(now.config, want)) {
      await topics.updateTopicConfig(name, () => want);
      this.#o.logger?.info({ topic: name, config: want }, 'topic configs changed from etcd');
    }
  }
}

function sameTopicConfig(a: TopicConfig, b: TopicConfig): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof TopicConfig>;
  for (const k of keys) if (a[k] !== b[k]) return false;
  return true;
}
