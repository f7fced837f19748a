/**
 * Issue 14, ACLs end to end: one broker with a SASL_PLAINTEXT listener and authorization on,
 * the bootstrap user `admin` its superuser, and two tenants' users, alice (teamA) and bob.
 *
 * With no ACLs at all a non-superuser can do nothing (secure by default) while the superuser
 * can. The superuser then grants alice, through KafkaJS's admin (CreateAcls), PREFIXED
 * `teamA.` topic WRITE, READ, DESCRIBE and CREATE and group `teamA.` READ; DescribeAcls shows
 * exactly those. Alice, with KafkaJS and with kcat (librdkafka), produces to and consumes
 * teamA.orders byte for byte, and gets TOPIC_AUTHORIZATION_FAILED for teamB.orders (produce
 * and consume), GROUP_AUTHORIZATION_FAILED for group teamB.g, and never sees teamB.orders in
 * Metadata; a Fetch of a topic she may describe but not read is refused by the Fetch itself.
 * Her admin requests get Kafka's codes where her ACLs do not reach (CreatePartitions without
 * ALTER, DescribeConfigs without DESCRIBE_CONFIGS, the broker's configs, DeleteRecords), and
 * ListGroups lists a group only to who may describe it; auto-creation needs CREATE. The ACL APIs also round-trip at v3
 * (flexible, what kafka-acls sends) with @platformatic/kafka.
 * DeleteAcls of her WRITE applies to her already-open producer's next send, and the denial is
 * logged with her principal and the resource.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import kafkajs, { Kafka, logLevel, type AclEntry, type Admin } from 'kafkajs';
import { Admin as PlatformaticAdmin } from '@platformatic/kafka';
import { captureLog, startBroker, type LogCapture, type TestBroker } from '../helpers/broker.js';
import { KcatClient } from '../helpers/kcat-client.js';
import { collectMessages } from '../helpers/kafkajs-collect.js';
import { kcat } from '../helpers/kcat.js';
import { waitFor } from '../helpers/wait.js';
import { SECRETS } from '../helpers/secrets.js';

// KafkaJS's ACL enums are not named exports Node can see in its CommonJS module.
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;

const PASSWORDS = { admin: SECRETS.saslAdmin, alice: SECRETS.saslAlice, bob: SECRETS.saslBob } as const;
type User = keyof typeof PASSWORDS;

let tb: TestBroker;
let log: LogCapture;
let bootstrap: string;
let superAdmin: Admin;

function kafka(user: User): Kafka {
  return new Kafka({
    clientId: `acl-${user}`,
    brokers: [bootstrap],
    sasl: { mechanism: 'scram-sha-256', username: user, password: PASSWORDS[user] },
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
  });
}

/** kcat as `user` over SASL_PLAINTEXT with SCRAM-SHA-256. */
function kcatAs(user: User): string[] {
  return ['-X', 'security.protocol=SASL_PLAINTEXT', '-X', 'sasl.mechanisms=SCRAM-SHA-256', '-X', `sasl.username=${user}`, '-X', `sasl.password=${PASSWORDS[user]}`];
}

/** The Kafka error type of a KafkaJS failure, however deep KafkaJS wrapped it. */
function errorType(err: unknown): string | undefined {
  for (let e = err as { type?: string; cause?: unknown; originalError?: unknown; errors?: unknown[]; partitions?: Array<{ error?: unknown }> } | undefined; e !== undefined && e !== null; ) {
    if (typeof e.type === 'string' && e.type !== 'UNKNOWN') return e.type;
    e = (e.cause ?? e.originalError ?? e.errors?.[0] ?? e.partitions?.find((p) => p.error != null)?.error) as typeof e | undefined;
  }
  return undefined;
}

async function rejectsWith(what: Promise<unknown>, type: string, message: string): Promise<void> {
  const err = await what.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err !== undefined, `${message}: expected ${type}, but it succeeded`);
  assert.equal(errorType(err), type, `${message}: ${(err as Error).message}`);
}

