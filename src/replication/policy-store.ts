/**
 * The replication policies in force in one region, and where they come from: the config
 * file's `replication.policies`, or a set an operator applied at run time (admin API, CLI),
 * persisted in `<dataDir>/replication-policies.json`. The persisted set wins over the YAML
 * at every start until it is reverted (deleted), because a fan-out an operator turned on at
 * run time must not silently stop at the next restart; the broker logs which one it used.
 *
 * Lifecycle: `PolicyStore.open()` at broker start-up (a persisted file that no longer
 * validates against the registry fails the start, naming the file: replicating by a set the
 * operator did not choose is worse than not starting). `replace()` and `revert()` persist
 * first and then apply to the Replicator, so what runs is always what a restart would load.
 * Calls come from the admin API one at a time (Node's single thread; each is synchronous).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import { writeFileAtomicSync } from '../storage/fs-util.js';
import { linksFor, parsePolicies, PolicyError, sameLink, type Link, type Policy } from './policy.js';

export const POLICY_FILE = 'replication-policies.json';

export type PolicySource = 'config' | 'runtime';

export interface PolicySet {
  /** The policies as given (the config file's, or the body of the last PUT). */
  readonly policies: readonly unknown[];
  readonly source: PolicySource;
  /** When the runtime set was applied; null for the config's. */
  readonly updatedAt: string | null;
  /** Hash of the normalised set: regions holding the same policies show the same one. */
  readonly fingerprint: string;
}

/** A (topic, remote) link a policy change would start or stop, with the policy that wants it. */
export interface LinkChange {
  readonly topic: string;
  readonly remote: string;
  readonly policy: string;
}

interface PolicyFile {
  version: 1;
  updatedAt: string;
  policies: unknown[];
}

/** What a replicator must offer to have its policies replaced (replicator.ts). */
export interface PolicyTarget {
  setPolicies(input: unknown): Policy[];
}

export class PolicyStore {
  readonly #file: string;
  readonly #known: readonly string[];
  readonly #configPolicies: readonly unknown[];
  readonly #log: Logger;
  #current: PolicySet;
  #parsed: Policy[];

  private constructor(file: string, known: readonly string[], configPolicies: readonly unknown[], log: Logger, current: PolicySet, parsed: Policy[]) {
    this.#file = file;
    this.#known = known;
    this.#configPolicies = configPolicies;
    this.#log = log;
    this.#current = current;
    this.#parsed = parsed;
  }

