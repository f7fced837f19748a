/**
 * A region cluster's disaster-recovery roles are region-wide: each DR topic's primary, epoch
 * and phase (dr/dr-state.ts) live in one etcd document, `dr/state` (the same JSON as a
 * broker's `dr/state.json`), and every saved promote or failback report in `dr/reports/<id>`.
 * A promote through one broker makes the region the topic's primary on all of them: every
 * partition leader takes producers, every broker refuses the old primary's data by the new
 * epoch, and every broker's replicator reconciles its links (DrState's listeners).
 *
 * Writes (promote, failback's phases, a peer's newer epoch noted by the replication target,
 * a deleted topic forgotten) arrive as a change of one topic's entry (`DrStateWrites`): the
 * change runs on the document as this broker last applied it and the result is written with
 * a compare-and-swap on the key's mod revision; a concurrent write from another broker fails
 * the swap, and the change runs again on top of that write once this broker's watch delivered
 * it (so two leaders noting the same newer epoch write it once). A report goes in the same
 * transaction as the phase that names it. The asking broker answers once its own watch
 * applied the write, so a GET /v1/dr on it right after shows it; the others apply it within
 * their watch's delay (milliseconds).
 *
 * Every broker applies the document to its DrState (`replaceAll`: state.json becomes its
 * copy) and each report to its own `dr/reports/` (a copy), so any broker serves GET
 * /v1/dr/reports from local files. Reports are in etcd rather than on shared storage because
 * a region cluster has no other shared store (tiered storage is optional) and etcd already
 * holds the region's documents; a report is a few hundred bytes per partition, so a topic of
 * several thousand partitions could pass etcd's request limit (1.5 MiB by default): the
 * promote then fails before its `promoted` phase, and is retried after raising the limit.
 *
 * Start-up (`open`, before the listener opens): read `dr/`. A region without the document
 * whose starting broker has roles in its own state.json (a single broker that became a
 * cluster, or a broker whose copy outlived a hand-deleted key) seeds it from that file and
 * its reports, in one transaction that only the first such broker wins. A broker whose own
 * non-empty copy differs from the region's keeps it aside (`state.json.local-<time>`) and
 * applies the region's (a copy that does not parse was already moved aside by DrState). A document that does not parse stops the start (it would take
 * writes for topics the region copies, or refuse them where it is primary): fix the key.
 * While running, a deleted or broken document is logged and the broker keeps the roles it
 * has; the next change through any broker writes a valid document again from them.
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import { KEEP, parseState, type DrState, type DrStateWrites, type EntryChange, type StateFile } from '../dr/dr-state.js';
import type { DrReport } from '../dr/recovery-report.js';
import { AppliedWaiters } from './applied-waiters.js';
import { rev, type EtcdRegion } from './etcd-region.js';
import { PrefixWatch } from './etcd-watch.js';
import type { Versioned } from './partition-state.js';

/** Compare-and-swap attempts before a change gives up (each lost one means another change won). */
const MAX_ATTEMPTS = 20;

const parseText = (_key: string, raw: Buffer): string => raw.toString('utf8');

const docText = (doc: StateFile): string => JSON.stringify(doc, null, 2) + '\n';

export class ClusterDrState implements DrStateWrites {
  readonly #region: EtcdRegion;
  readonly #state: DrState;
  readonly #nodeId: number;
  readonly #log: Logger | undefined;
  #watch: PrefixWatch<string> | undefined;
  /** Mod revision of the document this broker applied (0: the region has none, or it was deleted). */
  #modRevision = 0n;
  /** The etcd revision whose state of `dr/` this broker has applied. */
  #applied = 0n;
  readonly #waiters = new AppliedWaiters();

  private constructor(region: EtcdRegion, state: DrState, nodeId: number, logger: Logger | undefined) {
    this.#region = region;
    this.#state = state;
    this.#nodeId = nodeId;
    this.#log = logger;
  }

