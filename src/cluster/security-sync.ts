/**
 * A region cluster's security is region-wide, as Kafka's is cluster-wide: the ACLs, the
 * SCRAM credentials and the quota overrides live in etcd, one document each
 * (`security/acls`, `security/scram-credentials`, `security/quotas`, each the same JSON as
 * the broker's file of the same name), and every broker enforces what the documents hold. An
 * ACL created through one broker is enforced by all of them; a user created through one logs
 * in at any.
 *
 * Changes (CreateAcls, DeleteAcls, AlterUserScramCredentials, the admin API) go through
 * `BrokerSecurity.writes`, which this module replaces: the change runs on an in-memory copy
 * of the region's document as this broker last applied it, and the document it produces is
 * written with a compare-and-swap on the key's mod revision. A concurrent change from another
 * broker fails the swap; this broker then waits for its watch to deliver that change and runs
 * the change again on the new document (so two brokers creating ACLs at once both count). The
 * asking broker answers once its own stores applied the write (its watch delivered it), so a
 * DescribeAcls on it right after sees the change; the other brokers apply it within their
 * watch's delay (milliseconds).
 *
 * Every broker applies each document to its stores (`replaceFrom`), which also write it to the
 * broker's own file as a copy; a broker that cannot write its copy logs it and still enforces
 * the region's document.
 *
 * Start-up (`open`, before the listener opens): read the documents; a document the region does
 * not have yet is seeded from this broker's file (the first broker of a region that was run as
 * single brokers brings its ACLs, users and quotas; a broker that loses that race takes the
 * winner's and logs what it drops); then the config's bootstrap user is ensured in the
 * region's credentials; then the watch follows the documents.
 *
 * A document the broker cannot parse (written by hand into etcd) is logged and the broker keeps
 * what it had. A deleted document means the region has none (no ACLs, no users, no overrides).
 * Each document is one etcd value: etcd's request limit (1.5 MiB by default) bounds it to
 * several thousand ACLs or users. The credential document holds SCRAM stored and server keys
 * (never passwords): protect etcd as the credential file is protected (TLS and etcd auth, see
 * src/cluster/README.md).
 */
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import type { AclStore } from '../security/acl-store.js';
import type { BrokerSecurity, SecurityWrites } from '../security/broker-security.js';
import type { CredentialStore } from '../security/credential-store.js';
import type { QuotaManager } from '../security/quotas.js';
import { SCRAM_MECHANISMS } from '../security/scram.js';
import { AppliedWaiters } from './applied-waiters.js';
import { rev, type EtcdRegion } from './etcd-region.js';
import { PrefixWatch } from './etcd-watch.js';
import type { Versioned } from './partition-state.js';

/** What a store offers to be kept in a region's document. */
interface SharedStore<S> {
  readonly size: number;
  exportDoc(): string;
  replaceFrom(doc: string, what: string): MeridianError | null;
  inMemoryCopy(doc: string | undefined, what: string): S;
}

/** Compare-and-swap attempts before a change gives up (each lost one means another change won). */
const MAX_ATTEMPTS = 20;

const parseText = (_key: string, raw: Buffer): string => raw.toString('utf8');

/** One document: its key, the store that enforces it, and the revision this broker applied. */
class SharedDocument<S extends SharedStore<S>> {
  readonly key: string;
  readonly label: string;
  readonly store: S;
  /** Mod revision of the document this broker applied (0: the region has none). */
  modRevision = 0n;
  /** The text of that document, or undefined when the region has none. */
  text: string | undefined;
  /**
   * What a change starts from: the document, or, when it does not parse, what this broker
   * enforces (so a change replaces a broken document with a valid one).
   */
  base: string | undefined;

  constructor(key: string, label: string, store: S) {
    this.key = key;
    this.label = label;
    this.store = store;
  }

  /** Applies the region's document (undefined: none) to the store; false when it does not parse (kept what it had). */
  apply(v: Versioned<string> | undefined, log: Logger | undefined): boolean {
    const text = v?.value;
    const what = `etcd key ${this.key}`;
    try {
      const doc = text ?? this.store.inMemoryCopy(undefined, what).exportDoc();
      const err = this.store.replaceFrom(doc, what);
      if (err !== null) log?.error({ err }, `the region's ${this.label} are in force but this broker could not write its local copy`);
    } catch (err) {
      log?.error({ err, key: this.key }, `the region's ${this.label} in etcd do not parse; this broker keeps enforcing the ones it had: fix or delete the key (or make a change, which writes a valid document)`);
      this.#set(v, this.store.exportDoc());
      return false;
    }
    this.#set(v, text);
    return true;
  }

  #set(v: Versioned<string> | undefined, base: string | undefined): void {
    this.modRevision = v?.modRevision ?? 0n;
    this.text = v?.value;
    this.base = base;
  }
}

export class ClusterSecurity implements SecurityWrites {
  readonly #region: EtcdRegion;
  readonly #log: Logger | undefined;
  readonly #acls: SharedDocument<AclStore>;
  readonly #credentials: SharedDocument<CredentialStore>;
  readonly #quotas: SharedDocument<QuotaManager>;
  #watch: PrefixWatch<string> | undefined;
  /** The etcd revision whose state of the documents this broker has applied. */
  #applied = 0n;
  readonly #waiters = new AppliedWaiters();

