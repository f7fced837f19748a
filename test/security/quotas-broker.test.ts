/**
 * Client quotas against a real broker with a SASL_PLAINTEXT listener and real KafkaJS
 * clients, one principal each:
 * - alice gets a 1 MiB/s producer quota through the admin API and produces as fast as she
 *   can for 20 s while bob, with no quota, does the same: alice's acknowledged bytes over
 *   the 20 s are within 10% of 1 MiB/s, bob's several times that; every send of alice's
 *   resolved (no error), her client logged the throttle times it honoured (KIP-219) and the
 *   broker counts her throttle time (admin API and the documented /metrics series), while
 *   bob's client never saw a throttle;
 * - carol gets a 512 KiB/s consumer quota through the CLI and consumes a preloaded topic:
 *   her rate over 8 s is within 15% of it;
 * - dave gets a request-rate quota of 25/s: 100 single-record sends, unthrottled a fraction
 *   of a second, take about 4 s, and none fails;
 * - erin's acks=0 produces get no response, so no throttle time reaches her client: the
 *   broker's muting alone holds her next request back.
 * Timing-based: rates are measured over the whole run, with bounds from the issue.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import { Kafka, logLevel, type Producer } from 'kafkajs';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { meridian } from '../helpers/cli-run.js';
import { registerSecret } from '../helpers/secrets.js';

const MiB = 1024 * 1024;
const ADMIN_PASSWORD = 'quota-admin-pw';
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin'] as const;
const passwordOf = (user: string) => `${user}-quota-pw`;
// The end-of-run check (zz-no-secrets.test.ts) looks for them in every process's log.
registerSecret('quota test passwords', ADMIN_PASSWORD, ...USERS.map(passwordOf));

let tb: TestBroker;
let admin: string;

before(async () => {
  tb = await startBroker({
    kafka: { listeners: [{ name: 'SASL', host: '127.0.0.1', port: 0, securityProtocol: 'SASL_PLAINTEXT' }] },
    admin: { host: '127.0.0.1', port: 0 },
    security: { bootstrap: { user: 'admin', password: ADMIN_PASSWORD }, sasl: { failureDelayMs: 0 } },
    groups: { initialRebalanceDelayMs: 0 },
    // Bob writes as fast as the disk goes for 20 s: keep the directory small.
    log: { segmentBytes: '16MiB', retention: { bytes: '32MiB', checkIntervalMs: 1000 } },
  });
  for (const u of USERS) tb.broker.security.credentials.upsert(u, 'SCRAM-SHA-256', passwordOf(u));
  admin = `${tb.broker.adminAddress!.host}:${tb.broker.adminAddress!.port}`;
  const a = client('admin', ADMIN_PASSWORD).admin();
  await a.connect();
  try {
    await a.createTopics({ topics: ['alice-t', 'bob-t', 'carol-t', 'dave-t', 'erin-t'].map((topic) => ({ topic, numPartitions: 1 })) });
  } finally {
    await a.disconnect();
  }
});

after(async () => {
  await tb?.cleanup();
});

/** KafkaJS's own record of the throttle times it honoured, and any error it logged. */
interface ClientLog {
  throttles: number[];
  errors: string[];
}

function client(user: string, password = passwordOf(user), log?: ClientLog): Kafka {
  return new Kafka({
    clientId: `quota-${user}`,
    brokers: [`127.0.0.1:${tb.broker.kafkaPort}`],
    sasl: { mechanism: 'scram-sha-256', username: user, password },
    logLevel: log === undefined ? logLevel.NOTHING : logLevel.DEBUG,
    logCreator: () => (entry) => {
      if (log === undefined) return;
      const m = /^Client side throttling in effect for (\d+)ms/.exec(entry.log.message);
      if (m !== null) log.throttles.push(Number(m[1]));
      if (entry.level === logLevel.ERROR) log.errors.push(entry.log.message);
    },
  });
}

async function adminCall(method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`http://${admin}${path}`, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = await res.json();
  assert.equal(res.status, 200, `${method} ${path}: ${JSON.stringify(json)}`);
  return json;
}

