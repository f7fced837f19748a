/**
 * A region cluster's security is region-wide (src/cluster/security-sync.ts): three brokers on a
 * real etcd, each with a PLAINTEXT listener (inter-broker, ANONYMOUS is a superuser, as Kafka
 * deployments set super.users for their internal listener) and a SASL_PLAINTEXT one for users.
 *
 * - A SCRAM user created through one broker (Kafka's AlterUserScramCredentials from
 *   @platformatic/kafka, or the admin API) logs in at every broker (kcat and KafkaJS).
 * - ACLs created through one broker (KafkaJS createAcls) are enforced by every broker: a kcat
 *   producer bootstrapped at another broker is denied before and served after (and Metadata
 *   sends it to the leader's SASL address, never to the PLAINTEXT one); ACLs created at the same
 *   time through two brokers both count; DeleteAcls through a third removes them everywhere.
 * - Quota overrides set through one broker show and apply at every broker.
 * - A broker that was down while users and ACLs changed enforces the region's on restart.
 * - Neither etcd nor any broker's output ever holds a password.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, test } from 'node:test';
import { Connection, alterUserScramCredentialsV0 } from '@platformatic/kafka';
import { Etcd3 } from 'etcd3';
import kafkajs, { Kafka, logLevel, type AclEntry } from 'kafkajs';
import { TestCluster, type BrokerProcess } from '../helpers/cluster.js';
import { readTopicToEnd } from '../helpers/kafkajs-collect.js';
import { kcat } from '../helpers/kcat.js';
import { registerSecret, SECRETS } from '../helpers/secrets.js';
import { waitFor } from '../helpers/wait.js';

const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;

const PASSWORDS = { admin: SECRETS.saslAdmin, dave: SECRETS.saslAlice, erin: SECRETS.saslBob } as const;
type User = keyof typeof PASSWORDS;
const TOPIC = 'orders';

let cluster: TestCluster;
/** Each broker's SASL_PLAINTEXT port, by node id. */
const saslPorts = new Map<number, number>();

before(async () => {
  cluster = await TestCluster.start({
    brokers: 3,
    extraListeners: [{ name: 'SASL', securityProtocol: 'SASL_PLAINTEXT' }],
    config: {
      security: {
        bootstrap: { user: 'admin', password: SECRETS.saslAdmin },
        authorization: { enabled: true, superUsers: ['User:admin', 'User:ANONYMOUS'], allowEveryoneIfNoAclFound: false },
        sasl: { failureDelayMs: 0 },
      },
    },
  });
  for (const b of cluster.nodes) await learnSaslPort(b);
  const admin = new Kafka({ clientId: 'setup', brokers: cluster.bootstrap, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 1, replicationFactor: 3 }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
});

after(async () => {
  await cluster?.close();
});

async function adminApi(b: BrokerProcess, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`http://127.0.0.1:${b.adminPort}${path}`, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} on broker ${b.nodeId}: ${res.status} ${text}`);
  return text === '' ? undefined : JSON.parse(text);
}

/** The SASL listener binds a free port at each start: its port, from the broker's admin API. */
async function learnSaslPort(b: BrokerProcess): Promise<void> {
  const body = (await waitFor(`broker ${b.nodeId}'s admin API`, () => adminApi(b, 'GET', '/v1/security'), 10_000)) as { listeners: Array<{ name: string; port: number }> };
  saslPorts.set(b.nodeId, body.listeners.find((l) => l.name === 'SASL')!.port);
}

function kcatSasl(nodeId: number, user: User, mechanism = 'SCRAM-SHA-256'): string[] {
  return ['-b', `127.0.0.1:${saslPorts.get(nodeId)}`, '-X', 'security.protocol=SASL_PLAINTEXT', '-X', `sasl.mechanisms=${mechanism}`, '-X', `sasl.username=${user}`, '-X', `sasl.password=${PASSWORDS[user]}`];
}

