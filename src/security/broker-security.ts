/**
 * A region's security, as the Kafka handlers see it: the SCRAM credentials, the ACLs and the
 * authorizer over them, the SASL settings, and the record of failed logins per address.
 * Built once by the broker (broker.ts) from `config.security`; handed to every handler in
 * `KafkaApiDeps.security`.
 *
 * `authorize()` is the one check a handler makes: with authorization off it allows
 * everything; on, it asks the AclAuthorizer and logs each denial (rate-limited per
 * principal, operation and resource, so a client retrying a denied request does not flood
 * the log). Nothing here logs a password, a salted password or a SASL message.
 */
import type { Logger } from 'pino';
import type { SecurityConfig, SaslMechanismName } from '../config/schema.js';
import { ThrottledLog } from '../throttled-log.js';
import { AclOperation, OPERATION_NAMES, RESOURCE_TYPE_NAMES, ResourceType, CLUSTER_RESOURCE_NAME, type AclAuthorizer } from './acl.js';
import { AclStore } from './acl-store.js';
import { CredentialStore } from './credential-store.js';
import { QuotaManager } from './quotas.js';
import { SCRAM_MECHANISMS } from './scram.js';

/** Who asks: a request's principal and the address it came from. */
export interface Requester {
  readonly principal: string;
  readonly clientHost: string;
}

/** How long a failed login from an address is remembered when none follows. */
const FAILURE_MEMORY_MS = 60_000;
/** Addresses remembered at most (oldest forgotten first). */
const FAILURE_ADDRESSES = 10_000;

/**
 * Failed logins per client address, for slowing down guessing: each failure within
 * FAILURE_MEMORY_MS of the previous one doubles the delay before the next failure is answered.
 */
export class FailureDelays {
  readonly #base: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #seen = new Map<string, { count: number; at: number }>();

  constructor(baseMs: number, maxMs: number, now: () => number = Date.now) {
    this.#base = baseMs;
    this.#max = maxMs;
    this.#now = now;
  }

