/**
 * Who writes a DR topic: the roles of one region's topics under one-way and fan-out
 * policies, and what promote and failback changed, persisted in `<dataDir>/dr/state.json`.
 *
 * A topic under a one-way or fan-out policy has one *primary*: the region producers write to.
 * Every other region of the policy holds a read-only copy. The policy names the first
 * primary (its source, epoch 0); `promote` in a copy makes that region the primary at the
 * next epoch; `failback` in the old primary adopts the new primary and epoch. The epoch
 * orders promotions: a region holding an older epoch than its peer may hold records the
 * peer never received, so the peer refuses its data until it fails back (the replication
 * target asks `admits`).
 *
 * Mesh, aggregation and relay topics are writable everywhere and have no primary: none of
 * this applies to them.
 *
 * Each entry also carries the phase of an operation under way (`promoting`, `failing-back`),
 * written before the operation's first effect, so a crash leaves a state that the same
 * command completes on retry.
 *
 * Changes go through `update(topic, change, report)`: `change` gets the topic's entry as it
 * stands and answers the next one (or KEEP). On a single broker the change is applied to the
 * file at once: atomic and fsynced (writeFileAtomicSync), the report saved first, so a phase
 * that names a report always finds it. On a region cluster `writes` (cluster/dr-sync.ts)
 * sends the change to the topic's key in etcd (compare-and-swap on that key, the change re-run
 * on a newer entry when another broker won), and every broker applies each topic's key through
 * `applyEntry` (and the whole set through `replaceAll` at start and after a watch reload):
 * state.json is then this broker's copy of the region's roles, and the listeners hear each
 * topic whose entry changed.
 *
 * Listeners run synchronously where the change is applied (on a cluster, inside the etcd
 * watch); one that throws is logged with its topic and the others still run, so a faulty
 * listener can neither leave the state half-announced nor hold up the write that waits for it.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import { writeFileAtomicSync } from '../storage/fs-util.js';
import { policyFor, type Policy } from '../replication/policy.js';
import { ReportStore, type DrReport } from './recovery-report.js';

export const DR_DIR = 'dr';
const STATE_FILE = 'state.json';

export type DrPhase = 'promoting' | 'promoted' | 'failing-back' | 'following';

/** What this region recorded about one topic's primary (absent: the policy's source, epoch 0). */
export interface TopicDrEntry {
  primary: string;
  epoch: number;
  phase: DrPhase;
  /** When the phase began (ms since the epoch). */
  at: number;
  /** The id of the recovery report (promote) or failback report written for this phase. */
  reportId?: string;
  /** Failback in progress: the plan being carried out (failback.ts); on `following` after one on a region cluster, what it cut (failback-clamp.ts). */
  failback?: unknown;
  /**
   * A peer said it is the primary at a newer epoch (its handshake): this region stops taking
   * writes at once, as a stale leader does, and fails back to follow it.
   */
  supersededBy?: { primary: string; epoch: number; at: number };
}

/** The JSON of state.json (and of a region's legacy single document, cluster/dr-sync.ts). */
export interface StateFile {
  version: 1;
  topics: Record<string, TopicDrEntry>;
}

/** What a change answers to leave the entry as it is (nothing written). */
export const KEEP = Symbol('keep');

/** A change to one topic's entry: the next entry, undefined to forget the topic, or KEEP. */
export type EntryChange = (entry: TopicDrEntry | undefined) => TopicDrEntry | undefined | typeof KEEP;

/**
 * Where changes go instead of the local file: a region cluster's per-topic keys (cluster/dr-sync.ts).
 * Resolves once this broker applied the change (`applyEntry`), so a read right after sees it.
 */
export interface DrStateWrites {
  change(topic: string, change: EntryChange, report?: DrReport): Promise<void>;
}

/** A topic's role in this region. */
export interface TopicRole {
  topic: string;
  policy: Policy;
  primary: string;
  epoch: number;
  /** This region holds a copy producers may not write to. */
  readOnly: boolean;
  entry: TopicDrEntry | undefined;
}

/**
 * Whether two entries name the same primary, epoch and phase (a `supersededBy` noted in
 * between does not count: promote and failback both act past it).
 */