function kafkaAs(nodeId: number, user: User): Kafka {
  return new Kafka({ clientId: `sec-${user}`, brokers: [`127.0.0.1:${saslPorts.get(nodeId)}`], sasl: { mechanism: 'scram-sha-512', username: user, password: PASSWORDS[user] }, logLevel: logLevel.NOTHING, retry: { retries: 0 } });
}

/** Whether `user` logs in at broker `nodeId` (kcat metadata request over SASL). */
async function logsIn(nodeId: number, user: User): Promise<boolean> {
  const r = await kcat([...kcatSasl(nodeId, user), '-L', '-m', '5'], undefined, 20_000);
  if (r.code === 0) return true;
  assert.match(r.stderr, /Authentication failed|SASL authentication error|Invalid username or password/i, `kcat at broker ${nodeId} failed for another reason: ${r.stderr}`);
  return false;
}

/** Produces `value` to TOPIC as `user` through broker `nodeId`: null when acknowledged, else kcat's error. */
async function produceAs(nodeId: number, user: User, value: string): Promise<string | null> {
  const r = await kcat([...kcatSasl(nodeId, user), '-P', '-t', TOPIC, '-p', '0', '-X', 'acks=all', '-X', 'message.timeout.ms=8000'], `${value}\n`, 30_000);
  return r.code === 0 && !/error|failed/i.test(r.stderr) ? null : r.stderr;
}

/** The region's SCRAM users as one broker's admin API lists them. */
async function usersAt(b: BrokerProcess): Promise<string[]> {
  return ((await adminApi(b, 'GET', '/v1/security/users')) as Array<{ user: string }>).map((u) => u.user).sort();
}

/** Each ACL a broker's admin API lists, as "principal operation permission resourceType:name". */
async function aclsAt(b: BrokerProcess): Promise<string[]> {
  const acls = (await adminApi(b, 'GET', '/v1/security/acls')) as Array<{ principal: string; operation: string; permission: string; resourceType: string; name: string }>;
  return acls.map((a) => `${a.principal} ${a.operation} ${a.permission} ${a.resourceType}:${a.name}`).sort();
}

const aclFor = (user: User, operation: number, resourceType = AclResourceTypes.TOPIC, resourceName = TOPIC) =>
  ({ resourceType, resourceName, resourcePatternType: ResourcePatternTypes.LITERAL, principal: `User:${user}`, host: '*', operation, permissionType: AclPermissionTypes.ALLOW }) as AclEntry;

test('a SCRAM user created through one broker logs in at every broker (AlterUserScramCredentials from @platformatic/kafka, the admin API; kcat and KafkaJS)', { timeout: 90_000 }, async () => {
  // The bootstrap admin was ensured once for the region: it logs in everywhere.
  for (const b of cluster.nodes) assert.ok(await logsIn(b.nodeId, 'admin'), `admin logs in at broker ${b.nodeId}`);
  assert.equal(await logsIn(2, 'dave'), false, 'dave is unknown before it is created');

  const conn = new Connection('sec-admin', { sasl: { mechanism: 'SCRAM-SHA-256', username: 'admin', password: SECRETS.saslAdmin } });
  await conn.connect('127.0.0.1', saslPorts.get(1)!);
  try {
    const upsertions = [1, 2].map((mechanism) => {
      const salt = crypto.randomBytes(24);
      const saltedPassword = crypto.pbkdf2Sync(PASSWORDS.dave, salt, 4096, mechanism === 1 ? 32 : 64, mechanism === 1 ? 'sha256' : 'sha512');
      registerSecret('salted password of dave', saltedPassword);
      return { name: 'dave', mechanism, iterations: 4096, salt, saltedPassword };
    });
    const r = await alterUserScramCredentialsV0.api.async(conn, [], upsertions);
    assert.deepEqual(r.results.map((x) => [x.user, x.errorCode]), [['dave', 0]]);
  } finally {
    await conn.close();
  }
  // The asking broker answered once it applied the change; the others follow their watch.
  assert.deepEqual(await usersAt(cluster.node(1)), ['admin', 'dave']);
  for (const id of [2, 3]) await waitFor(`dave to be a user at broker ${id}`, async () => (await usersAt(cluster.node(id))).includes('dave'), 10_000);
  assert.ok(await logsIn(2, 'dave'), 'dave logs in at broker 2 (kcat SCRAM-SHA-256)');
  const k = kafkaAs(3, 'dave').admin();
  await k.connect(); // KafkaJS SCRAM-SHA-512 at broker 3
  await k.disconnect();

  await adminApi(cluster.node(3), 'PUT', '/v1/security/users/erin', { password: PASSWORDS.erin });
  assert.deepEqual(await usersAt(cluster.node(3)), ['admin', 'dave', 'erin']);
  await waitFor('erin to log in at broker 1', () => logsIn(1, 'erin'), 10_000);
});

