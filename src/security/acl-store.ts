/**
 * One region's ACLs, persisted in `<dataDir>/security/acls.json`: CreateAcls, DescribeAcls
 * and DeleteAcls with Kafka's results, and the `AclSource` the authorizer asks per request.
 *
 * ACLs are per region: nothing here is replicated to other regions (an operator creates the
 * ACLs each region needs; see ACL.md). Within a region cluster the region's ACLs are one
 * document in etcd that every broker applies here (`replaceFrom`; cluster/security-sync.ts),
 * and changes go through BrokerSecurity.writes rather than straight to this store.
 *
 * Every change is written (whole file, atomically and fsynced: writeFileAtomicSync) before
 * it reaches the index, so what an authorize() call sees is always on disk; a write that
 * fails leaves the store as it was and every creation or deletion of the call reports the
 * STORAGE_IO error. Calls are synchronous and come one at a time (Node's single thread), so
 * a change and the requests that follow it are ordered: the request after a deletion is
 * decided without the deleted ACL. Listeners (`onChange`) hear each change after it applied,
 * e.g. to close the connections it concerns or to audit it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, MeridianError } from '../errors.js';
import { jsonErrorWhere } from './json-error.js';
import { fsyncDirSync, storageError, writeFileAtomicSync } from '../storage/fs-util.js';
import {
  AclAuthorizer,
  AclIndex,
  describeBinding,
  invalidBindingReason,
  invalidFilterReason,
  OPERATION_NAMES,
  operationFromName,
  PATTERN_TYPE_NAMES,
  patternTypeFromName,
  PERMISSION_TYPE_NAMES,
  permissionTypeFromName,
  RESOURCE_TYPE_NAMES,
  resourceTypeFromName,
  type AclBinding,
  type AclBindingFilter,
  type AclSource,
  type AuthorizerOptions,
  type ResourceType,
} from './acl.js';

export const SECURITY_DIR = 'security';
export const ACLS_FILE = 'acls.json';

/** The result of one binding of a create: null error when it exists now (created, or already there). */
export interface AclCreateResult {
  error: MeridianError | null;
}

/** The result of a describe: the bindings the filter selects, or the error of the filter. */
export interface AclDescribeResult {
  error: MeridianError | null;
  bindings: AclBinding[];
}

/** The result of one filter of a delete: the bindings it selected and that are now gone. */
export interface AclDeleteResult {
  error: MeridianError | null;
  deleted: AclBinding[];
}

export type AclChange = { type: 'created'; bindings: AclBinding[] } | { type: 'deleted'; bindings: AclBinding[] };
export type AclChangeListener = (change: AclChange) => void;

/** One binding as acls.json holds it: Kafka's names, readable and stable across code changes. */
interface StoredAcl {
  resourceType: string;
  patternType: string;
  name: string;
  principal: string;
  host: string;
  operation: string;
  permissionType: string;
}

interface AclsFile {
  version: 1;
  acls: StoredAcl[];
}

function invalid(message: string): MeridianError {
  return new MeridianError(ErrorCode.InvalidAcl, message, { retriable: false });
}

export interface AclStoreOptions {
  /** Called with an error a change listener threw (the change itself stands). Default: ignored. */
  onListenerError?: (err: unknown) => void;
}

export class AclStore implements AclSource {
  readonly file: string;
  readonly #dir: string;
  readonly #dataDir: string;
  #index: AclIndex;
  /** In memory only (a scratch copy that computes a region-wide change): nothing is written. */
  readonly #memory: boolean;
  readonly #listeners = new Set<AclChangeListener>();
  readonly #onListenerError: (err: unknown) => void;

  private constructor(dataDir: string, index: AclIndex, options: AclStoreOptions, memory = false) {
    this.#memory = memory;
    this.#dataDir = dataDir;
    this.#dir = path.join(dataDir, SECURITY_DIR);
    this.file = path.join(this.#dir, ACLS_FILE);
    this.#index = index;
    this.#onListenerError = options.onListenerError ?? (() => {});
  }

  /**
   * Loads `<dataDir>/security/acls.json` (none: no ACLs). A file that does not parse, or
   * holds an ACL that is not valid, fails with BAD_CONFIG: starting with fewer ACLs than the
   * operator created could deny or, with allowEveryoneIfNoAclFound, allow the wrong requests.
   */
  static open(dataDir: string, options: AclStoreOptions = {}): AclStore {
    const file = path.join(dataDir, SECURITY_DIR, ACLS_FILE);
    let text: string | undefined;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw storageError(`reading ${file}`, err);
    }
    return new AclStore(dataDir, text === undefined ? new AclIndex() : parseAclsFile(file, text), options);
  }