export function sameRole(a: TopicDrEntry | undefined, b: TopicDrEntry | undefined): boolean {
  return a?.primary === b?.primary && a?.epoch === b?.epoch && a?.phase === b?.phase;
}

/** Policies with one writer: the ones promote and failback act on. */
export function isDrPolicy(policy: Policy): boolean {
  return policy.topology === 'one-way' || policy.topology === 'fan-out';
}

/** The region a one-way or fan-out policy names as its source. */
export function policySource(policy: Policy): string {
  return policy.edges[0].from;
}

export class DrState {
  readonly region: string;
  readonly dir: string;
  readonly file: string;
  /** Saved promote and failback reports (on a cluster: this broker's copies of the region's). */
  readonly reports: ReportStore;
  /** Set on a region cluster (cluster/dr-sync.ts): changes go to etcd. */
  writes: DrStateWrites | undefined;
  /** Region cluster: where a state.json that did not parse was moved (the caller logs it). */
  readonly brokenCopy: string | undefined;
  #topics: Map<string, TopicDrEntry>;
  #listeners = new Set<(topic: string) => void>();
  readonly #log: Logger | undefined;

  /**
   * `localCopy`: this broker is part of a region cluster, where state.json is only a copy of
   * the region's roles: one that does not parse is moved aside (`state.json.broken-<time>`)
   * instead of stopping the start, and the region's roles replace it. `logger`: where a
   * listener that throws is reported.
   */
  constructor(dataDir: string, region: string, opts: { localCopy?: boolean; logger?: Logger } = {}) {
    this.region = region;
    this.#log = opts.logger;
    this.dir = path.join(dataDir, DR_DIR);
    this.file = path.join(this.dir, STATE_FILE);
    fs.mkdirSync(this.dir, { recursive: true });
    let state: StateFile;
    try {
      state = readState(this.file);
    } catch (err) {
      if (opts.localCopy !== true || !(err instanceof MeridianError)) throw err;
      this.brokenCopy = `${this.file}.broken-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      fs.renameSync(this.file, this.brokenCopy);
      state = { version: 1, topics: {} };
    }
    this.#topics = new Map(Object.entries(state.topics));
    this.reports = new ReportStore(this.dir);
  }

  /** Whether the roles are the region's (a cluster's document in etcd) rather than this broker's file. */
  get regionWide(): boolean {
    return this.writes !== undefined;
  }

  entry(topic: string): TopicDrEntry | undefined {
    return this.#topics.get(topic);
  }

  entries(): Array<[string, TopicDrEntry]> {
    return [...this.#topics];
  }

  /** The whole state as state.json holds it. */
  snapshot(): StateFile {
    return { version: 1, topics: Object.fromEntries(this.#topics) };
  }

  /**
   * Changes `topic`'s entry (see the header): durable (and, on a cluster, applied here) before
   * it resolves; `report` is saved with it, before it on a single broker, in the same etcd
   * transaction on a cluster. A `change` may throw to refuse (nothing is written).
   */
  async update(topic: string, change: EntryChange, report?: DrReport): Promise<void> {
    if (this.writes !== undefined) return this.writes.change(topic, change, report);
    const next = change(this.#topics.get(topic));
    if (next === KEEP) return;
    if (report !== undefined) this.reports.save(report);
    const topics = new Map(this.#topics);
    if (next === undefined) {
      if (!topics.delete(topic)) return;
    } else {
      topics.set(topic, next);
    }
    this.#write(topics);
    this.#topics = topics;
    this.#notify(topic);
  }

  /**
   * One topic's entry of a region cluster, applied (cluster/dr-sync.ts): `undefined` forgets
   * the topic (its policy's default). The local copy (state.json) is written first; a copy that
   * cannot be written is reported to the caller, and the entry is in force all the same (etcd
   * is the truth; the copy only serves a restart as a seed). The listeners hear the topic when
   * its entry changed.
   */
  applyEntry(topic: string, entry: TopicDrEntry | undefined): Error | null {
    const before = this.#topics.get(topic);
    if (JSON.stringify(before) === JSON.stringify(entry)) return null;
    const topics = new Map(this.#topics);
    if (entry === undefined) topics.delete(topic);
    else topics.set(topic, entry);
    const copyError = this.#tryWrite(topics);
    this.#topics = topics;
    this.#notify(topic);
    return copyError;
  }

  /**
   * A region cluster's whole set of roles, applied (cluster/dr-sync.ts: at start, and after a
   * watch reload): it replaces every entry (a topic not in `doc` is forgotten), and the
   * listeners hear each topic whose entry changed. The copy is written as in `applyEntry`.
   */
  replaceAll(doc: StateFile): Error | null {
    const topics = new Map(Object.entries(doc.topics));
    const copyError = this.#tryWrite(topics);
    const changed = new Set<string>();
    for (const [topic, e] of topics) if (JSON.stringify(e) !== JSON.stringify(this.#topics.get(topic))) changed.add(topic);
    for (const topic of this.#topics.keys()) if (!topics.has(topic)) changed.add(topic);
    this.#topics = topics;
    for (const topic of changed) this.#notify(topic);
    return copyError;
  }

  onChange(listener: (topic: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The topic's role under `policies`; undefined when no one-way or fan-out policy governs it here. */
  roleOf(policies: readonly Policy[], topic: string): TopicRole | undefined {
    const policy = policyFor(policies, topic);
    if (policy === undefined || !isDrPolicy(policy) || !policy.regions.includes(this.region)) return undefined;
    const entry = this.#topics.get(topic);
    const primary = entry?.primary ?? policySource(policy);
    const epoch = entry?.epoch ?? 0;
    // A promotion under way already refuses inbound data, and already takes writes: the
    // operator asked for this region to be the primary.
    const superseded = entry?.supersededBy !== undefined && entry.supersededBy.epoch > epoch;
    return { topic, policy, primary, epoch, readOnly: primary !== this.region || superseded, entry };
  }

  /** Every listener hears `topic`; one that throws is logged and the rest still run. */
  #notify(topic: string): void {
    for (const l of [...this.#listeners]) {
      try {
        l(topic);
      } catch (err) {
        this.#log?.error({ err, topic }, 'a listener of the DR roles failed on this topic\'s change (the role is in force; what the listener drives, e.g. the replicator\'s reconcile, may lag until the next change)');
      }
    }
  }

  #tryWrite(topics: Map<string, TopicDrEntry>): Error | null {
    try {
      this.#write(topics);
      return null;
    } catch (err) {
      return err as Error;
    }
  }

  #write(topics: Map<string, TopicDrEntry>): void {
    const file: StateFile = { version: 1, topics: Object.fromEntries(topics) };
    writeFileAtomicSync(this.file, JSON.stringify(file, null, 2) + '\n');
  }
}

/** Parses and checks a state document; `what` names where it came from in errors. */
export function parseState(text: string, what: string): StateFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    // The message only: a parse error never quotes the text.
    throw new MeridianError(ErrorCode.BadConfig, `${what} is not valid JSON (${(err as Error).name}); restore it from a backup or remove it to return every DR topic to its policy's source`);
  }
  const s = parsed as StateFile;
  if (typeof s !== 'object' || s === null || s.version !== 1 || typeof s.topics !== 'object' || s.topics === null) {
    throw new MeridianError(ErrorCode.BadConfig, `${what} is not a Meridian DR state document (expected { version: 1, topics })`);
  }
  for (const [topic, e] of Object.entries(s.topics)) checkEntry(e, `${what}: the entry for topic ${topic}`);
  return s;
}

/** Parses and checks one topic's entry (a region cluster's `dr/topics/<topic>` key); `what` names where it came from. */
export function parseEntry(text: string, what: string): TopicDrEntry {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new MeridianError(ErrorCode.BadConfig, `${what} is not valid JSON (${(err as Error).name})`);
  }
  return checkEntry(parsed, what);
}

function checkEntry(e: unknown, what: string): TopicDrEntry {
  const x = e as TopicDrEntry;
  if (typeof x !== 'object' || x === null || typeof x.primary !== 'string' || !Number.isInteger(x.epoch) || typeof x.phase !== 'string') throw new MeridianError(ErrorCode.BadConfig, `${what} is malformed (expected { primary, epoch, phase, at })`);
  return x;
}

function readState(file: string): StateFile {
  if (!fs.existsSync(file)) return { version: 1, topics: {} };
  return parseState(fs.readFileSync(file, 'utf8'), file);
}