/** Sends batches of `records` values of `valueBytes` with `workers` sends in flight until `until`; acknowledged value bytes and failures. */
async function produceUntil(producer: Producer, topic: string, until: number, o: { workers: number; records: number; valueBytes: number }): Promise<{ bytes: number; failures: string[] }> {
  const value = Buffer.alloc(o.valueBytes, 7);
  const messages = Array.from({ length: o.records }, () => ({ value }));
  let bytes = 0;
  const failures: string[] = [];
  await Promise.all(
    Array.from({ length: o.workers }, async () => {
      while (Date.now() < until) {
        try {
          await producer.send({ topic, acks: -1, messages });
          if (Date.now() <= until) bytes += o.records * o.valueBytes;
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    }),
  );
  return { bytes, failures };
}

test('a 1 MiB/s producer quota holds alice within 10% over 20 s while bob is unaffected; alice is throttled, never failed', { timeout: 60_000 }, async (t) => {
  const set = await adminCall('PUT', `/v1/security/quotas/${encodeURIComponent('User:alice')}`, { producerByteRate: '1MiB' });
  assert.deepEqual(set.quotas, { producerByteRate: MiB, consumerByteRate: null, requestRate: null });

  const aliceLog: ClientLog = { throttles: [], errors: [] };
  const bobLog: ClientLog = { throttles: [], errors: [] };
  const alice = client('alice', undefined, aliceLog).producer();
  const bob = client('bob', undefined, bobLog).producer();
  await Promise.all([alice.connect(), bob.connect()]);
  t.after(() => Promise.all([alice.disconnect(), bob.disconnect()]));

  const started = Date.now();
  const until = started + 20_000;
  const shape = { workers: 2, records: 4, valueBytes: 16 * 1024 };
  const [a, b] = await Promise.all([produceUntil(alice, 'alice-t', until, shape), produceUntil(bob, 'bob-t', until, shape)]);
  const seconds = (until - started) / 1000;
  const aliceRate = a.bytes / seconds;
  const bobRate = b.bytes / seconds;
  t.diagnostic(`alice ${(aliceRate / MiB).toFixed(3)} MiB/s (${aliceLog.throttles.length} throttles honoured), bob ${(bobRate / MiB).toFixed(2)} MiB/s`);

  assert.deepEqual(a.failures, [], 'every send of alice resolved');
  assert.deepEqual(aliceLog.errors, [], 'alice\'s client logged no error');
  assert.ok(Math.abs(aliceRate - MiB) <= 0.1 * MiB, `alice: ${(aliceRate / MiB).toFixed(3)} MiB/s, expected 1 MiB/s ± 10%`);
  assert.ok(bobRate > 3 * MiB, `bob: ${(bobRate / MiB).toFixed(2)} MiB/s, expected well above alice's quota`);
  assert.ok(aliceLog.throttles.length > 0 && aliceLog.throttles.some((ms) => ms > 0), 'alice\'s client honoured throttle times from the broker');
  assert.deepEqual(bobLog.throttles, [], 'no response to bob carried a throttle time');
  assert.deepEqual(b.failures, []);

  const status = await adminCall('GET', '/v1/security/quotas');
  const active = status.active.find((x: { principal: string }) => x.principal === 'User:alice');
  assert.ok(active.throttleSeconds.produce > 5, `the broker throttled alice for ${active.throttleSeconds.produce} s`);
  assert.ok(active.throttledResponses.produce > 0);
  assert.equal(status.active.find((x: { principal: string }) => x.principal === 'User:bob'), undefined, 'bob has no quota: no state kept for him');
  const metrics = await (await fetch(`http://${admin}/metrics`)).text();
  const m = /^meridian_quota_throttle_seconds_total\{principal="User:alice",kind="produce"[^}]*\} (\S+)$/m.exec(metrics);
  assert.ok(m !== null && Number(m[1]) > 5, 'the throttle time is in /metrics');
  assert.match(metrics, /^meridian_quota_limit\{principal="User:alice",kind="produce"[^}]*\} 1048576$/m);
  const doc = fs.readFileSync(new URL('../../src/admin/METRICS.md', import.meta.url), 'utf8');
  const families = [...new Set([...metrics.matchAll(/^# TYPE (meridian_quota_\w+) /gm)].map((f) => f[1]))];
  assert.deepEqual(families.sort(), ['meridian_quota_limit', 'meridian_quota_rate', 'meridian_quota_throttle_seconds_total']);
  for (const f of families) assert.ok(doc.includes(`| \`${f}\` |`), `${f} is documented in METRICS.md`);
});

test('a 512 KiB/s consumer quota set through the CLI holds carol within 15% over 8 s', { timeout: 60_000 }, async (t) => {
  const set = await meridian(['quota', 'set', 'User:carol', '--consumer-byte-rate', '512KiB', '--admin', admin]);
  assert.equal(set.code, 0, set.stderr);
  assert.match(set.stdout, /^User:carol: produce none \(default\), fetch 512 KiB\/s \(override\), requests none \(default\)$/m);

  // 6 MiB preloaded by the admin (no quota), more than 8 s at the quota, in 64 KiB batches:
  // a fetch returns at least one whole batch, so the batch is the rate's granularity.
  const loader = client('admin', ADMIN_PASSWORD).producer();
  await loader.connect();
  const value = Buffer.alloc(16 * 1024, 3);
  for (let i = 0; i < 96; i++) await loader.send({ topic: 'carol-t', acks: -1, messages: Array.from({ length: 4 }, () => ({ value })) });
  await loader.disconnect();

  const carolLog: ClientLog = { throttles: [], errors: [] };
  const consumer = client('carol', undefined, carolLog).consumer({ groupId: 'carol-group', maxBytesPerPartition: 64 * 1024 });
  await consumer.connect();
  t.after(() => consumer.disconnect());
  await consumer.subscribe({ topic: 'carol-t', fromBeginning: true });
  let first = 0;
  let bytes = 0;
  const window = 8_000;
  // The rate is what arrives in the `window` after the first batch (which opens it).
  await consumer.run({
    eachBatch: async ({ batch }) => {
      const now = Date.now();
      if (first === 0) {
        first = now;
        return;
      }
      if (now - first > window) return;
      for (const m of batch.messages) bytes += m.value?.length ?? 0;
    },
  });
  const deadline = Date.now() + 30_000;
  while ((first === 0 || Date.now() - first <= window) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const rate = bytes / (window / 1000);
  t.diagnostic(`carol ${(rate / 1024).toFixed(1)} KiB/s (${carolLog.throttles.length} throttles honoured)`);
  assert.ok(Math.abs(rate - 512 * 1024) <= 0.15 * 512 * 1024, `carol: ${(rate / 1024).toFixed(0)} KiB/s, expected 512 KiB/s ± 15%`);
  assert.ok(carolLog.throttles.length > 0, 'carol\'s client honoured throttle times');
  assert.deepEqual(carolLog.errors, []);
});

test('a request-rate quota of 25/s slows dave\'s 100 sends to about 4 s, and none fails', { timeout: 60_000 }, async (t) => {
  await adminCall('PUT', `/v1/security/quotas/${encodeURIComponent('User:dave')}`, { requestRate: 25 });
  const daveLog: ClientLog = { throttles: [], errors: [] };
  const producer = client('dave', undefined, daveLog).producer();
  await producer.connect();
  t.after(() => producer.disconnect());
  const started = Date.now();
  for (let i = 0; i < 100; i++) await producer.send({ topic: 'dave-t', acks: -1, messages: [{ value: `m${i}` }] });
  const elapsed = (Date.now() - started) / 1000;
  t.diagnostic(`dave: 100 sends in ${elapsed.toFixed(2)} s (${daveLog.throttles.length} throttles honoured)`);
  // 100 requests (and a few Metadata) at 25/s after one window's burst: at least 3 s.
  assert.ok(elapsed >= 3, `100 sends took ${elapsed.toFixed(2)} s`);
  assert.ok(elapsed < 15, `100 sends took ${elapsed.toFixed(2)} s`);
  assert.ok(daveLog.throttles.length > 0);
  assert.deepEqual(daveLog.errors, []);
  const status = await adminCall('GET', '/v1/security/quotas');
  const dave = status.active.find((x: { principal: string }) => x.principal === 'User:dave');
  assert.ok(dave.throttleSeconds.request > 1);
  assert.ok(dave.rates.request > 10 && dave.rates.request <= 30, `dave's request rate now ${dave.rates.request}`);
});

test('acks=0 produces earn a throttle too: the muted connection holds erin\'s next request back', { timeout: 60_000 }, async (t) => {
  await adminCall('PUT', `/v1/security/quotas/${encodeURIComponent('User:erin')}`, { producerByteRate: '256KiB' });
  const erinLog: ClientLog = { throttles: [], errors: [] };
  const producer = client('erin', undefined, erinLog).producer();
  await producer.connect();
  t.after(() => producer.disconnect());
  const value = Buffer.alloc(64 * 1024, 5);
  // 1 MiB at once, no response: about 3 s over a 256 KiB/s quota.
  for (let i = 0; i < 16; i++) await producer.send({ topic: 'erin-t', acks: 0, messages: [{ value }] });
  const started = Date.now();
  await producer.send({ topic: 'erin-t', acks: -1, messages: [{ value: 'after' }] });
  const waited = (Date.now() - started) / 1000;
  t.diagnostic(`erin's acknowledged send after 1 MiB with acks=0 took ${waited.toFixed(2)} s`);
  assert.ok(waited >= 1.5, `the next request waited ${waited.toFixed(2)} s`);
  assert.ok(waited < 12, `the next request waited ${waited.toFixed(2)} s (the cap is 11 s)`);
  assert.deepEqual(erinLog.errors, []);
});
