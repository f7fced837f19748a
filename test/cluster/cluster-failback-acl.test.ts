/**
 * Failback on a region cluster with authorization on (issue 16). On a cluster the failback
 * reads the DR topic's divergent tail from the partitions' leaders and produces it to the
 * side topic over the Kafka port (dr/failback-cluster.ts), as the principal of the region's
 * in-region connections: here User:ANONYMOUS on the brokers' PLAINTEXT listener, granted only
 * ClusterAction (what follower fetches and the replication API need). The test's own clients
 * log in as the superuser `admin` on a SASL listener.
 *
 * What an operator sees: us-east (one broker) is the primary of `orders`, eu-west (two brokers
 * on a real etcd) its copy; eu-west is promoted while us-east is down and takes records; us-east
 * returns and is promoted past it. `failback --confirm` in eu-west then refuses before changing
 * anything, naming the principal, the two permissions it lacks (Read on the topic, Write on the
 * side topic) and the `meridian acl add` commands that grant them; the role, the topic and its
 * records are untouched and no side topic exists. Those exact commands, run with the CLI
 * against eu-west's admin API, grant them; the same failback then completes: the side topic
 * holds exactly eu-west's divergent records, eu-west holds us-east's, and it follows us-east.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { TestCluster, waitFor, type BrokerProcess } from '../helpers/cluster.js';
import { kcat } from '../helpers/kcat.js';
import { freePort } from '../helpers/regions.js';
import { SECRETS } from '../helpers/secrets.js';

const BIN = fileURLToPath(new URL('../../bin/meridian.js', import.meta.url));
const TOPIC = 'orders';
const EAST = 'us-east';
const WEST = 'eu-west';
const SIDE = `${TOPIC}.diverged-${WEST}-e2`;

let east: TestCluster;
let west: TestCluster;
/** eu-west's SASL listener ports, by node id. */
const saslPorts = new Map<number, number>();

async function ports(n: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < n) out.add(await freePort());
  return [...out];
}

async function adminApi<T>(adminPort: number, method: string, route: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`http://127.0.0.1:${adminPort}${route}`, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) });
  const text = await res.text();
  return { status: res.status, body: (text === '' ? undefined : JSON.parse(text)) as T };
}

before(async () => {
  const [e1, w1, w2] = await ports(3);
  const replication = {
    regions: [
      { name: EAST, address: `127.0.0.1:${e1}` },
      { name: WEST, address: [`127.0.0.1:${w1}`, `127.0.0.1:${w2}`] },
    ],
    policies: [{ name: 'orders-dr', topics: [TOPIC], topology: 'one-way', source: EAST, targets: [WEST] }],
    retry: { initialMs: 50, maxMs: 500 },
  };
  east = await TestCluster.start({ region: EAST, brokers: 1, ports: [e1], config: { replication } });
  west = await TestCluster.start({
    region: WEST,
    brokers: 2,
    ports: [w1, w2],
    extraListeners: [{ name: 'SASL', securityProtocol: 'SASL_PLAINTEXT' }],
    config: {
      replication,
      security: {
        bootstrap: { user: 'admin', password: SECRETS.saslAdmin },
        authorization: { enabled: true, superUsers: ['User:admin'], allowEveryoneIfNoAclFound: false },
        sasl: { failureDelayMs: 0 },
      },
    },
  });
  // The in-region (and us-east's replication) principal: ClusterAction and nothing else.
  const granted = await adminApi<unknown>(west.node(1).adminPort, 'POST', '/v1/security/acls', { acls: [{ resourceType: 'CLUSTER', name: 'kafka-cluster', principal: 'User:ANONYMOUS', operation: 'CLUSTER_ACTION' }] });
  assert.equal(granted.status, 201, JSON.stringify(granted.body));
  for (const b of west.nodes) {
    const sec = await waitFor(`broker ${b.nodeId}'s admin API`, async () => {
      const r = await adminApi<{ listeners: Array<{ name: string; port: number }> }>(b.adminPort, 'GET', '/v1/security');
      return r.status === 200 ? r.body : undefined;
    }, 10_000, 50);
    saslPorts.set(b.nodeId, sec.listeners.find((l) => l.name === 'SASL')!.port);
  }
});

after(async () => {
  await Promise.allSettled([east?.close(), west?.close()]);
});

