/**
 * A region cluster's disaster-recovery roles are region-wide: each DR topic's primary, epoch
 * and phase (dr/dr-state.ts) live in etcd, one key per topic, and every saved promote or
 * failback report in `dr/reports/<id>`. A promote through one broker makes the region the
 * topic's primary on all of them: every partition leader takes producers, every broker
 * refuses the old primary's data by the new epoch, and every broker's replicator reconciles
 * its links (DrState's listeners).
 *
 * Keys (etcd-keys.ts):
 *   dr/topics/<topic>   that topic's TopicDrEntry (JSON); no key: the policy's default
 *   dr/initialized      written when the region's roles were first seeded (or by the first
 *                       change): from then on no starting broker seeds roles again
 *   dr/reports/<id>     a saved report
 *   dr/state            legacy only: the previous version's single document, migrated at start
 * Why one key per topic: with one document every change rewrote all topics (etcd's history
 * grew with the square of the topic count, the document passed etcd's 1.5 MiB request limit
 * at about 7,000 topics) and every change of any topic contended on one key, so a
 * `promote --region` or a mass topic deletion ran out of compare-and-swap attempts.
 *
 * Writes (promote, failback's phases, a peer's newer epoch noted by the replication target,
 * a deleted topic forgotten) arrive as a change of one topic's entry (`DrStateWrites`): the
 * change runs on that entry as this broker applied it and is written with a compare-and-swap
 * on the topic key's mod revision (Create == 0 when there is none; a change answering
 * undefined deletes the key, guarded the same way); a concurrent write of the same topic
 * from another broker fails the swap, and the change runs again on top of it once this
 * broker's watch delivered it (so two leaders noting the same newer epoch write it once).
 * Changes of different topics never conflict. A report goes in the same transaction as the
 * phase that names it. The asking broker answers once its own watch applied the write, so a
 * GET /v1/dr on it right after shows it; the others apply it within their watch's delay.
 *
 * Every broker applies each topic key to its DrState (`applyEntry`: state.json is its copy,
 * the topic's listeners hear it) and each report to its own `dr/reports/` (a copy), so any
 * broker serves GET /v1/dr/reports from local files. Reports are in etcd rather than on shared
 * storage because a region cluster has no other shared store (tiered storage is optional); a
 * report is a few hundred bytes per partition, so a topic of several thousand partitions
 * could pass etcd's request limit: the promote then fails before its `promoted` phase, and is
 * retried after raising the limit.
 *
 * Start-up (`open`, before the listener opens), in order:
 *   1. Legacy: a `dr/state` document (written by the previous version) is migrated: each of
 *      its topics becomes a topic key where none exists, the marker is written and the
 *      document deleted (guarded on its revision). Brokers of both versions must not run
 *      together: the previous version reads and writes only the document.
 *   2. Seeding: a region without `dr/initialized` whose starting broker has roles in its own
 *      state.json (a single broker that became a cluster) gets them: its reports, then its
 *      topics, each key created only if absent, then the marker. Two brokers seeding at once:
 *      per topic (and report) the first writer wins, and both then follow what etcd holds.
 *   3. A broker whose own non-empty copy differs from the region's keeps it aside
 *      (`state.json.local-<time>`) and applies the region's (a copy that does not parse was
 *      already moved aside by DrState).
 * Start-up writes go in transactions of at most SEED_BATCH keys: etcd refuses a transaction
 * of more than --max-txn-ops operations (128 by default), which would stop a broker with
 * that many reports or topics from starting.
 *
 * Damage: a topic key that does not parse stops a starting broker (BAD_CONFIG naming the key:
 * it would take writes for a topic the region copies, or refuse them where it is primary); a
 * running broker logs it and keeps the role it has for that topic, and the next change of the
 * topic through a running broker writes a valid entry over it. A deleted topic key is the
 * topic forgotten (its policy's default), as when a deleted Kafka topic's role is dropped.
 */
import fs from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import { KEEP, parseEntry, parseState, type DrState, type DrStateWrites, type EntryChange, type StateFile, type TopicDrEntry } from '../dr/dr-state.js';
import type { DrReport } from '../dr/recovery-report.js';
import { AppliedWaiters } from './applied-waiters.js';
import { rev, type EtcdRegion } from './etcd-region.js';
import { PrefixWatch } from './etcd-watch.js';
import type { Versioned } from './partition-state.js';

