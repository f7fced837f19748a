import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ErrorCode, MeridianError } from '../../src/errors.js';
import { aclBinding, AclOperation, AclPermissionType, ANY_ACL_FILTER, PatternType, ResourceType, type AclBindingFilter } from '../../src/security/acl.js';
import { AclStore, type AclChange } from '../../src/security/acl-store.js';
import { PartitionFiles } from '../../src/storage/partition-files.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const { Topic, Group } = ResourceType;
const { Literal, Prefixed, Match } = PatternType;
const { Read, Write, Describe } = AclOperation;
const { Allow, Deny } = AclPermissionType;

const aliceWritesTeamA = aclBinding({ resourceType: Topic, name: 'teamA.', patternType: Prefixed, principal: 'User:alice', operation: Write, permissionType: Allow });
const bobReadsOrders = aclBinding({ resourceType: Topic, name: 'teamA.orders', principal: 'User:bob', operation: Read, permissionType: Allow });
const everyoneReadsAll = aclBinding({ resourceType: Topic, name: '*', principal: 'User:*', operation: Read, permissionType: Allow });
const bobGroup = aclBinding({ resourceType: Group, name: 'bob-app', principal: 'User:bob', operation: Read, permissionType: Allow });

function filter(pattern: Partial<AclBindingFilter['pattern']>, entry: Partial<AclBindingFilter['entry']> = {}): AclBindingFilter {
  return { pattern: { ...ANY_ACL_FILTER.pattern, ...pattern }, entry: { ...ANY_ACL_FILTER.entry, ...entry } };
}