  /** Records a failure from `address`; returns how long to wait before answering it. */
  fail(address: string): number {
    const now = this.#now();
    const prev = this.#seen.get(address);
    const count = prev !== undefined && now - prev.at < FAILURE_MEMORY_MS ? prev.count + 1 : 1;
    this.#seen.delete(address);
    if (this.#seen.size >= FAILURE_ADDRESSES) this.#seen.delete(this.#seen.keys().next().value!);
    this.#seen.set(address, { count, at: now });
    if (this.#base === 0) return 0;
    return Math.min(this.#max, this.#base * 2 ** Math.min(count - 1, 30));
  }

  /** A success from `address` forgets its failures. */
  succeed(address: string): void {
    this.#seen.delete(address);
  }

  /** Recent failures from `address` (0 when forgotten). */
  failures(address: string): number {
    const s = this.#seen.get(address);
    return s === undefined || this.#now() - s.at >= FAILURE_MEMORY_MS ? 0 : s.count;
  }
}

/**
 * How a change to the ACLs, SCRAM credentials or quota overrides is made: `change` runs on
 * the store and its result is returned once the change is durable and in force on this
 * broker. On a single broker that is the store itself (its file). In a region cluster
 * (cluster/security-sync.ts) `change` runs on an in-memory copy of the region's document,
 * which is then written to etcd and applied by every broker; `change` may run more than once
 * (after a concurrent change), so it must only act on the store it is given. A change that
 * throws changes nothing.
 */
export interface SecurityWrites {
  acls<R>(change: (store: AclStore) => R): Promise<R>;
  credentials<R>(change: (store: CredentialStore) => R): Promise<R>;
  quotas<R>(change: (quotas: QuotaManager) => R): Promise<R>;
}

export interface SecurityStats {
  authentications: { succeeded: number; failed: number };
  denials: number;
}

export class BrokerSecurity {
  readonly config: SecurityConfig;
  readonly credentials: CredentialStore;
  readonly acls: AclStore;
  /** null: authorization is off, every request is allowed. */
  readonly authorizer: AclAuthorizer | null;
  readonly failures: FailureDelays;
  /** Client quotas per principal (quotas.ts), enforced by the dispatcher. */
  readonly quotas: QuotaManager;
  readonly stats: SecurityStats = { authentications: { succeeded: 0, failed: 0 }, denials: 0 };
  /** Where changes go: this broker's files, until a region cluster replaces it with its etcd documents. */
  writes: SecurityWrites = {
    acls: async (change) => change(this.acls),
    credentials: async (change) => change(this.credentials),
    quotas: async (change) => change(this.quotas),
  };
  readonly #denials: ThrottledLog;
  readonly #log: Logger;

  private constructor(config: SecurityConfig, credentials: CredentialStore, acls: AclStore, quotas: QuotaManager, log: Logger) {
    this.config = config;
    this.credentials = credentials;
    this.acls = acls;
    this.quotas = quotas;
    const a = config.authorization;
    this.authorizer = a.enabled ? acls.authorizer({ superUsers: a.superUsers, allowEveryoneIfNoAclFound: a.allowEveryoneIfNoAclFound }) : null;
    this.failures = new FailureDelays(config.sasl.failureDelayMs, config.sasl.maxFailureDelayMs);
    this.#denials = new ThrottledLog(log, 10_000);
    this.#log = log;
  }

  /**
   * Opens the credential, ACL and quota files of `dataDir` and creates the bootstrap credential
   * when its user has none. Throws (CORRUPT_CREDENTIAL_FILE, BAD_CONFIG, STORAGE_IO) when a
   * file cannot be used: a broker never starts with fewer users or ACLs than it was given.
   */
  static open(dataDir: string, config: SecurityConfig, log: Logger): BrokerSecurity {
    const credentials = CredentialStore.open(dataDir);
    const acls = AclStore.open(dataDir, { onListenerError: (err) => log.error({ err }, 'ACL change listener failed') });
    const { user, password } = config.bootstrap;
    if (user !== null && password !== null) {
      const written = credentials.ensureBootstrap(user, password, SCRAM_MECHANISMS);
      if (written.length > 0) log.info({ user, mechanisms: written }, 'bootstrap SCRAM credential written');
    } else if (user !== null) {
      log.warn({ user }, 'security.bootstrap.user is set without a password (MERIDIAN_SECURITY__BOOTSTRAP__PASSWORD): no credential written');
    }
    const s = new BrokerSecurity(config, credentials, acls, QuotaManager.open(dataDir, config.quotas), log);
    if (config.authorization.enabled) {
      log.info({ superUsers: config.authorization.superUsers, acls: acls.size, allowEveryoneIfNoAclFound: config.authorization.allowEveryoneIfNoAclFound }, 'authorization enabled');
    }
    return s;
  }

  /** The mechanisms SASL listeners offer. */
  get mechanisms(): readonly SaslMechanismName[] {
    return this.config.sasl.mechanisms;
  }

  /** Whether `who` may do `operation` on the resource; a denial is logged (rate-limited). */
  authorize(who: Requester, operation: AclOperation, resourceType: ResourceType, name: string): boolean {
    if (this.authorizer === null) return true;
    const result = this.authorizer.authorize(who.principal, who.clientHost, operation, { type: resourceType, name });
    if (result.allowed) return true;
    this.stats.denials++;
    const op = OPERATION_NAMES[operation] ?? String(operation);
    const type = RESOURCE_TYPE_NAMES[resourceType] ?? String(resourceType);
    this.#denials.warn(`${who.principal}\u0000${op}\u0000${type}\u0000${name}`, { principal: who.principal, host: who.clientHost, operation: op, resourceType: type, resource: name, reason: result.reason }, 'authorization denied');
    return false;
  }

  /** Whether `who` may do `operation` on the cluster. */
  authorizeCluster(who: Requester, operation: AclOperation): boolean {
    return this.authorize(who, operation, ResourceType.Cluster, CLUSTER_RESOURCE_NAME);
  }

  /** Whether `who` may do `operation` on the resource, without logging a denial (Metadata filtering, implied checks). */
  allows(who: Requester, operation: AclOperation, resourceType: ResourceType, name: string): boolean {
    if (this.authorizer === null) return true;
    return this.authorizer.authorize(who.principal, who.clientHost, operation, { type: resourceType, name }).allowed;
  }

  /** Logs one authentication outcome: principal (or the user name given) and address, never the secret. */
  audit(outcome: 'succeeded' | 'failed', fields: { user?: string; principal?: string; mechanism: string; listener: string; remote: string; reauthentication?: boolean; reason?: string; delayMs?: number }): void {
    this.stats.authentications[outcome]++;
    if (outcome === 'succeeded') this.#log.info(fields, 'SASL authentication succeeded');
    else this.#log.warn(fields, 'SASL authentication failed');
  }

  /** Flushes the counts of suppressed denial lines. */
  tick(): void {
    this.#denials.tick();
  }
}
