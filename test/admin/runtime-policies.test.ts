/**
 * Runtime replication policy change through the admin API, across two regions in their own
 * processes: they start one-way (us-east → eu-west), a dry run says which links would start,
 * a PUT to each region makes it a mesh, after which records produced in each region reach the
 * other exactly once (assertRegionHolds: KafkaJS and kcat), GET /v1/regions shows both
 * regions agreeing, and a restart keeps the runtime set (it wins over the YAML). DELETE goes
 * back to the config file's set, and a region that disagrees is flagged.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { Regions, waitCaughtUp, type Region } from '../helpers/regions.js';
import { assertRegionHolds, emptyProduced, type Produced } from '../helpers/replication-check.js';
import { waitFor } from '../helpers/wait.js';
import { httpTransport } from './admin-client.js';

const NAMES = ['us-east', 'eu-west'];
const TOPIC = 'payments';
const PARTITIONS = 2;
const ONE_WAY = [{ name: 'dr', topics: [TOPIC], topology: 'one-way', source: 'us-east', targets: ['eu-west'] }];
const MESH = [{ name: 'active-active', topics: [TOPIC], topology: 'mesh', regions: NAMES }];

const api = (r: Region) => httpTransport(`http://127.0.0.1:${r.adminPort}`);

async function produce(r: Region, produced: Map<string, Produced>, tag: string): Promise<void> {
  const producer = new Kafka({ clientId: `${r.name}-producer`, brokers: [r.bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 10, initialRetryTime: 100 } }).producer({ idempotent: true });
  await producer.connect();
  try {
    for (let p = 0; p < PARTITIONS; p++) {
      const msgs = Array.from({ length: 50 }, (_, i) => ({ key: Buffer.from(`k${i}`), value: Buffer.from(`${r.name}/${tag}/p${p}/${i}`) }));
      produced.get(r.name)!.get(p)!.push(...msgs);
      await producer.send({ topic: TOPIC, acks: -1, messages: msgs.map((m) => ({ ...m, partition: p })) });
    }
  } finally {
    await producer.disconnect();
  }
}

test('one-way turned into a mesh at run time through the API: data flows both ways exactly once, and the change survives a restart', { timeout: 240_000 }, async (t) => {
  const regions = await Regions.create({ names: NAMES, policies: ONE_WAY, admin: true, overrides: { topics: { autoCreate: false } } });
  t.after(() => regions.close());
  await regions.start();
  const [us, eu] = NAMES.map((n) => regions.get(n));

  // Created in us-east; the one-way link creates it in eu-west with the same partitions.
  assert.equal((await api(us)('POST', '/v1/topics', { name: TOPIC, partitions: PARTITIONS })).status, 201);
  await waitFor('the topic in eu-west', async () => (await api(eu)('GET', `/v1/topics/${TOPIC}`)).body.partitions?.length === PARTITIONS);
  const before = await api(us)('GET', '/v1/replication/policies');
  assert.equal(before.body.source, 'config');

  // Dry run on each side: eu-west would start sending the topic back; us-east keeps its link.
  const euPlan: any = (await api(eu)('POST', '/v1/replication/policies/validate', { policies: MESH })).body;
  assert.deepEqual(euPlan, { valid: true, errors: [], fingerprint: euPlan.fingerprint, changes: { start: [{ topic: TOPIC, remote: 'us-east', policy: 'active-active' }], stop: [] } });
  const usPlan: any = (await api(us)('POST', '/v1/replication/policies/validate', { policies: MESH })).body;
  assert.deepEqual(usPlan.changes, { start: [{ topic: TOPIC, remote: 'eu-west', policy: 'active-active' }], stop: [{ topic: TOPIC, remote: 'eu-west', policy: 'dr' }] });
  assert.equal(usPlan.fingerprint, euPlan.fingerprint);

  const produced = new Map<string, Produced>(NAMES.map((n) => [n, emptyProduced(PARTITIONS)]));
  await produce(us, produced, 'before');
  await waitCaughtUp([us, eu]);

  // Only us-east so far: eu-west is flagged as disagreeing from us-east's view.
  const applied = await api(us)('PUT', '/v1/replication/policies', { policies: MESH });
  assert.equal(applied.status, 200, JSON.stringify(applied.body));
  assert.equal(applied.body.source, 'runtime');
  const split = (await api(us)('GET', '/v1/regions')).body;
  assert.deepEqual(split.map((r: any) => [r.name, r.policiesAgree]), [['us-east', true], ['eu-west', false]]);
  assert.equal((await api(eu)('PUT', '/v1/replication/policies', { policies: MESH })).status, 200);
  for (const r of [us, eu]) {
    const view: any[] = (await api(r)('GET', '/v1/regions')).body;
    const agreed: unknown[] = NAMES.map((n) => [n, euPlan.fingerprint as string, true]);
    assert.deepEqual(view.map((x: any) => [x.name, x.fingerprint, x.policiesAgree]), agreed);
  }

  await produce(eu, produced, 'after');
  await produce(us, produced, 'after');
  await waitCaughtUp([us, eu]);
  for (const r of [us, eu]) await assertRegionHolds(r.name, r.bootstrap, TOPIC, produced);
  const status = (await api(eu)('GET', '/v1/replication/status')).body;
  assert.deepEqual(status.links.map((l: any) => [l.remote, l.policy, l.topic, l.partitions]), [['us-east', 'active-active', TOPIC, PARTITIONS]]);

  // A restart keeps the runtime set: it wins over the YAML's one-way policy, and says so.
  await eu.stop();
  await eu.start();
  const kept = (await api(eu)('GET', '/v1/replication/policies')).body;
  assert.equal(kept.source, 'runtime');
  assert.deepEqual(kept.policies, MESH);
  assert.ok(eu.logLines.some((l) => l.includes('replication policies from the runtime set')), 'the restarted region logs which policies it used');
  await produce(eu, produced, 'restarted');
  await waitCaughtUp([us, eu]);
  for (const r of [us, eu]) await assertRegionHolds(r.name, r.bootstrap, TOPIC, produced);

  // DELETE goes back to the config file's one-way set on eu-west: it stops sending.
  const reverted = (await api(eu)('DELETE', '/v1/replication/policies')).body;
  assert.equal(reverted.source, 'config');
  assert.equal(reverted.fingerprint, before.body.fingerprint);
  await waitFor('eu-west without workers', async () => (await api(eu)('GET', '/v1/replication/status')).body.workers.length === 0);
  assert.equal((await api(us)('GET', '/v1/regions')).body.find((r: any) => r.name === 'eu-west').policiesAgree, false);
});