function westAdmin(clientId: string): Kafka {
  return new Kafka({ clientId, brokers: [`127.0.0.1:${saslPorts.get(1)}`], sasl: { mechanism: 'scram-sha-512', username: 'admin', password: SECRETS.saslAdmin }, logLevel: logLevel.NOTHING, retry: { retries: 5, initialRetryTime: 100 } });
}

/** Every value of `topic`'s partition 0 in eu-west, as kcat reads it as `admin` over SASL. */
async function westValues(topic: string): Promise<string[]> {
  const r = await kcat(['-C', '-b', `127.0.0.1:${saslPorts.get(1)}`, '-X', 'security.protocol=SASL_PLAINTEXT', '-X', 'sasl.mechanisms=SCRAM-SHA-256', '-X', 'sasl.username=admin', '-X', `sasl.password=${SECRETS.saslAdmin}`, '-t', topic, '-p', '0', '-o', 'beginning', '-e', '-q', '-f', '%s\n']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.toString().split('\n').filter((l) => l !== '');
}

async function eastValues(): Promise<string[]> {
  const r = await kcat(['-C', '-b', east.bootstrap[0]!, '-t', TOPIC, '-p', '0', '-o', 'beginning', '-e', '-q', '-f', '%s\n']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.toString().split('\n').filter((l) => l !== '');
}

interface Role {
  topic: string;
  primary: string;
  epoch: number;
  readOnly: boolean;
  phase: string;
}

async function roleOn(b: BrokerProcess): Promise<Role | undefined> {
  return (await adminApi<{ topics: Role[] }>(b.adminPort, 'GET', '/v1/dr?scope=broker')).body.topics.find((t) => t.topic === TOPIC);
}

async function promote(b: BrokerProcess): Promise<number> {
  const r = await adminApi<{ reports: Array<{ epoch: number }> }>(b.adminPort, 'POST', '/v1/dr/promote', { topic: TOPIC });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.reports[0]!.epoch;
}

test('failback on a cluster with authorization on: refused up front naming the principal, the missing Read and Write and the commands; those commands grant them and the same failback completes', { timeout: 150_000 }, async (t) => {
  const t0 = Date.now();
  const mark = (what: string) => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  const eastKafka = new Kafka({ clientId: 'acl-east', brokers: east.bootstrap, logLevel: logLevel.NOTHING, retry: { retries: 5, initialRetryTime: 100 } });
  const setup = eastKafka.admin();
  await setup.connect();
  try {
    await setup.createTopics({ topics: [{ topic: TOPIC, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true });
  } finally {
    await setup.disconnect();
  }
  const admin = westAdmin('acl-west-admin').admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 1, replicationFactor: 2 }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
  await west.partition(TOPIC, 0, (v) => v.isr.length === 2);

  const eastProducer = eastKafka.producer();
  await eastProducer.connect();
  try {
    await eastProducer.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: 5 }, (_, i) => ({ value: `east-${i}` })) });
  } finally {
    await eastProducer.disconnect();
  }
  const eastRecords = Array.from({ length: 5 }, (_, i) => `east-${i}`);
  let seen: string[] = [];
  await waitFor("us-east's records in eu-west", async () => JSON.stringify((seen = await westValues(TOPIC))) === JSON.stringify(eastRecords), 30_000, 100, () => `(eu-west holds ${JSON.stringify(seen)})`);
  mark('replicated to eu-west');

  // us-east dies; eu-west is promoted and takes three records of its own.
  await east.node(1).kill9();
  assert.equal(await promote(west.node(1)), 1);
  for (const b of west.nodes) await waitFor(`broker ${b.nodeId} to take writes`, async () => (await roleOn(b))?.readOnly === false, 5_000, 20);
  const westProducer = westAdmin('acl-west-producer').producer();
  await westProducer.connect();
  try {
    await westProducer.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: 3 }, (_, i) => ({ value: `west-${i}` })) });
  } finally {
    await westProducer.disconnect();
  }
  const westRecords = Array.from({ length: 3 }, (_, i) => `west-${i}`);
  assert.deepEqual(await westValues(TOPIC), [...eastRecords, ...westRecords]);
  mark('eu-west promoted and wrote 3 records');

  // us-east returns, learns of eu-west's epoch, and is promoted past it.
  await east.node(1).start();
  await waitFor('us-east to learn that eu-west is primary at epoch 1', async () => (await roleOn(east.node(1)))?.readOnly === true, 30_000, 50);
  assert.equal(await promote(east.node(1)), 2);
  for (const b of west.nodes) await waitFor(`eu-west broker ${b.nodeId} to learn of us-east at epoch 2`, async () => (await roleOn(b))?.readOnly === true, 20_000, 50);
  mark('us-east back and promoted to epoch 2');

  // The dry run needs no permission: it names the one divergent tail.
  const dry = await adminApi<{ sideTopic: string; partitions: Array<{ records: string; truncateAt: string }> }>(west.node(2).adminPort, 'POST', '/v1/dr/failback', { topic: TOPIC });
  assert.equal(dry.status, 200, JSON.stringify(dry.body));
  assert.equal(dry.body.sideTopic, SIDE);
  assert.deepEqual(dry.body.partitions.map((p) => p.records), ['3']);

  // Confirmed without the permissions: refused before anything changes.
  const refused = await adminApi<{ error: { code: string; message: string } }>(west.node(2).adminPort, 'POST', '/v1/dr/failback', { topic: TOPIC, confirm: true });
  assert.equal(refused.status, 400, JSON.stringify(refused.body));
  const message = refused.body.error.message;
  assert.match(message, /as User:ANONYMOUS/);
  assert.match(message, new RegExp(`lacks Read on topic ${TOPIC} and Write on topic ${SIDE.replace(/\./g, '\\.')}`));
  assert.match(message, /nothing was changed/);
  const commands = [...message.matchAll(/meridian acl add [^;)]+/g)].map((m) => m[0].trim());
  assert.deepEqual(commands, [
    `meridian acl add --allow-principal User:ANONYMOUS --operation Read --topic ${TOPIC}`,
    `meridian acl add --allow-principal User:ANONYMOUS --operation Write --topic ${SIDE}`,
  ]);
  for (const b of west.nodes) {
    const r = await roleOn(b);
    assert.deepEqual([r?.primary, r?.epoch, r?.phase, r?.readOnly], [WEST, 1, 'promoted', true], `broker ${b.nodeId}: the role is as before`);
  }
  assert.deepEqual(await westValues(TOPIC), [...eastRecords, ...westRecords], 'eu-west still holds its records');
  const sideBefore = await adminApi<unknown>(west.node(1).adminPort, 'GET', `/v1/topics/${SIDE}`);
  assert.equal(sideBefore.status, 404, 'no side topic was created');
  mark('refused up front, nothing changed');

  // The commands it named, run as printed, against eu-west's admin API.
  for (const command of commands) {
    const args = command.split(' ').slice(1);
    const r = spawnSync(process.execPath, [BIN, ...args, '--admin', `127.0.0.1:${west.node(1).adminPort}`], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${command}: ${r.stderr}`);
  }

  // The same failback completes.
  const done = await adminApi<{ completed: boolean; sideTopic: string; partitions: Array<{ records: string; truncateAt: string }> }>(west.node(2).adminPort, 'POST', '/v1/dr/failback', { topic: TOPIC, confirm: true });
  assert.equal(done.status, 200, JSON.stringify(done.body));
  assert.equal(done.body.completed, true);
  // The cut the dry run named (past the replication marker and us-east's 5 records).
  assert.deepEqual(done.body.partitions.map((p) => [p.truncateAt, p.records]), [[dry.body.partitions[0]!.truncateAt, '3']]);
  assert.deepEqual(await westValues(SIDE), westRecords, 'the side topic holds exactly the divergent records');
  assert.deepEqual(await westValues(TOPIC), eastRecords, 'eu-west holds us-east records only');
  await west.waitLogsIdentical(TOPIC, 0, [1, 2]);
  for (const b of west.nodes) {
    await waitFor(`broker ${b.nodeId} to follow us-east at epoch 2`, async () => {
      const r = await roleOn(b);
      return r?.phase === 'following' && r.primary === EAST && r.epoch === 2 && r.readOnly;
    }, 5_000, 20);
  }
  assert.deepEqual(await eastValues(), eastRecords, 'us-east never received the divergent records');
  mark('failback completed after the grants');
});