/** Runs kcat until its stderr matches `until` (then stops it): a balanced consumer does not exit on its own. */
async function kcatUntil(args: string[], until: RegExp): Promise<string> {
  const child = spawn('kcat', ['-b', bootstrap, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('close', resolve));
  try {
    await waitFor(`kcat ${args.join(' ')} to report ${until}`, () => until.test(stderr), 20_000, 50, () => stderr.slice(-2000));
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
  return stdout;
}

async function withAdmin<T>(user: User, f: (a: Admin) => Promise<T>): Promise<T> {
  const a = kafka(user).admin();
  await a.connect();
  try {
    return await f(a);
  } finally {
    await a.disconnect();
  }
}

const aliceAcls: AclEntry[] = [
  ...[AclOperationTypes.WRITE, AclOperationTypes.READ, AclOperationTypes.DESCRIBE, AclOperationTypes.CREATE].map((operation) => ({
    resourceType: AclResourceTypes.TOPIC,
    resourceName: 'teamA.',
    resourcePatternType: ResourcePatternTypes.PREFIXED,
    principal: 'User:alice',
    host: '*',
    operation,
    permissionType: AclPermissionTypes.ALLOW,
  })),
  { resourceType: AclResourceTypes.GROUP, resourceName: 'teamA.', resourcePatternType: ResourcePatternTypes.PREFIXED, principal: 'User:alice', host: '*', operation: AclOperationTypes.READ, permissionType: AclPermissionTypes.ALLOW },
];

before(async () => {
  log = captureLog();
  tb = await startBroker(
    {
      kafka: { listeners: [{ name: 'SASL', host: '127.0.0.1', port: 0, securityProtocol: 'SASL_PLAINTEXT' }] },
      security: { bootstrap: { user: 'admin', password: PASSWORDS.admin }, authorization: { enabled: true, superUsers: ['User:admin'] } },
    },
    undefined,
    { log },
  );
  bootstrap = `127.0.0.1:${tb.broker.kafkaPort}`;
  for (const user of ['alice', 'bob'] as const) tb.broker.security.credentials.upsert(user, 'SCRAM-SHA-256', PASSWORDS[user]);
  superAdmin = kafka('admin').admin();
  await superAdmin.connect();
  await superAdmin.createTopics({ topics: [{ topic: 'teamA.orders', numPartitions: 2 }, { topic: 'teamB.orders', numPartitions: 1 }] });
  const producer = kafka('admin').producer();
  await producer.connect();
  await producer.send({ topic: 'teamB.orders', messages: [{ key: 'b', value: 'teamB secret' }] });
  await producer.disconnect();
});

after(async () => {
  await superAdmin?.disconnect();
  await tb?.cleanup();
});

test('with authorization on and no ACLs, a non-superuser can do nothing and the superuser everything', async () => {
  assert.deepEqual(await superAdmin.describeAcls({ resourceType: AclResourceTypes.ANY, resourcePatternType: ResourcePatternTypes.ANY, operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ANY }).then((r) => r.resources), []);
  assert.deepEqual((await superAdmin.listTopics()).sort(), ['teamA.orders', 'teamB.orders']);

  await withAdmin('bob', async (a) => {
    assert.deepEqual(await a.listTopics(), [], 'Metadata for every topic lists none of them');
    await rejectsWith(a.fetchTopicMetadata({ topics: ['teamA.orders'] }), 'TOPIC_AUTHORIZATION_FAILED', 'Metadata naming a topic');
    await rejectsWith(a.createTopics({ topics: [{ topic: 'bob.topic' }] }), 'TOPIC_AUTHORIZATION_FAILED', 'CreateTopics');
    await rejectsWith(a.deleteTopics({ topics: ['teamA.orders'] }), 'TOPIC_AUTHORIZATION_FAILED', 'DeleteTopics');
    await rejectsWith(a.describeAcls({ resourceType: AclResourceTypes.ANY, resourcePatternType: ResourcePatternTypes.ANY, operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ANY }), 'CLUSTER_AUTHORIZATION_FAILED', 'DescribeAcls');
    await rejectsWith(a.createAcls({ acl: [{ ...aliceAcls[0], principal: 'User:bob' }] }), 'CLUSTER_AUTHORIZATION_FAILED', 'CreateAcls');
    assert.deepEqual((await a.listGroups()).groups, [], 'ListGroups shows no group');
  });
  const producer = kafka('bob').producer();
  await producer.connect();
  try {
    await rejectsWith(producer.send({ topic: 'teamA.orders', messages: [{ value: 'x' }] }), 'TOPIC_AUTHORIZATION_FAILED', 'produce');
  } finally {
    await producer.disconnect();
  }
  const idempotent = kafka('bob').producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 1 } });
  await rejectsWith(idempotent.connect().then(() => idempotent.send({ topic: 'teamA.orders', messages: [{ value: 'x' }] })), 'CLUSTER_AUTHORIZATION_FAILED', 'InitProducerId without WRITE anywhere');
  await idempotent.disconnect();
  assert.deepEqual(tb.broker.security.acls.size, 0);
});

