/**
 * The region's security documents in etcd (src/cluster/security-sync.ts), on a real etcd with
 * two brokers' security stores (no broker processes): the first broker of a region that ran as
 * single brokers seeds its ACLs, users and quota overrides; a second broker's own differing
 * files give way to the region's (and are rewritten as its copy, with a warning); changes made
 * at the same time through both brokers all count; a document written by hand that does not
 * parse leaves the brokers enforcing what they had; a deleted document means none.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { defaultConfig } from '../../src/config/load-config.js';
import { EtcdRegion } from '../../src/cluster/etcd-region.js';
import { ClusterSecurity } from '../../src/cluster/security-sync.js';
import { aclBinding, AclOperation, AclPermissionType, ResourceType, type AclBinding } from '../../src/security/acl.js';
import { BrokerSecurity } from '../../src/security/broker-security.js';
import { captureLog, type LogCapture } from '../helpers/broker.js';
import { TestEtcd } from '../helpers/etcd.js';
import { SECRETS } from '../helpers/secrets.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

let etcd: TestEtcd;
let nodeIds = 1;
const cleanups: Array<() => void> = [];

before(async () => {
  etcd = await TestEtcd.start();
});

after(async () => {
  for (const c of cleanups.reverse()) c();
  await etcd?.close();
});

interface Node {
  readonly security: BrokerSecurity;
  readonly sync: ClusterSecurity;
  readonly region: EtcdRegion;
  readonly log: LogCapture;
  readonly dataDir: string;
}

function localSecurity(dataDir: string, log: LogCapture): BrokerSecurity {
  return BrokerSecurity.open(dataDir, defaultConfig().security, pino({ level: 'info' }, log.destination));
}

async function join(prefix: string, dataDir: string, log = captureLog(), bootstrap?: { user: string; password: string }): Promise<Node> {
  const logger = pino({ level: 'info' }, log.destination);
  const region = new EtcdRegion({ region: 'us-east', etcd: { endpoints: [etcd.endpoint], prefix } });
  const config = defaultConfig().security;
  const security = BrokerSecurity.open(dataDir, bootstrap === undefined ? config : { ...config, bootstrap }, logger);
  const sync = await ClusterSecurity.open(region, security, nodeIds++, logger);
  cleanups.push(() => {
    sync.close();
    region.close();
  });
  return { security, sync, region, log, dataDir };
}

function newDataDir(): string {
  const d = tmpDir('meridian-secsync-');
  cleanups.push(d.cleanup);
  return d.dir;
}

const topicAcl = (principal: string, name: string, operation = AclOperation.Read): AclBinding =>
  aclBinding({ resourceType: ResourceType.Topic, name, principal, operation, permissionType: AclPermissionType.Allow });

const describeAll = (n: Node) =>
  n.security.acls
    .bindings()
    .map((b) => `${b.entry.principal}:${b.pattern.name}:${b.entry.operation}`)
    .sort();

test('the first broker seeds the region from its files; a second broker\'s own files give way to the region\'s, with a warning, and are rewritten', async () => {
  const dirA = newDataDir();
  const dirB = newDataDir();
  {
    // Each ran as a single broker before: its own ACLs, users and quota overrides on disk.
    const a = localSecurity(dirA, captureLog());
    a.acls.create([topicAcl('User:alice', 'orders')]);
    a.credentials.upsert('alice', 'SCRAM-SHA-256', SECRETS.saslAlice);
    a.quotas.set('User:alice', { producerByteRate: 1000 });
    const b = localSecurity(dirB, captureLog());
    b.acls.create([topicAcl('User:bob', 'payments')]);
    b.credentials.upsert('bob', 'SCRAM-SHA-256', SECRETS.saslBob);
  }
  const a = await join('/secsync-seed', dirA);
  const b = await join('/secsync-seed', dirB);
  for (const n of [a, b]) {
    assert.deepEqual(describeAll(n), [`User:alice:orders:${AclOperation.Read}`]);
    assert.deepEqual(n.security.credentials.describe().map((u) => u.user), ['alice']);
    assert.ok(n.security.credentials.verifyPassword('alice', SECRETS.saslAlice));
    assert.equal(n.security.quotas.effective('User:alice').producerByteRate, 1000);
  }
  assert.ok(a.log.lines.some((l) => /seeded from this broker's file/.test(l.msg)), 'broker A says it seeded the region');
  const warnings = b.log.lines.filter((l) => l.level === 40 && /differ from the region's/.test(l.msg));
  assert.equal(warnings.length, 2, "broker B warns that its own ACLs and users give way (its quotas were empty)");
  // B's files now hold the region's copy: a restart without etcd would not resurrect bob.
  const file = JSON.parse(fs.readFileSync(path.join(dirB, 'security', 'acls.json'), 'utf8')) as { acls: Array<{ principal: string }> };
  assert.deepEqual(file.acls.map((x) => x.principal), ['User:alice']);
  assert.ok(!fs.readFileSync(path.join(dirB, 'security', 'scram-credentials.json'), 'utf8').includes('"bob"'));
  // ...and its own are kept aside, where the warning says, private like the original.
  for (const w of warnings) {
    assert.ok(fs.existsSync(w.copy), `the copy ${w.copy} exists`);
    assert.equal(fs.statSync(w.copy).mode & 0o777, 0o600);
  }
  const keptAcls = warnings.find((w) => /acls\.json/.test(w.copy))!;
  assert.match(fs.readFileSync(keptAcls.copy, 'utf8'), /User:bob/);
});

test('changes through two brokers at once all count; each answers once its own store applied them, the other follows', async () => {
  const a = await join('/secsync-concurrent', newDataDir());
  const b = await join('/secsync-concurrent', newDataDir());
  const names = Array.from({ length: 10 }, (_, i) => `t${i}`);
  const results = await Promise.all(names.map((name, i) => (i % 2 === 0 ? a : b).security.writes.acls((s) => s.create([topicAcl('User:carol', name)]))));
  for (const r of results) assert.deepEqual(r.map((x) => x.error), [null]);
  const expected = names.map((n) => `User:carol:${n}:${AclOperation.Read}`).sort();
  for (const n of [a, b]) await waitFor('both brokers to hold all ten ACLs', () => assert.deepEqual(describeAll(n), expected) ?? true, 10_000);

  // A delete through B answers with what it deleted; A enforces without them right after its watch.
  const deleted = await b.security.writes.acls((s) => s.delete([{ pattern: { resourceType: ResourceType.Topic, name: 't3', patternType: 3 }, entry: { principal: null, host: null, operation: AclOperation.Any, permissionType: AclPermissionType.Any } }]));
  assert.equal(deleted[0]!.deleted.length, 1);
  assert.ok(!describeAll(b).includes(`User:carol:t3:${AclOperation.Read}`), 'the asking broker applied the delete before answering');
  await waitFor('broker A to drop t3', () => !describeAll(a).includes(`User:carol:t3:${AclOperation.Read}`), 10_000);

  // A change that throws changes nothing anywhere.
  await assert.rejects(a.security.writes.credentials((s) => s.delete('nobody', 'SCRAM-SHA-256')), /no SCRAM-SHA-256 credential/);
});

test('a document that does not parse or is deleted leaves running brokers enforcing what they had, a starting broker refuses; a change through a running broker writes it again', async () => {
  const a = await join('/secsync-bad', newDataDir());
  await a.security.writes.acls((s) => s.create([topicAcl('User:dan', 'keep')]));
  const key = a.region.keys.securityAcls;
  await a.region.client.put(key).value('{ not json');
  await waitFor('the parse error to be logged', () => a.log.lines.some((l) => l.level === 50 && /do not parse/.test(l.msg)), 10_000);
  assert.deepEqual(describeAll(a), [`User:dan:keep:${AclOperation.Read}`], 'still enforcing the ACLs it had');
  // A broker starting now would enforce the wrong ACLs: it refuses, naming the key.
  await assert.rejects(join('/secsync-bad', newDataDir()), (err: Error) => /do not parse/.test(err.message) && err.message.includes(key));
  // A change on top of a broken document starts from what the broker enforces and replaces the
  // document with a valid one.
  await a.security.writes.acls((s) => s.create([topicAcl('User:dan', 'fixed')]));
  assert.deepEqual(describeAll(a), [`User:dan:fixed:${AclOperation.Read}`, `User:dan:keep:${AclOperation.Read}`]);
  const stored = JSON.parse((await a.region.client.get(key).string())!) as { acls: Array<{ name: string }> };
  assert.deepEqual(stored.acls.map((x) => x.name).sort(), ['fixed', 'keep']);

  // Deleted by hand: never "no ACLs" (with allowEveryoneIfNoAclFound that would open everything).
  await a.region.client.delete().key(key);
  await waitFor('the missing document to be logged', () => a.log.lines.some((l) => l.level === 50 && /missing/.test(l.msg)), 10_000);
  assert.equal(a.security.acls.size, 2, 'still enforcing both ACLs');
  await assert.rejects(join('/secsync-bad', newDataDir()), (err: Error) => /missing/.test(err.message) && err.message.includes(key));
  // Any change through a running broker writes the document again; then a broker starts.
  await a.security.writes.acls((s) => s.delete([{ pattern: { resourceType: ResourceType.Topic, name: 'fixed', patternType: 3 }, entry: { principal: null, host: null, operation: AclOperation.Any, permissionType: AclPermissionType.Any } }]));
  const c = await join('/secsync-bad', newDataDir());
  assert.deepEqual(describeAll(c), [`User:dan:keep:${AclOperation.Read}`]);
});

test('the bootstrap user is created once for the region, never replaced: a password rotated through one broker stays rotated when a broker restarts with the old one in its config', async () => {
  const bootstrap = { user: 'admin', password: SECRETS.saslAdmin };
  const a = await join('/secsync-bootstrap', newDataDir(), captureLog(), bootstrap);
  assert.ok(a.security.credentials.verifyPassword('admin', SECRETS.saslAdmin));
  await a.security.writes.credentials((s) => {
    s.upsert('admin', 'SCRAM-SHA-256', SECRETS.saslBob);
    s.upsert('admin', 'SCRAM-SHA-512', SECRETS.saslBob);
  });
  const b = await join('/secsync-bootstrap', newDataDir(), captureLog(), bootstrap);
  for (const n of [a, b]) {
    assert.ok(n.security.credentials.verifyPassword('admin', SECRETS.saslBob), 'the rotated password logs in');
    assert.ok(!n.security.credentials.verifyPassword('admin', SECRETS.saslAdmin), 'the old one does not come back');
  }
});

test('a parse error of a credential file never quotes the file (it holds SCRAM keys)', () => {
  const dir = newDataDir();
  const s = localSecurity(dir, captureLog());
  s.credentials.upsert('alice', 'SCRAM-SHA-256', SECRETS.saslAlice);
  const file = path.join(dir, 'security', 'scram-credentials.json');
  const text = fs.readFileSync(file, 'utf8');
  const key = (JSON.parse(text) as { users: { alice: Record<string, { serverKey: string }> } }).users.alice['SCRAM-SHA-256']!.serverKey;
  // The key's opening quote gone: V8's message quotes the text there (..."rverKey": Z7338KKcV"...).
  fs.writeFileSync(file, text.replace(`"${key}"`, `Z${key}"`));
  assert.throws(() => localSecurity(dir, captureLog()), (err: Error) => /not valid JSON/.test(err.message) && !err.message.includes(key.slice(0, 6)));
});