/** Compare-and-swap attempts before a change gives up (each lost one means another change of the same topic won). */
const MAX_ATTEMPTS = 20;

/** Keys created per start-up transaction: under etcd's --max-txn-ops (128 by default), which counts the compares too. */
export const SEED_BATCH = 100;

const parseText = (_key: string, raw: Buffer): string => raw.toString('utf8');

const entryText = (e: TopicDrEntry): string => JSON.stringify(e);

const reportText = (r: DrReport): string => JSON.stringify(r, null, 2) + '\n';

export class ClusterDrState implements DrStateWrites {
  readonly #region: EtcdRegion;
  readonly #state: DrState;
  readonly #nodeId: number;
  readonly #log: Logger | undefined;
  #watch: PrefixWatch<string> | undefined;
  /** Mod revision of each topic key this broker applied (absent: no key). */
  readonly #mods = new Map<string, bigint>();
  /** Whether this broker saw the region's `dr/initialized` (a change writes it otherwise). */
  #initialized = false;
  /** The etcd revision whose state of `dr/` this broker has applied. */
  #applied = 0n;
  readonly #waiters = new AppliedWaiters();

  private constructor(region: EtcdRegion, state: DrState, nodeId: number, logger: Logger | undefined) {
    this.#region = region;
    this.#state = state;
    this.#nodeId = nodeId;
    this.#log = logger;
  }

  /** Reads (migrates, seeds) the region's DR roles and reports, applies them, follows them, and makes `state.writes` go to etcd. */
  static async open(region: EtcdRegion, state: DrState, nodeId: number, logger?: Logger): Promise<ClusterDrState> {
    const c = new ClusterDrState(region, state, nodeId, logger);
    await c.#load();
    c.#start();
    state.writes = c;
    return c;
  }

  close(): void {
    this.#watch?.close();
    this.#waiters.close();
  }

  async change(topic: string, change: EntryChange, report?: DrReport): Promise<void> {
    const { client, keys } = this.#region;
    const key = keys.drTopic(topic);
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const base = this.#mods.get(topic) ?? 0n;
      // The entry as this broker applied it (or, under a key that does not parse, the one it enforces).
      const next = change(this.#state.entry(topic));
      if (next === KEEP) return;
      if (next === undefined && base === 0n) return;
      const text = next === undefined ? undefined : entryText(next);
      const ops = [
        ...(report === undefined ? [] : [client.put(keys.drReport(report.id)).value(reportText(report))]),
        text === undefined ? client.delete().key(key) : client.put(key).value(text),
        // A region whose roles were never seeded: its first change marks it, so that a broker
        // starting later with an old copy does not seed roles the region has since dropped.
        ...(this.#initialized ? [] : [client.put(keys.drInitialized).value(this.#marker('first change'))]),
      ];
      const reads = [client.get(key), ...(report === undefined ? [] : [client.get(keys.drReport(report.id))])];
      const res = await this.#region.run(`write the DR role of ${topic}`, () =>
        (base === 0n ? client.if(key, 'Create', '==', 0) : client.if(key, 'Mod', '==', base.toString())).then(...ops).else(...reads).commit(),
      );
      if (res.succeeded) return this.#appliedHere(rev(res.header.revision), topic, report);
      // A retried transaction whose first attempt etcd applied (its answer lost) fails its
      // guard against its own write: the key as that write left it, with the report, is that success.
      const kv = res.responses[0]?.response_range?.kvs[0];
      const reportThere = report === undefined || (res.responses[1]?.response_range?.kvs.length ?? 0) > 0;
      if (reportThere && text !== undefined && kv !== undefined && kv.value.toString('utf8') === text) return this.#appliedHere(rev(kv.mod_revision), topic, report);
      if (reportThere && text === undefined && kv === undefined) {
        return this.#waiters.until(() => !this.#mods.has(topic) && (report === undefined || this.#state.reports.has(report.id)), `the DR role of ${topic} was deleted from etcd but this broker's watch did not deliver it`);
      }
      // Another broker changed this topic's role since: take its change, then run this one on top of it.
      await this.#waiters.until(() => (this.#mods.get(topic) ?? 0n) !== base, `the DR role of ${topic} changed in etcd but this broker's watch did not deliver the change`);
    }
    throw new MeridianError(ErrorCode.MetadataUnavailable, `the DR role of ${topic} kept changing under this change (${MAX_ATTEMPTS} attempts); retry`);
  }