test('ACLs created with KafkaJS admin (CreateAcls) are what DescribeAcls shows, and land in the region\'s acls.json', async () => {
  await superAdmin.createAcls({ acl: aliceAcls });
  const all = await superAdmin.describeAcls({ resourceType: AclResourceTypes.ANY, resourcePatternType: ResourcePatternTypes.ANY, operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ANY });
  const described = all.resources.flatMap((r) => r.acls.map((a) => ({ resourceType: r.resourceType, resourceName: r.resourceName, resourcePatternType: r.resourcePatternType, ...a })));
  const key = (a: AclEntry) => `${a.resourceType}/${a.resourceName}/${a.resourcePatternType}/${a.principal}/${a.host}/${a.operation}/${a.permissionType}`;
  assert.deepEqual(described.map(key).sort(), aliceAcls.map(key).sort());
  // A MATCH filter names a resource: the prefixed ACLs that apply to it.
  const forTopic = await superAdmin.describeAcls({ resourceType: AclResourceTypes.TOPIC, resourceName: 'teamA.orders', resourcePatternType: ResourcePatternTypes.MATCH, operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ANY });
  assert.deepEqual(forTopic.resources.map((r) => [r.resourceName, r.resourcePatternType, r.acls.length]), [['teamA.', ResourcePatternTypes.PREFIXED, 4]]);
  assert.equal(tb.broker.security.acls.size, aliceAcls.length);
});

test('alice produces to teamA.orders and reads back the same bytes, with KafkaJS and with kcat', async () => {
  const alice = kafka('alice');
  const producer = alice.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 1 } });
  await producer.connect();
  const sent = [
    { key: Buffer.from('k1'), value: Buffer.from([0, 1, 2, 0xff, 0xfe]) },
    { key: Buffer.from('k2'), value: Buffer.from('héllo wörld') },
  ];
  try {
    await producer.send({ topic: 'teamA.orders', messages: sent.map((m, i) => ({ ...m, partition: i % 2 })) });
  } finally {
    await producer.disconnect();
  }
  const kc = new KcatClient(bootstrap);
  await kc.produce('teamA.orders', 'from-kcat-1\nfrom-kcat-2\n', [...kcatAs('alice'), '-p', '0']);

  const viaKcat = await kc.consumeAll('teamA.orders', kcatAs('alice'));
  const got = (ms: Array<{ value: Buffer | null }>) => ms.map((m) => m.value!.toString('hex')).sort();
  const expected = [...sent.map((m) => m.value), Buffer.from('from-kcat-1'), Buffer.from('from-kcat-2')].map((b) => b.toString('hex')).sort();
  assert.deepEqual(got(viaKcat.map((m) => ({ value: m.payload }))), expected);

  const viaKafkaJs = await collectMessages(alice, { groupId: 'teamA.readers', topics: ['teamA.orders'], count: expected.length });
  assert.deepEqual(got(viaKafkaJs), expected);
});