  private constructor(region: EtcdRegion, security: BrokerSecurity, logger: Logger | undefined) {
    this.#region = region;
    this.#log = logger;
    const k = region.keys;
    this.#acls = new SharedDocument(k.securityAcls, 'ACLs', security.acls);
    this.#credentials = new SharedDocument(k.securityCredentials, 'SCRAM credentials', security.credentials);
    this.#quotas = new SharedDocument(k.securityQuotas, 'quota overrides', security.quotas);
  }

  /**
   * Reads (and, where the region has none yet, seeds) the region's documents, applies them to
   * `security`'s stores, ensures the bootstrap user, follows the documents, and makes
   * `security.writes` go to etcd.
   */
  static async open(region: EtcdRegion, security: BrokerSecurity, logger?: Logger): Promise<ClusterSecurity> {
    const c = new ClusterSecurity(region, security, logger);
    await c.#load();
    c.#start();
    try {
      const { user, password } = security.config.bootstrap;
      if (user !== null && password !== null) {
        const written = await c.credentials((s) => s.ensureBootstrap(user, password, SCRAM_MECHANISMS));
        if (written.length > 0) logger?.info({ user, mechanisms: written }, "bootstrap SCRAM credential written to the region's credentials");
      }
    } catch (err) {
      c.close();
      throw err;
    }
    security.writes = c;
    return c;
  }

  close(): void {
    this.#watch?.close();
    this.#waiters.close();
  }

  acls<R>(change: (store: AclStore) => R): Promise<R> {
    return this.#change(this.#acls, change);
  }

  credentials<R>(change: (store: CredentialStore) => R): Promise<R> {
    return this.#change(this.#credentials, change);
  }

  quotas<R>(change: (quotas: QuotaManager) => R): Promise<R> {
    return this.#change(this.#quotas, change);
  }

  get #docs(): Array<SharedDocument<AclStore> | SharedDocument<CredentialStore> | SharedDocument<QuotaManager>> {
    return [this.#acls, this.#credentials, this.#quotas];
  }

  async #load(): Promise<void> {
    const { client, keys } = this.#region;
    let { entries } = await this.#region.getPrefix(keys.securityPrefix, parseText);
    let seeded = false;
    for (const d of this.#docs) {
      if (entries.has(d.key) || d.store.size === 0) continue;
      // The region has none: this broker's file becomes the region's (only if still none).
      const res = await this.#region.run(`seed the region's ${d.label}`, () => client.if(d.key, 'Create', '==', 0).then(client.put(d.key).value(d.store.exportDoc())).commit());
      if (res.succeeded) this.#log?.info({ key: d.key, entries: d.store.size }, `the region had no ${d.label}: seeded from this broker's file`);
      seeded = true;
    }
    let revision: bigint;
    if (seeded) ({ entries, revision } = await this.#region.getPrefix(keys.securityPrefix, parseText));
    else revision = (await this.#region.getPrefix(keys.securityPrefix, parseText)).revision;
    for (const d of this.#docs) {
      const v = entries.get(d.key);
      const before = d.store.exportDoc();
      const local = d.store.size;
      d.apply(v, this.#log);
      if (local > 0 && v !== undefined && d.store.exportDoc() !== before) {
        this.#log?.warn({ key: d.key, local, region: d.store.size }, `this broker's own ${d.label} differ from the region's: it enforces the region's (etcd) from now on`);
      }
    }
    this.#applied = revision;
  }

  #start(): void {
    const byKey = new Map(this.#docs.map((d) => [d.key, d] as const));
    this.#watch = new PrefixWatch(this.#region, this.#region.keys.securityPrefix, this.#applied + 1n, parseText, {
      put: (key, v) => this.#applyAt(() => byKey.get(key)?.apply(v, this.#log), v.modRevision),
      delete: (key, at) => this.#applyAt(() => byKey.get(key)?.apply(undefined, this.#log), at),
      reset: (all, at) => this.#applyAt(() => {
        for (const d of byKey.values()) d.apply(all.get(d.key), this.#log);
      }, at),
      error: (err) => this.#log?.error({ err }, 'security documents watch'),
    });
    this.#watch.start();
  }

  #applyAt(apply: () => void, revision: bigint): void {
    apply();
    if (revision > this.#applied) this.#applied = revision;
    this.#waiters.wake();
  }

  /** Runs `change` on a copy of the region's document, swaps the result in, and waits until applied here. */
  async #change<S extends SharedStore<S>, R>(d: SharedDocument<S>, change: (store: S) => R): Promise<R> {
    const { client } = this.#region;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const base = d.modRevision;
      const what = `etcd key ${d.key}`;
      const copy = d.store.inMemoryCopy(d.base, what);
      const result = change(copy);
      const next = copy.exportDoc();
      if (next === (d.text ?? d.store.inMemoryCopy(undefined, what).exportDoc())) return result;
      const guard = base === 0n ? client.if(d.key, 'Create', '==', 0) : client.if(d.key, 'Mod', '==', base.toString());
      const res = await this.#region.run(`write the region's ${d.label}`, () => guard.then(client.put(d.key).value(next)).commit());
      if (res.succeeded) {
        const at = rev(res.header.revision);
        await this.#waiters.until(() => this.#applied >= at, `the region's ${d.label} were written to etcd (revision ${at}) but this broker's watch did not deliver them`);
        return result;
      }
      // Another broker changed the document since: take its change, then try again on top of it.
      await this.#waiters.until(() => d.modRevision !== base, `the region's ${d.label} changed in etcd but this broker's watch did not deliver the change`);
    }
    throw new MeridianError(ErrorCode.MetadataUnavailable, `the region's ${d.label} kept changing under this change (${MAX_ATTEMPTS} attempts); retry`);
  }
}