  /**
   * A store in memory only, holding the ACLs of `doc` (an acls.json text; `what` names where
   * it comes from in a parse error; none: no ACLs): a region cluster runs a change on such a copy of the
   * region's ACLs to learn its results and the document to write (cluster/security-sync.ts).
   */
  inMemoryCopy(doc: string | undefined, what: string): AclStore {
    return new AclStore('', doc === undefined ? new AclIndex() : parseAclsFile(what, doc), {}, true);
  }

  get size(): number {
    return this.#index.size;
  }

  /** The ACLs as acls.json holds them: the document a region cluster keeps in etcd. */
  exportDoc(): string {
    return serialize(this.#index.bindings());
  }

  /**
   * Makes `doc` (an acls.json text, e.g. the region's from etcd) this store's ACLs: parsed
   * first (BAD_CONFIG naming `what` if it is not valid, and nothing changes), then in force at
   * once, then written to acls.json as this broker's copy. Listeners hear what was created
   * and deleted. Returns the error of the local write, or null: the ACLs are in force either
   * way, since the region's copy is the durable one.
   */
  replaceFrom(doc: string, what: string): MeridianError | null {
    const next = parseAclsFile(what, doc);
    const created = next.bindings().filter((b) => !this.#index.has(b));
    const deleted = this.#index.bindings().filter((b) => !next.has(b));
    if (created.length === 0 && deleted.length === 0) return null;
    this.#index = next;
    const err = this.#persist(next.bindings());
    if (created.length > 0) this.#emit({ type: 'created', bindings: created });
    if (deleted.length > 0) this.#emit({ type: 'deleted', bindings: deleted });
    return err;
  }

  /** Every binding, in creation order. */
  bindings(): AclBinding[] {
    return this.#index.bindings();
  }

  matchingAcls(resourceType: ResourceType, name: string): AclBinding[] {
    return this.#index.matchingAcls(resourceType, name);
  }

  /** An authorizer over this store's current ACLs. */
  authorizer(options: AuthorizerOptions = {}): AclAuthorizer {
    return new AclAuthorizer(this, options);
  }

  /**
   * CreateAcls: one result per binding, in order. An invalid binding gets INVALID_ACL (Kafka:
   * INVALID_REQUEST) and the others are still created; a binding that exists already
   * succeeds without a duplicate. Throws nothing: a failed write is every valid binding's
   * STORAGE_IO error, and none is created.
   */
  create(bindings: readonly AclBinding[]): AclCreateResult[] {
    const results: AclCreateResult[] = [];
    const added = new AclIndex();
    for (const b of bindings) {
      const reason = invalidBindingReason(b);
      if (reason !== null) {
        results.push({ error: invalid(reason) });
        continue;
      }
      if (!this.#index.has(b)) added.add(b);
      results.push({ error: null });
    }
    if (added.size === 0) return results;
    const err = this.#persist([...this.#index.bindings(), ...added.bindings()]);
    if (err !== null) return results.map((r) => (r.error === null ? { error: err } : r));
    for (const b of added.bindings()) this.#index.add(b);
    this.#emit({ type: 'created', bindings: added.bindings() });
    return results;
  }

  /** DescribeAcls: the bindings `filter` selects, or INVALID_ACL for a filter with an UNKNOWN component. */
  describe(filter: AclBindingFilter): AclDescribeResult {
    const reason = invalidFilterReason(filter);
    if (reason !== null) return { error: invalid(reason), bindings: [] };
    return { error: null, bindings: this.#index.find(filter) };
  }

  /**
   * DeleteAcls: one result per filter, in order, each listing every binding it selected (a
   * binding two filters select is listed by both and deleted once, as Kafka's controller
   * does). A filter with an UNKNOWN component gets INVALID_ACL; the others still apply. A
   * failed write is every valid filter's STORAGE_IO error, and nothing is deleted.
   */
  delete(filters: readonly AclBindingFilter[]): AclDeleteResult[] {
    const results: AclDeleteResult[] = [];
    const gone = new Map<AclBinding, true>();
    for (const f of filters) {
      const reason = invalidFilterReason(f);
      if (reason !== null) {
        results.push({ error: invalid(reason), deleted: [] });
        continue;
      }
      const matched = this.#index.find(f);
      for (const b of matched) gone.set(b, true);
      results.push({ error: null, deleted: matched });
    }
    if (gone.size === 0) return results;
    const err = this.#persist(this.#index.bindings().filter((b) => !gone.has(b)));
    if (err !== null) return results.map((r) => (r.error === null ? { error: err, deleted: [] } : r));
    for (const b of gone.keys()) this.#index.remove(b);
    this.#emit({ type: 'deleted', bindings: [...gone.keys()] });
    return results;
  }

  /** Calls `listener` after each change that applied; returns the function that unsubscribes it. */
  onChange(listener: AclChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Writes `bindings` as the whole file; the error, or null once it is durable. */
  #persist(bindings: AclBinding[]): MeridianError | null {
    if (this.#memory) return null;
    try {
      if (!fs.existsSync(this.#dir)) {
        fs.mkdirSync(this.#dir, { recursive: true });
        fsyncDirSync(this.#dataDir);
      }
      writeFileAtomicSync(this.file, serialize(bindings));
      return null;
    } catch (err) {
      return storageError(`writing ${this.file}`, err);
    }
  }

  #emit(change: AclChange): void {
    for (const l of [...this.#listeners]) {
      try {
        l(change);
      } catch (err) {
        this.#onListenerError(err);
      }
    }
  }
}

function serialize(bindings: readonly AclBinding[]): string {
  const file: AclsFile = { version: 1, acls: bindings.map(toStored) };
  return JSON.stringify(file, null, 2) + '\n';
}

function toStored(b: AclBinding): StoredAcl {
  return {
    resourceType: RESOURCE_TYPE_NAMES[b.pattern.resourceType],
    patternType: PATTERN_TYPE_NAMES[b.pattern.patternType],
    name: b.pattern.name,
    principal: b.entry.principal,
    host: b.entry.host,
    operation: OPERATION_NAMES[b.entry.operation],
    permissionType: PERMISSION_TYPE_NAMES[b.entry.permissionType],
  };
}

function parseAclsFile(file: string, text: string): AclIndex {
  const fail = (what: string): MeridianError =>
    new MeridianError(ErrorCode.BadConfig, `${file}: ${what}; restore it from a backup, or remove it to start with no ACLs (every request denied but superusers')`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw fail(`not valid JSON (${jsonErrorWhere(err)})`);
  }
  const f = parsed as Partial<AclsFile> | null;
  if (f === null || typeof f !== 'object' || f.version !== 1 || !Array.isArray(f.acls)) throw fail('not a Meridian ACL file (expected { version: 1, acls: [...] })');
  const index = new AclIndex();
  f.acls.forEach((s: Partial<StoredAcl> | null, i) => {
    if (s === null || typeof s !== 'object') throw fail(`ACL #${i} is not an object`);
    const strings = ['resourceType', 'patternType', 'name', 'principal', 'host', 'operation', 'permissionType'] as const;
    for (const k of strings) if (typeof s[k] !== 'string') throw fail(`ACL #${i} has no ${k}`);
    const resourceType = resourceTypeFromName(s.resourceType!);
    const patternType = patternTypeFromName(s.patternType!);
    const operation = operationFromName(s.operation!);
    const permissionType = permissionTypeFromName(s.permissionType!);
    if (resourceType === undefined || patternType === undefined || operation === undefined || permissionType === undefined) {
      throw fail(`ACL #${i} has an unknown resourceType, patternType, operation or permissionType`);
    }
    const b: AclBinding = {
      pattern: { resourceType, name: s.name!, patternType },
      entry: { principal: s.principal!, host: s.host!, operation, permissionType },
    };
    const reason = invalidBindingReason(b);
    if (reason !== null) throw fail(`ACL #${i} ${describeBinding(b)} is not valid: ${reason}`);
    index.add(b);
  });
  return index;
}