test('alice cannot produce to or consume teamB.orders, nor join group teamB.g, and Metadata does not show teamB.orders', async () => {
  const alice = kafka('alice');
  const producer = alice.producer();
  await producer.connect();
  try {
    await rejectsWith(producer.send({ topic: 'teamB.orders', messages: [{ value: 'intrusion' }] }), 'TOPIC_AUTHORIZATION_FAILED', 'produce to teamB.orders');
  } finally {
    await producer.disconnect();
  }

  const other = alice.consumer({ groupId: 'teamA.g' });
  await other.connect();
  try {
    await rejectsWith(other.subscribe({ topic: 'teamB.orders', fromBeginning: true }), 'TOPIC_AUTHORIZATION_FAILED', 'consume teamB.orders');
  } finally {
    await other.disconnect();
  }

  // KafkaJS reports a refused FindCoordinator as "coordinator not found" (it drops the code):
  // the broker's log names the denial; kcat below shows the code itself.
  const consumer = alice.consumer({ groupId: 'teamB.g', retry: { retries: 0 } });
  const crashed = new Promise<Error>((resolve) => consumer.on(consumer.events.CRASH, (e) => resolve(e.payload.error)));
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: 'teamA.orders', fromBeginning: true });
    await consumer.run({ eachMessage: async () => {} });
    assert.equal((await crashed).name, 'KafkaJSGroupCoordinatorNotFound');
  } finally {
    await consumer.disconnect();
  }
  assert.ok(log.lines.some((l) => l.msg === 'authorization denied' && l.principal === 'User:alice' && l.operation === 'DESCRIBE' && l.resourceType === 'GROUP' && l.resource === 'teamB.g'));
  const joined = await kcatUntil([...kcatAs('alice'), '-G', 'teamB.g', 'teamA.orders'], /Group authorization failed/);
  assert.doesNotMatch(joined, /from-kcat/);

  await withAdmin('alice', async (a) => {
    assert.deepEqual(await a.listTopics(), ['teamA.orders']);
    const md = await a.fetchTopicMetadata();
    assert.deepEqual(md.topics.map((t) => t.name), ['teamA.orders']);
    await rejectsWith(a.fetchTopicMetadata({ topics: ['teamB.orders'] }), 'TOPIC_AUTHORIZATION_FAILED', 'Metadata naming teamB.orders');
  });

  // kcat (librdkafka): the listing, a produce and a consume.
  const list = await kcat(['-b', bootstrap, ...kcatAs('alice'), '-L']);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout.toString(), /topic "teamA\.orders" with 2 partitions/);
  assert.doesNotMatch(list.stdout.toString(), /teamB/);
  const produced = await kcat(['-b', bootstrap, ...kcatAs('alice'), '-P', '-t', 'teamB.orders'], 'intrusion\n');
  assert.match(produced.stderr, /Topic authorization failed/, produced.stderr);
  const consumed = await kcat(['-b', bootstrap, ...kcatAs('alice'), '-C', '-t', 'teamB.orders', '-o', 'beginning', '-e'], undefined, 20_000);
  assert.notEqual(consumed.code, 0);
  assert.match(consumed.stderr, /Topic authorization failed/, consumed.stderr);
  assert.doesNotMatch(consumed.stdout.toString(), /teamB secret/);
});

