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
 * Start-up (`open`, before the listener opens): read the documents. A region that has none
 * yet (no `security/initialized` marker) is seeded from this broker's three files in one
 * transaction with the marker (the first broker of a region that ran as single brokers brings
 * its ACLs, users and quotas, all three from the same broker); a broker whose own non-empty
 * files differ from the region's keeps a copy of each (`<file>.local-<time>`), logs where, and
 * enforces the region's. Then the config's bootstrap user is created in the region's
 * credentials if it has none (never replaced: a password rotated through
 * AlterUserScramCredentials stays rotated); then the watch follows the documents.
 *
 * Once the region is initialized, a document is never "none": one that is missing (deleted by
 * hand) or does not parse is logged, running brokers keep enforcing what they had, and a
 * broker that starts refuses to (it would enforce its own files, or nothing, instead of the
 * region's). Either is repaired by any change through a running broker (it starts from what
 * that broker enforces and writes a valid document) or by restoring the key.
 * Each document is one etcd value: etcd's request limit (1.5 MiB by default) bounds it to
 * several thousand ACLs or users. The credential document holds SCRAM stored and server keys
 * (never passwords): protect etcd as the credential file is protected (TLS and etcd auth, see
 * src/cluster/README.md).
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import type { AclStore } from '../security/acl-store.js';
import type { BrokerSecurity, SecurityWrites } from '../security/broker-security.js';
import type { CredentialStore } from '../security/credential-store.js';
import type { QuotaManager } from '../security/quotas.js';
import { SCRAM_MECHANISMS } from '../security/scram.js';
import { storageError } from '../storage/fs-util.js';
import { AppliedWaiters } from './applied-waiters.js';
import { rev, type EtcdRegion } from './etcd-region.js';
import { PrefixWatch } from './etcd-watch.js';
import type { Versioned } from './partition-state.js';

/** What a store offers to be kept in a region's document. */
interface SharedStore<S> {
  /** The broker's own file of this document. */
  readonly file: string;
  readonly size: number;
  exportDoc(): string;
  replaceFrom(doc: string, what: string): MeridianError | null;
  inMemoryCopy(doc: string | undefined, what: string): S;
}

/** Compare-and-swap attempts before a change gives up (each lost one means another change won). */
const MAX_ATTEMPTS = 20;

const parseText = (_key: string, raw: Buffer): string => raw.toString('utf8');

/** Copies a broker's own file aside before the region's document replaces it; returns the copy's path. */
function keepLocalCopy(file: string): string {
  const copy = `${file}.local-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  try {
    fs.copyFileSync(file, copy);
    fs.chmodSync(copy, 0o600);
  } catch (err) {
    throw storageError(`keeping a copy of ${file} before the region's document replaces it`, err);
  }
  return copy;
}

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

  /**
   * Applies the region's document to the store. A missing one (deleted by hand) or one that
   * does not parse is logged and the store keeps what it enforces; returns why, or null.
   */
  apply(v: Versioned<string> | undefined, log: Logger | undefined): string | null {
    const what = `etcd key ${this.key}`;
    if (v === undefined) {
      const why = `the region's ${this.label} (${what}) are missing (deleted by hand?)`;
      log?.error({ key: this.key }, `${why}; this broker keeps enforcing the ones it had: make any change through a running broker to write them again, or restore the key`);
      this.#set(undefined, this.store.exportDoc());
      return why;
    }
    try {
      const err = this.store.replaceFrom(v.value, what);
      if (err !== null) log?.error({ err }, `the region's ${this.label} are in force but this broker could not write its local copy`);
    } catch (err) {
      const why = `the region's ${this.label} (${what}) do not parse: ${(err as Error).message}`;
      log?.error({ key: this.key, why }, `the region's ${this.label} in etcd do not parse; this broker keeps enforcing the ones it had: fix the key, or make any change through a running broker, which writes a valid document`);
      this.#set(v, this.store.exportDoc());
      return why;
    }
    this.#set(v, v.value);
    return null;
  }

  #set(v: Versioned<string> | undefined, base: string | undefined): void {
    this.modRevision = v?.modRevision ?? 0n;
    this.text = v?.value;
    this.base = base;
  }
}