  /** Resolves once this broker's watch applied `dr/` up to `at` (and the report). */
  #appliedHere(at: bigint, topic: string, report: DrReport | undefined): Promise<void> {
    return this.#waiters.until(
      () => this.#applied >= at && (report === undefined || this.#state.reports.has(report.id)),
      `the DR role of ${topic} was written to etcd (revision ${at}) but this broker's watch did not deliver it`,
    );
  }

  #marker(how: string): string {
    return JSON.stringify({ by: this.#nodeId, how, at: new Date().toISOString() });
  }

  async #load(): Promise<void> {
    const { keys } = this.#region;
    let { entries, revision } = await this.#region.getPrefix(keys.drPrefix, parseText);
    for (let attempt = 1; entries.has(keys.drState); attempt++) {
      if (attempt > MAX_ATTEMPTS) throw new MeridianError(ErrorCode.MetadataUnavailable, `the legacy DR roles document ${keys.drState} kept changing while it was migrated (${MAX_ATTEMPTS} attempts): is a broker of the previous version still running? Stop it and start this broker again`);
      await this.#migrate(entries);
      ({ entries, revision } = await this.#region.getPrefix(keys.drPrefix, parseText));
    }
    const local = this.#state.snapshot();
    const hasLocal = Object.keys(local.topics).length > 0;
    if (!entries.has(keys.drInitialized) && hasLocal) {
      await this.#seed(local, entries);
      ({ entries, revision } = await this.#region.getPrefix(keys.drPrefix, parseText));
    }
    const topics: Record<string, TopicDrEntry> = {};
    for (const [key, v] of entries) {
      const topic = keys.drTopicOf(key);
      if (topic === undefined) continue;
      try {
        topics[topic] = parseEntry(v.value, `etcd key ${key}`);
      } catch (err) {
        throw new MeridianError(ErrorCode.BadConfig, `${(err as Error).message}: this broker does not start without the region's DR role of ${topic} (it would take or refuse writes wrongly); restore the key from a backup, write a valid entry (its copies in the other brokers' dr/state.json hold one), or delete the key to return the topic to its policy's source`);
      }
      this.#mods.set(topic, v.modRevision);
    }
    this.#initialized = entries.has(keys.drInitialized);
    if (hasLocal && !isDeepStrictEqual(topics, local.topics)) {
      const copy = `${this.#state.file}.local-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      try {
        fs.copyFileSync(this.#state.file, copy);
      } catch (err) {
        throw new MeridianError(ErrorCode.StorageIo, `keeping a copy of ${this.#state.file} before the region's DR roles replace it: ${(err as Error).message}`, { cause: err });
      }
      this.#log?.warn({ copy }, "this broker's own DR roles differ from the region's: it follows the region's (etcd) from now on; its own are kept in the copy");
    }
    this.#copyFailed(this.#state.replaceAll({ version: 1, topics }));
    for (const [key, r] of entries) this.#applyReport(key, r);
    this.#applied = revision;
  }

  /** Moves the previous version's single document to topic keys (existing keys win), writes the marker, deletes the document. */
  async #migrate(entries: Map<string, Versioned<string>>): Promise<void> {
    const { client, keys } = this.#region;
    const legacy = entries.get(keys.drState)!;
    let doc: StateFile;
    try {
      doc = parseState(legacy.value, `etcd key ${keys.drState}`);
    } catch (err) {
      throw new MeridianError(ErrorCode.BadConfig, `${(err as Error).message}: the previous version's DR roles document cannot be migrated, and this broker does not start without the region's DR roles (it would take or refuse writes wrongly); restore the key from a backup or write a valid document (its state.json copies on the other brokers are one)`);
    }
    const items = Object.entries(doc.topics)
      .filter(([topic]) => !entries.has(keys.drTopic(topic)))
      .map(([topic, e]): [string, string] => [keys.drTopic(topic), entryText(e)]);
    const written = await this.#createAbsent('migrate the legacy DR roles document to one key per topic', items);
    // Guarded on the document's revision: a broker of the previous version that wrote it
    // meanwhile leaves it in place, and the caller migrates it again.
    const res = await this.#region.run('finish the migration of the legacy DR roles document', () =>
      client.if(keys.drState, 'Mod', '==', legacy.modRevision.toString()).then(client.put(keys.drInitialized).value(this.#marker('migrated from dr/state')), client.delete().key(keys.drState)).commit(),
    );
    if (res.succeeded) this.#log?.info({ topics: Object.keys(doc.topics).length, written, by: this.#nodeId }, `migrated the region's DR roles from the previous version's single document (${keys.drState}) to one key per topic`);
  }

  /** Writes this broker's own roles and reports to a region that has none (per key, the first writer wins), then the marker. */
  async #seed(local: StateFile, entries: Map<string, Versioned<string>>): Promise<void> {
    const { client, keys } = this.#region;
    // Reports first: a phase that names a report finds it.
    const reports = this.#state.reports
      .list()
      .filter((r) => !entries.has(keys.drReport(r.id)))
      .map((r): [string, string] => [keys.drReport(r.id), reportText(this.#state.reports.get(r.id))]);
    const reportsWritten = await this.#createAbsent("seed the region's DR reports", reports);
    const topics = Object.entries(local.topics)
      .filter(([topic]) => !entries.has(keys.drTopic(topic)))
      .map(([topic, e]): [string, string] => [keys.drTopic(topic), entryText(e)]);
    const topicsWritten = await this.#createAbsent("seed the region's DR roles", topics);
    await this.#region.run("mark the region's DR roles seeded", () => client.if(keys.drInitialized, 'Create', '==', 0).then(client.put(keys.drInitialized).value(this.#marker('seeded'))).commit());
    this.#log?.info({ topics: topicsWritten, reports: reportsWritten, by: this.#nodeId }, "the region had no DR roles in etcd: seeded from this broker's dr/state.json and reports (keys another broker wrote first were kept)");
  }

  /**
   * Creates each key that does not exist yet, never overwriting one, in transactions of at
   * most SEED_BATCH keys; answers how many it created. A batch whose guard fails (another
   * broker created some of its keys, or a retried attempt of this one did) is retried with
   * the keys still absent.
   */
  async #createAbsent(what: string, items: ReadonlyArray<[string, string]>): Promise<number> {
    const { client } = this.#region;
    let written = 0;
    for (let i = 0; i < items.length; i += SEED_BATCH) {
      let batch = items.slice(i, i + SEED_BATCH);
      for (let attempt = 1; batch.length > 0; attempt++) {
        if (attempt > MAX_ATTEMPTS) throw new MeridianError(ErrorCode.MetadataUnavailable, `${what}: the keys kept changing (${MAX_ATTEMPTS} attempts); retry`);
        const todo = batch;
        const res = await this.#region.run(what, () => {
          let txn = client.if(todo[0]![0], 'Create', '==', 0);
          for (const [key] of todo.slice(1)) txn = txn.and(key, 'Create', '==', 0);
          return txn
            .then(...todo.map(([key, value]) => client.put(key).value(value)))
            .else(...todo.map(([key]) => client.get(key)))
            .commit();
        });
        if (res.succeeded) {
          written += todo.length;
          break;
        }
        batch = todo.filter((_, j) => (res.responses[j]?.response_range?.kvs.length ?? 0) === 0);
      }
    }
    return written;
  }

  #start(): void {
    const { keys } = this.#region;
    this.#watch = new PrefixWatch(this.#region, keys.drPrefix, this.#applied + 1n, parseText, {
      put: (key, v) => this.#at(v.modRevision, () => this.#applyPut(key, v)),
      delete: (key, at) => this.#at(at, () => this.#applyDelete(key)),
      reset: (all, at) => this.#at(at, () => this.#applyAll(all)),
      error: (err) => this.#log?.error({ err }, 'DR roles watch'),
    });
    this.#watch.start();
  }

  /** Applies one watch event; the waiters re-check even when applying it threw (a listener's fault must not hold up a change for its timeout). */
  #at(revision: bigint, apply: () => void): void {
    try {
      apply();
    } finally {
      if (revision > this.#applied) this.#applied = revision;
      this.#waiters.wake();
    }
  }

  #applyPut(key: string, v: Versioned<string>): void {
    const { keys } = this.#region;
    const topic = keys.drTopicOf(key);
    if (topic !== undefined) return this.#applyTopic(key, topic, v);
    if (key === keys.drInitialized) {
      this.#initialized = true;
      return;
    }
    if (key === keys.drState) {
      this.#log?.error({ key }, "a broker of the previous version wrote the region's legacy DR roles document: this broker ignores it (it follows dr/topics/); stop that broker, upgrade it, and restart a broker of this version to migrate the document");
      return;
    }
    this.#applyReport(key, v);
  }

  #applyDelete(key: string): void {
    const { keys } = this.#region;
    const topic = keys.drTopicOf(key);
    if (topic !== undefined) {
      this.#mods.delete(topic);
      if (this.#state.entry(topic) !== undefined) this.#log?.info({ topic, key }, "the DR role of a topic was removed from etcd: the topic follows its policy's default (its source is the primary, epoch 0)");
      this.#copyFailed(this.#state.applyEntry(topic, undefined));
      return;
    }
    if (key === keys.drInitialized) {
      this.#initialized = false;
      this.#log?.warn({ key }, "the region's DR roles marker was deleted from etcd: a broker starting with roles of its own would seed topics the region has none for; the next change writes the marker again");
    }
    // A deleted report stays in the copies: reports are history.
  }

  /** A watch reload: the whole of `dr/` (a topic without a key is forgotten). */
  #applyAll(all: Map<string, Versioned<string>>): void {
    const { keys } = this.#region;
    const topics: Record<string, TopicDrEntry> = {};
    this.#mods.clear();
    for (const [key, v] of all) {
      const topic = keys.drTopicOf(key);
      if (topic === undefined) continue;
      this.#mods.set(topic, v.modRevision);
      const entry = this.#parseRunning(key, v);
      const kept = entry ?? this.#state.entry(topic);
      if (kept !== undefined) topics[topic] = kept;
    }
    this.#initialized = all.has(keys.drInitialized);
    this.#copyFailed(this.#state.replaceAll({ version: 1, topics }));
    for (const [key, r] of all) this.#applyReport(key, r);
  }

  #applyTopic(key: string, topic: string, v: Versioned<string>): void {
    // Kept as applied (its revision) even when it does not parse, so a change swaps a valid entry in over it.
    this.#mods.set(topic, v.modRevision);
    const entry = this.#parseRunning(key, v);
    if (entry !== undefined) this.#copyFailed(this.#state.applyEntry(topic, entry));
  }

  /** A running broker's reading of a topic key: undefined (logged) when it does not parse. */
  #parseRunning(key: string, v: Versioned<string>): TopicDrEntry | undefined {
    try {
      return parseEntry(v.value, `etcd key ${key}`);
    } catch (err) {
      this.#log?.error({ err, key }, "a DR role in etcd does not parse: this broker keeps the role it has for that topic; the next promote or failback of it through a running broker writes a valid one");
      return undefined;
    }
  }

  #copyFailed(err: Error | null): void {
    if (err !== null) this.#log?.error({ err }, "the region's DR roles are in force but this broker could not write its copy (dr/state.json)");
  }

  #applyReport(key: string, v: Versioned<string>): void {
    const id = this.#region.keys.drReportIdOf(key);
    if (id === undefined) return;
    try {
      const report = JSON.parse(v.value) as DrReport;
      if (report.id !== id) throw new Error(`holds report ${String(report.id)}`);
      // A restart reads every report again: only a new or changed one is written.
      if (this.#state.reports.has(id) && JSON.stringify(this.#state.reports.get(id)) === JSON.stringify(report)) return;
      this.#state.reports.save(report);
    } catch (err) {
      this.#log?.error({ key, err: (err as Error).message }, 'a DR report in etcd could not be kept here (not a report, or its copy could not be written)');
    }
  }
}