test('a Fetch of a topic alice may describe but not read is refused by the Fetch: TOPIC_AUTHORIZATION_FAILED, no records', async () => {
  const describeOnly: AclEntry = { resourceType: AclResourceTypes.TOPIC, resourceName: 'teamB.orders', resourcePatternType: ResourcePatternTypes.LITERAL, principal: 'User:alice', host: '*', operation: AclOperationTypes.DESCRIBE, permissionType: AclPermissionTypes.ALLOW };
  await superAdmin.createAcls({ acl: [describeOnly] });
  try {
    const consumed = await kcat(['-b', bootstrap, ...kcatAs('alice'), '-C', '-t', 'teamB.orders', '-o', 'beginning', '-e'], undefined, 20_000);
    assert.match(consumed.stderr, /Topic authorization failed/, consumed.stderr);
    assert.doesNotMatch(consumed.stdout.toString(), /teamB secret/);
    assert.ok(log.lines.some((l) => l.msg === 'authorization denied' && l.principal === 'User:alice' && l.operation === 'READ' && l.resource === 'teamB.orders'));
  } finally {
    await superAdmin.deleteAcls({ filters: [describeOnly] });
  }
});

test('alice\'s admin requests: CREATE under teamA. works (CreateTopics and auto-creation; without CREATE no topic is made); ALTER, DESCRIBE_CONFIGS, DELETE and the broker\'s configs are refused with Kafka\'s codes; ListGroups shows a group only to who may describe it', async () => {
  await withAdmin('alice', async (a) => {
    assert.equal(await a.createTopics({ topics: [{ topic: 'teamA.new' }] }), true);
    await rejectsWith(a.createTopics({ topics: [{ topic: 'teamB.new' }] }), 'TOPIC_AUTHORIZATION_FAILED', 'CreateTopics outside teamA.');
    await rejectsWith(a.createPartitions({ topicPartitions: [{ topic: 'teamA.orders', count: 3 }] }), 'TOPIC_AUTHORIZATION_FAILED', 'CreatePartitions needs ALTER');
    await rejectsWith(a.describeConfigs({ resources: [{ type: 2, name: 'teamA.orders' }], includeSynonyms: false }), 'TOPIC_AUTHORIZATION_FAILED', 'DescribeConfigs needs DESCRIBE_CONFIGS');
    await rejectsWith(a.describeConfigs({ resources: [{ type: 4, name: String(tb.config.nodeId) }], includeSynonyms: false }), 'CLUSTER_AUTHORIZATION_FAILED', "the broker's configs need DESCRIBE_CONFIGS on the cluster");
    await rejectsWith(a.deleteTopicRecords({ topic: 'teamA.orders', partitions: [{ partition: 0, offset: '-1' }] }), 'TOPIC_AUTHORIZATION_FAILED', 'DeleteRecords needs DELETE');
    assert.deepEqual((await a.listGroups()).groups.map((g) => g.groupId), ['teamA.readers']);
    assert.deepEqual((await a.fetchTopicMetadata({ topics: ['teamA.new'] })).topics.map((t) => t.name), ['teamA.new']);
  });
  // Auto-creation (topics.autoCreate) needs CREATE besides DESCRIBE: alice has both under
  // teamA.; bob, given DESCRIBE and WRITE on bob.auto only, gets TOPIC_AUTHORIZATION_FAILED and
  // no topic is made.
  const aliceProducer = kafka('alice').producer();
  await aliceProducer.connect();
  try {
    await aliceProducer.send({ topic: 'teamA.auto', messages: [{ value: 'auto' }] });
  } finally {
    await aliceProducer.disconnect();
  }
  const bobAcls: AclEntry[] = [AclOperationTypes.DESCRIBE, AclOperationTypes.WRITE].map((operation) => ({ ...aliceAcls[0], resourceName: 'bob.auto', resourcePatternType: ResourcePatternTypes.LITERAL, principal: 'User:bob', operation }));
  await superAdmin.createAcls({ acl: bobAcls });
  const bobProducer = kafka('bob').producer();
  await bobProducer.connect();
  try {
    await rejectsWith(bobProducer.send({ topic: 'bob.auto', messages: [{ value: 'auto' }] }), 'TOPIC_AUTHORIZATION_FAILED', 'auto-creation without CREATE');
  } finally {
    await bobProducer.disconnect();
    await superAdmin.deleteAcls({ filters: bobAcls });
  }
  const topics = await superAdmin.listTopics();
  assert.ok(topics.includes('teamA.auto') && !topics.includes('bob.auto'), topics.join(', '));

  // The group alice's consumer made: listed to her and to the superuser, not to bob.
  assert.deepEqual((await superAdmin.listGroups()).groups.map((g) => g.groupId), ['teamA.readers']);
  assert.deepEqual(await withAdmin('bob', async (a) => (await a.listGroups()).groups), []);
  assert.equal((await superAdmin.fetchTopicOffsets('teamA.orders')).length, 2, 'nothing changed the topic');
});