export class ClusterSecurity implements SecurityWrites {
  readonly #region: EtcdRegion;
  readonly #nodeId: number;
  readonly #log: Logger | undefined;
  readonly #acls: SharedDocument<AclStore>;
  readonly #credentials: SharedDocument<CredentialStore>;
  readonly #quotas: SharedDocument<QuotaManager>;
  #watch: PrefixWatch<string> | undefined;
  /** The etcd revision whose state of the documents this broker has applied. */
  #applied = 0n;
  readonly #waiters = new AppliedWaiters();

  private constructor(region: EtcdRegion, security: BrokerSecurity, nodeId: number, logger: Logger | undefined) {
    this.#region = region;
    this.#nodeId = nodeId;
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
  static async open(region: EtcdRegion, security: BrokerSecurity, nodeId: number, logger?: Logger): Promise<ClusterSecurity> {
    const c = new ClusterSecurity(region, security, nodeId, logger);
    await c.#load();
    c.#start();
    try {
      const { user, password } = security.config.bootstrap;
      if (user !== null && password !== null) {
        const written = await c.credentials((s) => s.ensureBootstrap(user, password, SCRAM_MECHANISMS, { onlyMissing: true }));
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
    let { entries, revision } = await this.#region.getPrefix(keys.securityPrefix, parseText);
    if (!entries.has(keys.securityInitialized)) {
      // A region without security documents yet: this broker's three files become the
      // region's, all in one transaction, and only if no other broker did it first.
      const marker = JSON.stringify({ at: new Date().toISOString(), by: this.#nodeId });
      const res = await this.#region.run("seed the region's security documents", () =>
        client
          .if(keys.securityInitialized, 'Create', '==', 0)
          .then(client.put(keys.securityInitialized).value(marker), ...this.#docs.map((d) => client.put(d.key).value(d.store.exportDoc())))
          .commit(),
      );
      if (res.succeeded) this.#log?.info({ acls: this.#acls.store.size, users: this.#credentials.store.size, quotaOverrides: this.#quotas.store.size }, "the region had no security documents: seeded from this broker's files");
      ({ entries, revision } = await this.#region.getPrefix(keys.securityPrefix, parseText));
    }
    for (const d of this.#docs) {
      const v = entries.get(d.key);
      const local = d.store.size;
      if (v !== undefined && local > 0 && v.value !== d.store.exportDoc()) {
        const copy = keepLocalCopy(d.store.file);
        this.#log?.warn({ key: d.key, local, copy }, `this broker's own ${d.label} differ from the region's: it enforces the region's (etcd) from now on; its own are kept in ${copy}`);
      }
      const why = d.apply(v, this.#log);
      if (why !== null) {
        throw new MeridianError(
          ErrorCode.BadConfig,
          `${why}: this broker does not start without them (it would enforce the wrong ${d.label}); make any change to them through a running broker of the region, which writes them again, or restore the key from a backup`,
        );
      }
    }
    this.#applied = revision;
  }

  #start(): void {
    const byKey = new Map(this.#docs.map((d) => [d.key, d] as const));
    this.#watch = new PrefixWatch(this.#region, this.#region.keys.securityPrefix, this.#applied + 1n, parseText, {
      put: (key, v) => this.#applyAt(() => void byKey.get(key)?.apply(v, this.#log), v.modRevision),
      delete: (key, at) => this.#applyAt(() => void byKey.get(key)?.apply(undefined, this.#log), at),
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
      const res = await this.#region.run(`write the region's ${d.label}`, () =>
        (base === 0n ? client.if(d.key, 'Create', '==', 0) : client.if(d.key, 'Mod', '==', base.toString())).then(client.put(d.key).value(next)).else(client.get(d.key)).commit(),
      );
      // A retried transaction whose first attempt etcd applied (its answer lost) fails its
      // guard against its own write: the key holding exactly `next` is that success.
      const kv = res.succeeded ? undefined : res.responses[0]?.response_range?.kvs[0];
      if (res.succeeded || (kv !== undefined && kv.value.toString('utf8') === next)) {
        const at = kv === undefined ? rev(res.header.revision) : rev(kv.mod_revision);
        await this.#waiters.until(() => this.#applied >= at, `the region's ${d.label} were written to etcd (revision ${at}) but this broker's watch did not deliver them`);
        return result;
      }
      // Another broker changed the document since: take its change, then try again on top of it.
      await this.#waiters.until(() => d.modRevision !== base, `the region's ${d.label} changed in etcd but this broker's watch did not deliver the change`);
    }
    throw new MeridianError(ErrorCode.MetadataUnavailable, `the region's ${d.label} kept changing under this change (${MAX_ATTEMPTS} attempts); retry`);
  }
}