  /** Reads (or seeds) the region's DR document and reports, applies them, follows them, and makes `state.writes` go to etcd. */
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
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const base = this.#modRevision;
      // What this broker applied (or, after a deleted or broken document, what it enforces).
      const doc = this.#state.snapshot();
      const next = change(doc.topics[topic]);
      if (next === KEEP) return;
      const topics = { ...doc.topics };
      if (next === undefined) {
        if (!(topic in topics)) return;
        delete topics[topic];
      } else {
        topics[topic] = next;
      }
      const text = docText({ version: 1, topics });
      const puts = [...(report === undefined ? [] : [client.put(keys.drReport(report.id)).value(JSON.stringify(report, null, 2) + '\n')]), client.put(keys.drState).value(text)];
      const res = await this.#region.run(`write the region's DR roles (topic ${topic})`, () =>
        (base === 0n ? client.if(keys.drState, 'Create', '==', 0) : client.if(keys.drState, 'Mod', '==', base.toString())).then(...puts).else(client.get(keys.drState)).commit(),
      );
      // A retried transaction whose first attempt etcd applied (its answer lost) fails its
      // guard against its own write: the key holding exactly `text` is that success.
      const kv = res.succeeded ? undefined : res.responses[0]?.response_range?.kvs[0];
      if (res.succeeded || (kv !== undefined && kv.value.toString('utf8') === text)) {
        const at = kv === undefined ? rev(res.header.revision) : rev(kv.mod_revision);
        await this.#waiters.until(
          () => this.#applied >= at && (report === undefined || this.#state.reports.has(report.id)),
          `the DR role of ${topic} was written to etcd (revision ${at}) but this broker's watch did not deliver it`,
        );
        return;
      }
      // Another broker changed the document since: take its change, then run this one on top of it.
      await this.#waiters.until(() => this.#modRevision !== base, `the region's DR roles changed in etcd but this broker's watch did not deliver the change`);
    }
    throw new MeridianError(ErrorCode.MetadataUnavailable, `the region's DR roles kept changing under this change of ${topic} (${MAX_ATTEMPTS} attempts); retry`);
  }

  async #load(): Promise<void> {
    const { client, keys } = this.#region;
    let { entries, revision } = await this.#region.getPrefix(keys.drPrefix, parseText);
    const local = this.#state.snapshot();
    const hasLocal = Object.keys(local.topics).length > 0;
    if (!entries.has(keys.drState) && hasLocal) {
      // The region has no roles yet: this broker's become the region's, with its reports,
      // unless another broker seeds first.
      const reports = this.#state.reports.list().filter((r) => !entries.has(keys.drReport(r.id)));
      const res = await this.#region.run("seed the region's DR roles", () =>
        client
          .if(keys.drState, 'Create', '==', 0)
          .then(...reports.map((r) => client.put(keys.drReport(r.id)).value(JSON.stringify(this.#state.reports.get(r.id), null, 2) + '\n')), client.put(keys.drState).value(docText(local)))
          .commit(),
      );
      if (res.succeeded) this.#log?.info({ topics: Object.keys(local.topics).length, reports: reports.length, by: this.#nodeId }, "the region had no DR roles in etcd: seeded from this broker's dr/state.json");
      ({ entries, revision } = await this.#region.getPrefix(keys.drPrefix, parseText));
    }
    const v = entries.get(keys.drState);
    if (v !== undefined) {
      let doc: StateFile;
      try {
        doc = parseState(v.value, `etcd key ${keys.drState}`);
      } catch (err) {
        throw new MeridianError(ErrorCode.BadConfig, `${(err as Error).message}: this broker does not start without the region's DR roles (it would take or refuse writes wrongly); restore the key from a backup or write a valid document (its state.json copies on the other brokers are one)`);
      }
      if (hasLocal && docText(doc) !== docText(local)) {
        const copy = `${this.#state.file}.local-${new Date().toISOString().replace(/[:.]/g, '-')}`;
        try {
          fs.copyFileSync(this.#state.file, copy);
        } catch (err) {
          throw new MeridianError(ErrorCode.StorageIo, `keeping a copy of ${this.#state.file} before the region's DR roles replace it: ${(err as Error).message}`, { cause: err });
        }
        this.#log?.warn({ copy }, "this broker's own DR roles differ from the region's: it follows the region's (etcd) from now on; its own are kept in the copy");
      }
      this.#applyState(v);
    }
    for (const [key, r] of entries) this.#applyReport(key, r);
    this.#applied = revision;
  }

  #start(): void {
    const { keys } = this.#region;
    this.#watch = new PrefixWatch(this.#region, keys.drPrefix, this.#applied + 1n, parseText, {
      put: (key, v) => this.#at(v.modRevision, () => (key === keys.drState ? this.#applyState(v) : this.#applyReport(key, v))),
      delete: (key, at) =>
        this.#at(at, () => {
          if (key !== keys.drState) return;
          // Roles are never "none" once written: a hand-deleted key leaves every broker with
          // what it has, and the next change writes them again (a create, from revision 0).
          this.#modRevision = 0n;
          this.#log?.error({ key }, "the region's DR roles were deleted from etcd: this broker keeps the roles it has; any promote or failback through a running broker writes them again");
        }),
      reset: (all, at) =>
        this.#at(at, () => {
          const v = all.get(keys.drState);
          if (v === undefined) this.#modRevision = 0n;
          else this.#applyState(v);
          for (const [key, r] of all) this.#applyReport(key, r);
        }),
      error: (err) => this.#log?.error({ err }, 'DR roles watch'),
    });
    this.#watch.start();
  }

  #at(revision: bigint, apply: () => void): void {
    apply();
    if (revision > this.#applied) this.#applied = revision;
    this.#waiters.wake();
  }

  #applyState(v: Versioned<string>): void {
    let doc: StateFile;
    try {
      doc = parseState(v.value, `etcd key ${this.#region.keys.drState}`);
    } catch (err) {
      // Kept as applied (its revision), so a change swaps a valid document in over it.
      this.#modRevision = v.modRevision;
      this.#log?.error({ err }, "the region's DR roles in etcd do not parse: this broker keeps the roles it has; any promote or failback through a running broker writes a valid document");
      return;
    }
    this.#modRevision = v.modRevision;
    const copyErr = this.#state.replaceAll(doc);
    if (copyErr !== null) this.#log?.error({ err: copyErr }, "the region's DR roles are in force but this broker could not write its copy (dr/state.json)");
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