test('CreateAcls, DescribeAcls and DeleteAcls at v3, the flexible versions kafka-acls sends, with @platformatic/kafka', async () => {
  const admin = new PlatformaticAdmin({ clientId: 'acl-v3', bootstrapBrokers: [bootstrap], sasl: { mechanism: 'SCRAM-SHA-512', username: 'admin', password: PASSWORDS.admin }, retries: 0 });
  tb.broker.security.credentials.upsert('admin', 'SCRAM-SHA-512', PASSWORDS.admin);
  const acl = { resourceType: 5, resourceName: 'bob-tx', resourcePatternType: 3, principal: 'User:bob', host: '10.1.2.3', operation: 4, permissionType: 2 } as const;
  const filter = { ...acl, operation: 1, permissionType: 1 } as const;
  try {
    await admin.createAcls({ creations: [acl] });
    const described = await admin.describeAcls({ filter });
    assert.deepEqual(described.map((r) => [r.resourceType, r.resourceName, r.resourcePatternType, r.acls]), [[5, 'bob-tx', 3, [{ principal: 'User:bob', host: '10.1.2.3', operation: 4, permissionType: 2 }]]]);
    const deleted = await admin.deleteAcls({ filters: [filter] });
    assert.deepEqual(deleted.map((a) => [a.resourceName, a.principal, a.operation, a.permissionType]), [['bob-tx', 'User:bob', 4, 2]]);
    assert.deepEqual(await admin.describeAcls({ filter }), []);
  } finally {
    await admin.close();
  }
});

test('DeleteAcls of alice\'s WRITE applies to her open producer\'s next send, and the denial is logged with her principal and the topic', async () => {
  const producer = kafka('alice').producer();
  await producer.connect();
  try {
    await producer.send({ topic: 'teamA.orders', messages: [{ value: 'before' }] });
    const writeAcl = aliceAcls.find((a) => a.operation === AclOperationTypes.WRITE)!;
    const r = await superAdmin.deleteAcls({ filters: [writeAcl] });
    assert.deepEqual(r.filterResponses.map((f) => [f.errorCode, f.matchingAcls.length]), [[0, 1]]);
    await rejectsWith(producer.send({ topic: 'teamA.orders', messages: [{ value: 'after' }] }), 'TOPIC_AUTHORIZATION_FAILED', 'send after DeleteAcls');
  } finally {
    await producer.disconnect();
  }
  const line = await waitFor('the denial in the log', () =>
    log.lines.find((l) => l.msg === 'authorization denied' && l.principal === 'User:alice' && l.operation === 'WRITE' && l.resourceType === 'TOPIC' && l.resource === 'teamA.orders'),
  );
  assert.equal(line.level, 'warn');
  assert.equal(line.host, '127.0.0.1');
  for (const secret of Object.values(PASSWORDS)) assert.ok(!log.lines.some((l) => JSON.stringify(l).includes(secret)), 'no password in the log');
  const remaining = await superAdmin.describeAcls({ resourceType: AclResourceTypes.ANY, resourcePatternType: ResourcePatternTypes.ANY, principal: 'User:alice', operation: AclOperationTypes.WRITE, permissionType: AclPermissionTypes.ANY });
  assert.deepEqual(remaining.resources, []);
});