test('ACLs created through one broker are enforced by every broker; concurrent creations through two brokers both count; DeleteAcls through a third removes them everywhere', { timeout: 120_000 }, async () => {
  const denied = await produceAs(2, 'dave', 'before-acl');
  assert.ok(denied !== null && /authorization/i.test(denied), `dave may not write before any ACL: ${denied}`);

  const admin1 = kafkaAs(1, 'admin').admin();
  const admin2 = kafkaAs(2, 'admin').admin();
  const admin3 = kafkaAs(3, 'admin').admin();
  await Promise.all([admin1.connect(), admin2.connect(), admin3.connect()]);
  try {
    await admin1.createAcls({ acl: [aclFor('dave', AclOperationTypes.WRITE), aclFor('dave', AclOperationTypes.DESCRIBE)] });
    // Written at broker 1; a producer bootstrapped at broker 3 is served wherever the leader is.
    const leader = (await cluster.partition(TOPIC, 0)).leader;
    const via = [1, 2, 3].find((id) => id !== leader)!;
    await waitFor(`dave's produce through broker ${via} (leader ${leader}) to be served`, async () => (await produceAs(via, 'dave', 'after-acl')) === null, 20_000);

    // Two brokers create different ACLs at the same moment: a compare-and-swap decides the
    // order, and the one that loses is applied on top of the winner.
    await Promise.all([
      admin1.createAcls({ acl: [aclFor('erin', AclOperationTypes.READ)] }),
      admin2.createAcls({ acl: [aclFor('erin', AclOperationTypes.DESCRIBE), aclFor('erin', AclOperationTypes.READ, AclResourceTypes.GROUP, 'erin-group')] }),
    ]);
    const expected = [
      `User:dave DESCRIBE ALLOW TOPIC:${TOPIC}`,
      `User:dave WRITE ALLOW TOPIC:${TOPIC}`,
      `User:erin DESCRIBE ALLOW TOPIC:${TOPIC}`,
      'User:erin READ ALLOW GROUP:erin-group',
      `User:erin READ ALLOW TOPIC:${TOPIC}`,
    ].sort();
    for (const b of cluster.nodes) await waitFor(`broker ${b.nodeId} to list the five ACLs`, async () => assert.deepEqual(await aclsAt(b), expected) ?? true, 10_000);

    // DeleteAcls through broker 3 removes dave's WRITE everywhere: denied through every broker.
    const del = await admin3.deleteAcls({ filters: [{ ...aclFor('dave', AclOperationTypes.WRITE) }] });
    assert.equal(del.filterResponses[0]!.matchingAcls.length, 1);
    for (const id of [1, 2, 3]) {
      await waitFor(`dave to be denied through broker ${id} after the delete`, async () => {
        const r = await produceAs(id, 'dave', `after-delete-${id}`);
        return r !== null && /authorization/i.test(r);
      }, 20_000);
    }
  } finally {
    await Promise.all([admin1.disconnect(), admin2.disconnect(), admin3.disconnect()]);
  }
  // Exactly the one acknowledged record, read back over PLAINTEXT.
  const got = await readTopicToEnd(cluster.bootstrap[0]!, TOPIC);
  assert.deepEqual(got.map((m) => m.value?.toString()), ['after-acl']);
});