  /**
   * Loads the set in force: the persisted one when the data directory has it, else the
   * config's (already validated by the config loader). `known` is this region and the
   * registry.
   */
  static open(opts: { dataDir: string; known: readonly string[]; configPolicies: readonly unknown[]; logger: Logger }): PolicyStore {
    const file = path.join(opts.dataDir, POLICY_FILE);
    const log = opts.logger.child({ component: 'replication-policies' });
    let stored: PolicyFile | undefined;
    try {
      stored = JSON.parse(fs.readFileSync(file, 'utf8')) as PolicyFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new MeridianError(ErrorCode.BadConfig, `${file}: cannot read the runtime replication policies (${(err as Error).message}); fix or delete the file to use replication.policies from the config`, { cause: err });
      }
    }
    if (stored === undefined) {
      const parsed = parsePolicies(opts.configPolicies, opts.known);
      log.info({ source: 'config', policies: parsed.map((p) => p.name) }, 'replication policies from the config file');
      return new PolicyStore(file, opts.known, opts.configPolicies, log, setOf(opts.configPolicies, parsed, 'config', null), parsed);
    }
    let parsed: Policy[];
    try {
      if (stored.version !== 1 || !Array.isArray(stored.policies)) throw new PolicyError('policies', 'expected { version: 1, updatedAt, policies: [...] }');
      parsed = parsePolicies(stored.policies, opts.known, 'policies');
    } catch (err) {
      throw new MeridianError(
        ErrorCode.BadConfig,
        `${file}: the runtime replication policies do not validate against this broker's registry (${(err as Error).message}); apply a valid set, or delete the file to use replication.policies from the config`,
        { cause: err },
      );
    }
    log.info({ source: 'runtime', file, updatedAt: stored.updatedAt, policies: parsed.map((p) => p.name) }, 'replication policies from the runtime set, which wins over the config file until reverted');
    return new PolicyStore(file, opts.known, opts.configPolicies, log, setOf(stored.policies, parsed, 'runtime', stored.updatedAt), parsed);
  }

  get current(): PolicySet {
    return this.#current;
  }

  /** The parsed policies in force. */
  get policies(): readonly Policy[] {
    return this.#parsed;
  }

  /** Validates `input` as the config file's policies are validated; throws a PolicyError naming the field. */
  validate(input: unknown): Policy[] {
    return parsePolicies(input, this.#known, 'policies');
  }

  /** Persists `input` as the runtime set, then applies it. Nothing changes when it does not validate. */
  replace(input: unknown, target: PolicyTarget): PolicySet {
    const parsed = this.validate(input);
    const updatedAt = new Date().toISOString();
    const policies = input as unknown[];
    const file: PolicyFile = { version: 1, updatedAt, policies };
    writeFileAtomicSync(this.#file, JSON.stringify(file, null, 2) + '\n');
    target.setPolicies(policies);
    this.#parsed = parsed;
    this.#current = setOf(policies, parsed, 'runtime', updatedAt);
    this.#log.info({ source: 'runtime', file: this.#file, fingerprint: this.#current.fingerprint, policies: parsed.map((p) => `${p.name}:${p.topology}`) }, 'runtime replication policies applied and persisted');
    return this.#current;
  }

  /** Deletes the runtime set and goes back to the config file's policies. */
  revert(target: PolicyTarget): PolicySet {
    fs.rmSync(this.#file, { force: true });
    const parsed = parsePolicies(this.#configPolicies, this.#known);
    target.setPolicies(this.#configPolicies);
    this.#parsed = parsed;
    this.#current = setOf(this.#configPolicies, parsed, 'config', null);
    this.#log.info({ source: 'config', fingerprint: this.#current.fingerprint }, 'runtime replication policies removed; the config file\'s are in force again');
    return this.#current;
  }
}

function setOf(policies: readonly unknown[], parsed: readonly Policy[], source: PolicySource, updatedAt: string | null): PolicySet {
  return { policies, source, updatedAt, fingerprint: policyFingerprint(parsed) };
}

/**
 * A short hash of what the policies mean, not how they were spelt: the parsed form (names,
 * topic patterns in order, topology, the directed edges, quotas in bytes), so "10GiB" and
 * 10737418240 agree, and every region parsing the same set gets the same value.
 */
export function policyFingerprint(policies: readonly Policy[]): string {
  const normal = policies.map((p) => ({
    name: p.name,
    topics: p.topics,
    topology: p.topology,
    edges: p.edges.map((e) => `${e.from}>${e.to}${e.relay ? '+relay' : ''}`).sort(),
    backlogQuota: p.backlogQuota,
    rateLimit: p.rateLimit,
  }));
  return crypto.createHash('sha256').update(JSON.stringify(normal)).digest('hex').slice(0, 16);
}

/**
 * What replacing `before` with `after` would do in `region`: the (topic, remote) links that
 * would start and stop, over the topics that exist now, by the same rule the Replicator
 * follows (`linksFor`: first matching policy, internal topics never, only remotes in the
 * registry). A link whose policy changes in any way (or its relay mode) restarts its workers:
 * it is in both lists.
 */
export function planPolicyChange(
  before: readonly Policy[],
  after: readonly Policy[],
  region: string,
  topics: readonly string[],
  remotes: ReadonlySet<string>,
): { start: LinkChange[]; stop: LinkChange[] } {
  const linksOf = (policies: readonly Policy[]) => {
    const out = new Map<string, { topic: string; link: Link }>();
    for (const topic of topics) {
      if (topic.startsWith('__')) continue;
      for (const link of linksFor(policies, region, topic)) if (remotes.has(link.remote)) out.set(`${topic}\0${link.remote}`, { topic, link });
    }
    return out;
  };
  const was = linksOf(before);
  const will = linksOf(after);
  const changed = (from: Map<string, { topic: string; link: Link }>, to: Map<string, { topic: string; link: Link }>): LinkChange[] =>
    [...from.entries()]
      .filter(([key, { link }]) => {
        const other = to.get(key)?.link;
        return other === undefined || !sameLink(link, other);
      })
      .map(([, { topic, link }]) => ({ topic, remote: link.remote, policy: link.policy.name }));
  return { start: changed(will, was), stop: changed(was, will) };
}