describe('AclStore', () => {
  let dir: string;
  let cleanup: () => void;
  beforeEach(() => ({ dir, cleanup } = tmpDir('meridian-acl-')));
  afterEach(() => cleanup());

  it('starts empty, without a file, and denies by default', () => {
    const store = AclStore.open(dir);
    assert.equal(store.size, 0);
    assert.equal(fs.existsSync(store.file), false);
    assert.equal(store.file, path.join(dir, 'security', 'acls.json'));
    assert.equal(store.authorizer().authorize('User:u', 'h', Read, { type: Topic, name: 't' }).allowed, false);
    assert.equal(store.authorizer({ allowEveryoneIfNoAclFound: true }).authorize('User:u', 'h', Read, { type: Topic, name: 't' }).allowed, true);
  });

  it('creates with one result per binding: invalid ones refused, duplicates succeed once', () => {
    const store = AclStore.open(dir);
    const results = store.create([
      aliceWritesTeamA,
      aclBinding({ ...flat(aliceWritesTeamA), resourceType: ResourceType.Any }),
      aclBinding({ ...flat(aliceWritesTeamA), name: '', patternType: Prefixed }),
      aclBinding({ ...flat(aliceWritesTeamA), patternType: Match }),
      aclBinding({ ...flat(aliceWritesTeamA), operation: AclOperation.Unknown }),
      aclBinding({ ...flat(aliceWritesTeamA), permissionType: AclPermissionType.Any }),
      { ...aliceWritesTeamA },
      bobReadsOrders,
    ]);
    assert.deepEqual(
      results.map((r) => r.error?.code ?? null),
      [null, ErrorCode.InvalidAcl, ErrorCode.InvalidAcl, ErrorCode.InvalidAcl, ErrorCode.InvalidAcl, ErrorCode.InvalidAcl, null, null],
    );
    assert.equal(results[1]!.error!.retriable, false);
    assert.match(results[2]!.error!.message, /empty/);
    assert.equal(store.size, 2);
    assert.deepEqual(store.create([bobReadsOrders]), [{ error: null }]);
    assert.equal(store.size, 2);
  });

  it('authorizes against the current ACLs: PREFIXED write, and a deletion applies to the next call', () => {
    const store = AclStore.open(dir);
    const authz = store.authorizer({ superUsers: ['User:admin'] });
    const canWrite = (topic: string) => authz.authorize('User:alice', '10.1.1.1', Write, { type: Topic, name: topic }).allowed;
    assert.equal(canWrite('teamA.orders'), false);
    store.create([aliceWritesTeamA]);
    assert.equal(canWrite('teamA.orders'), true);
    assert.equal(canWrite('teamB.orders'), false);
    assert.equal(authz.authorize('User:alice', 'h', Describe, { type: Topic, name: 'teamA.x' }).allowed, true, 'WRITE implies DESCRIBE');
    store.create([aclBinding({ resourceType: Topic, name: 'teamA.orders', principal: 'User:alice', operation: Write, permissionType: Deny })]);
    assert.equal(canWrite('teamA.orders'), false, 'DENY overrides');
    assert.equal(canWrite('teamA.payments'), true);
    const [res] = store.delete([filter({ resourceType: Topic, name: 'teamA.', patternType: Prefixed })]);
    assert.equal(res!.error, null);
    assert.deepEqual(res!.deleted, [aliceWritesTeamA]);
    assert.equal(canWrite('teamA.payments'), false);
    assert.equal(authz.authorize('User:admin', 'h', Write, { type: Topic, name: 'teamA.payments' }).allowed, true);
  });

  it('describes with Kafka filter semantics, MATCH included', () => {
    const store = AclStore.open(dir);
    store.create([aliceWritesTeamA, bobReadsOrders, everyoneReadsAll, bobGroup]);
    const names = (f: AclBindingFilter) => {
      const r = store.describe(f);
      assert.equal(r.error, null);
      return r.bindings.map((b) => `${b.pattern.resourceType}:${b.pattern.name}:${b.entry.principal}`);
    };
    assert.deepEqual(names(ANY_ACL_FILTER), ['2:teamA.:User:alice', '2:teamA.orders:User:bob', '2:*:User:*', '3:bob-app:User:bob']);
    assert.deepEqual(names(filter({ resourceType: Topic, name: 'teamA.orders', patternType: Match })), ['2:teamA.:User:alice', '2:teamA.orders:User:bob', '2:*:User:*']);
    assert.deepEqual(names(filter({ resourceType: Topic, name: 'teamA.orders', patternType: Literal })), ['2:teamA.orders:User:bob']);
    assert.deepEqual(names(filter({ name: 'teamA.orders' })), ['2:teamA.orders:User:bob']);
    assert.deepEqual(names(filter({ resourceType: Topic, patternType: Prefixed })), ['2:teamA.:User:alice']);
    assert.deepEqual(names(filter({}, { principal: 'User:bob' })), ['2:teamA.orders:User:bob', '3:bob-app:User:bob']);
    assert.deepEqual(names(filter({}, { principal: 'User:bob', operation: Write })), []);
    const bad = store.describe(filter({ patternType: PatternType.Unknown }));
    assert.equal(bad.error?.code, ErrorCode.InvalidAcl);
    assert.deepEqual(bad.bindings, []);
  });

  it('deletes per filter: each filter lists what it matched, a binding two filters match is deleted once', () => {
    const store = AclStore.open(dir);
    store.create([aliceWritesTeamA, bobReadsOrders, everyoneReadsAll, bobGroup]);
    const changes: AclChange[] = [];
    store.onChange((c) => changes.push(c));
    const results = store.delete([
      filter({ resourceType: Topic, name: 'teamA.orders', patternType: Match }, { principal: 'User:bob' }),
      filter({}, { principal: 'User:bob' }),
      filter({ resourceType: ResourceType.Unknown }),
      filter({ resourceType: Topic, name: 'nothing', patternType: Literal }),
    ]);
    assert.deepEqual(results[0]!.deleted, [bobReadsOrders]);
    assert.deepEqual(results[1]!.deleted, [bobReadsOrders, bobGroup]);
    assert.equal(results[2]!.error?.code, ErrorCode.InvalidAcl);
    assert.deepEqual(results[3], { error: null, deleted: [] });
    assert.deepEqual(store.bindings(), [aliceWritesTeamA, everyoneReadsAll]);
    assert.deepEqual(changes, [{ type: 'deleted', bindings: [bobReadsOrders, bobGroup] }]);
  });

  it('tells listeners of each change that applied, and only those', () => {
    const store = AclStore.open(dir);
    const changes: AclChange[] = [];
    const errors: unknown[] = [];
    const store2 = AclStore.open(dir, { onListenerError: (e) => errors.push(e) });
    const off = store.onChange((c) => changes.push(c));
    store.create([aliceWritesTeamA]);
    store.create([aliceWritesTeamA]); // nothing new
    store.delete([filter({ name: 'nothing' })]); // nothing matched
    store.delete([ANY_ACL_FILTER]);
    off();
    store.create([bobGroup]);
    assert.deepEqual(changes, [
      { type: 'created', bindings: [aliceWritesTeamA] },
      { type: 'deleted', bindings: [aliceWritesTeamA] },
    ]);
    store2.onChange(() => {
      throw new Error('listener bug');
    });
    assert.deepEqual(store2.create([bobReadsOrders]), [{ error: null }], 'a throwing listener does not undo the change');
    assert.equal(errors.length, 1);
  });

  it('persists across reopen, atomically, in a readable file', () => {
    const store = AclStore.open(dir);
    store.create([aliceWritesTeamA, bobReadsOrders, everyoneReadsAll, bobGroup]);
    store.delete([filter({ resourceType: Group })]);
    const reopened = AclStore.open(dir);
    assert.deepEqual(reopened.bindings(), [aliceWritesTeamA, bobReadsOrders, everyoneReadsAll]);
    assert.equal(reopened.authorizer().authorize('User:alice', 'h', Write, { type: Topic, name: 'teamA.x' }).allowed, true);
    const file = JSON.parse(fs.readFileSync(reopened.file, 'utf8'));
    assert.equal(file.version, 1);
    assert.deepEqual(file.acls[0], { resourceType: 'TOPIC', patternType: 'PREFIXED', name: 'teamA.', principal: 'User:alice', host: '*', operation: 'WRITE', permissionType: 'ALLOW' });
    assert.deepEqual(fs.readdirSync(path.dirname(reopened.file)), ['acls.json'], 'no temp file left');
  });

  it('refuses to open a corrupt or invalid file (BAD_CONFIG) rather than start with fewer ACLs', () => {
    fs.mkdirSync(path.join(dir, 'security'));
    const file = path.join(dir, 'security', 'acls.json');
    for (const text of [
      '{ not json',
      '{"version":2,"acls":[]}',
      '{"version":1,"acls":[{"resourceType":"TOPIC"}]}',
      '{"version":1,"acls":[{"resourceType":"TOPIC","patternType":"MATCH","name":"t","principal":"User:a","host":"*","operation":"READ","permissionType":"ALLOW"}]}',
      '{"version":1,"acls":[{"resourceType":"TOPIC","patternType":"LITERAL","name":"t","principal":"User:a","host":"*","operation":"FLY","permissionType":"ALLOW"}]}',
    ]) {
      fs.writeFileSync(file, text);
      assert.throws(() => AclStore.open(dir), (err: unknown) => err instanceof MeridianError && err.code === ErrorCode.BadConfig, text);
    }
  });

  it('a failed write changes nothing and reports STORAGE_IO for each binding or filter', () => {
    const store = AclStore.open(dir);
    store.create([aliceWritesTeamA]);
    const changes: AclChange[] = [];
    store.onChange((c) => changes.push(c));
    // A directory where the temp file goes: the write fails (EISDIR), root or not.
    const tmp = PartitionFiles.temp(store.file);
    fs.mkdirSync(tmp);
    try {
      const created = store.create([bobReadsOrders, aclBinding({ ...flat(bobReadsOrders), name: '' })]);
      assert.equal(created[0]!.error?.code, ErrorCode.StorageIo);
      assert.equal(created[1]!.error?.code, ErrorCode.InvalidAcl);
      const deleted = store.delete([ANY_ACL_FILTER]);
      assert.equal(deleted[0]!.error?.code, ErrorCode.StorageIo);
      assert.deepEqual(deleted[0]!.deleted, []);
    } finally {
      fs.rmdirSync(tmp);
    }
    assert.deepEqual(store.bindings(), [aliceWritesTeamA]);
    assert.deepEqual(changes, []);
    assert.deepEqual(AclStore.open(dir).bindings(), [aliceWritesTeamA]);
  });
});

function flat(b: ReturnType<typeof aclBinding>) {
  return { ...b.pattern, ...b.entry };
}