test('quota overrides set through one broker apply at every broker; removed through another, gone everywhere', { timeout: 60_000 }, async () => {
  await adminApi(cluster.node(1), 'PUT', '/v1/security/quotas/User:dave', { producerByteRate: '1MiB', requestRate: 50 });
  for (const b of cluster.nodes) {
    await waitFor(`broker ${b.nodeId} to show dave's override`, async () => {
      const q = (await adminApi(b, 'GET', '/v1/security/quotas')) as { overrides: Array<{ principal: string; override: Record<string, number> }> };
      return q.overrides.find((o) => o.principal === 'User:dave')?.override.producerByteRate === 1 << 20 && q.overrides.find((o) => o.principal === 'User:dave')?.override.requestRate === 50;
    }, 10_000);
  }
  await adminApi(cluster.node(3), 'DELETE', '/v1/security/quotas/User:dave');
  for (const b of cluster.nodes) {
    await waitFor(`broker ${b.nodeId} to drop dave's override`, async () => {
      const q = (await adminApi(b, 'GET', '/v1/security/quotas')) as { overrides: Array<{ principal: string }> };
      return q.overrides.every((o) => o.principal !== 'User:dave');
    }, 10_000);
  }
});

test('a broker down while users and ACLs changed enforces the region\'s on restart; etcd and the brokers\' output never hold a password', { timeout: 90_000 }, async () => {
  const b3 = cluster.node(3);
  await b3.stop();
  await adminApi(cluster.node(1), 'DELETE', '/v1/security/users/erin');
  await adminApi(cluster.node(2), 'POST', '/v1/security/acls', { acls: [{ resourceType: 'TOPIC', name: 'audit', patternType: 'LITERAL', principal: 'User:dave', host: '*', operation: 'READ', permission: 'ALLOW' }] });
  await b3.start();
  await learnSaslPort(b3);
  // Loaded from etcd before its listeners opened: what its admin API shows as soon as it answers.
  assert.deepEqual(await usersAt(b3), ['admin', 'dave']);
  assert.ok((await aclsAt(b3)).includes('User:dave READ ALLOW TOPIC:audit'));
  assert.equal(await logsIn(3, 'erin'), false, 'erin, deleted while broker 3 was down, cannot log in there');
  assert.ok(await logsIn(3, 'dave'));

  const etcd = new Etcd3({ hosts: cluster.etcd.endpoint });
  try {
    const docs = await etcd.getAll().prefix(`/meridian-e2e/${cluster.region}/security/`).strings();
    assert.deepEqual(Object.keys(docs).map((k) => k.split('/').pop()).sort(), ['acls', 'initialized', 'quotas', 'scram-credentials']);
    const all = Object.values(docs).join('\n');
    for (const [user, pw] of Object.entries(PASSWORDS)) assert.ok(!all.includes(pw), `etcd holds ${user}'s password`);
    // The keys etcd holds must not reach a log line either.
    const creds = JSON.parse(docs[`/meridian-e2e/${cluster.region}/security/scram-credentials`]!) as { users: Record<string, Record<string, { storedKey: string; serverKey: string }>> };
    const keys = Object.values(creds.users).flatMap((m) => Object.values(m).flatMap((c) => [c.storedKey, c.serverKey]));
    registerSecret('region SCRAM keys', ...keys);
    for (const b of cluster.nodes) {
      for (const s of [...Object.values(PASSWORDS), ...keys]) assert.ok(!b.output.includes(s), `broker ${b.nodeId}'s output holds a secret`);
    }
  } finally {
    etcd.close();
  }
});
