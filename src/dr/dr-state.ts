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
 * Writes are atomic and fsynced (writeFileAtomicSync); calls come one at a time from the
 * admin API (Node's single thread, each write synchronous).
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, MeridianError } from '../errors.js';
import { writeFileAtomicSync } from '../storage/fs-util.js';
import { policyFor, type Policy } from '../replication/policy.js';

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
  /** Failback in progress: the plan being carried out (failback.ts). */
  failback?: unknown;
  /**
   * A peer said it is the primary at a newer epoch (its handshake): this region stops taking
   * writes at once, as a stale leader does, and fails back to follow it.
   */
  supersededBy?: { primary: string; epoch: number; at: number };
}

interface StateFile {
  version: 1;
  topics: Record<string, TopicDrEntry>;
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
  #file: string;
  #topics: Map<string, TopicDrEntry>;
  #listeners = new Set<(topic: string) => void>();

  constructor(dataDir: string, region: string) {
    this.region = region;
    this.dir = path.join(dataDir, DR_DIR);
    this.#file = path.join(this.dir, STATE_FILE);
    fs.mkdirSync(this.dir, { recursive: true });
    this.#topics = new Map(Object.entries(readState(this.#file).topics));
  }

  entry(topic: string): TopicDrEntry | undefined {
    return this.#topics.get(topic);
  }

  entries(): Array<[string, TopicDrEntry]> {
    return [...this.#topics];
  }

  /** Persists `entry` for `topic` (durable before it returns), then tells the listeners. */
  set(topic: string, entry: TopicDrEntry): void {
    const next = new Map(this.#topics);
    next.set(topic, entry);
    this.#write(next);
    this.#topics = next;
    for (const l of this.#listeners) l(topic);
  }

  /** Forgets a topic (deleted). */
  delete(topic: string): void {
    if (!this.#topics.has(topic)) return;
    const next = new Map(this.#topics);
    next.delete(topic);
    this.#write(next);
    this.#topics = next;
    for (const l of this.#listeners) l(topic);
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

  #write(topics: Map<string, TopicDrEntry>): void {
    const file: StateFile = { version: 1, topics: Object.fromEntries(topics) };
    writeFileAtomicSync(this.#file, JSON.stringify(file, null, 2) + '\n');
  }
}

function readState(file: string): StateFile {
  if (!fs.existsSync(file)) return { version: 1, topics: {} };
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new MeridianError(ErrorCode.BadConfig, `${file} is not valid JSON (${(err as Error).message}); restore it from a backup or remove it to return every DR topic to its policy's source`);
  }
  const s = parsed as StateFile;
  if (typeof s !== 'object' || s === null || s.version !== 1 || typeof s.topics !== 'object' || s.topics === null) {
    throw new MeridianError(ErrorCode.BadConfig, `${file} is not a Meridian DR state file (expected { version: 1, topics })`);
  }
  for (const [topic, e] of Object.entries(s.topics)) {
    if (typeof e.primary !== 'string' || !Number.isInteger(e.epoch) || typeof e.phase !== 'string') throw new MeridianError(ErrorCode.BadConfig, `${file}: the entry for topic ${topic} is malformed`);
  }
  return s;
}
