/**
 * Geo-replication between two region clusters (issue 16): us-east and eu-west, three
 * `meridian broker --config FILE` processes each on its own real etcd
 * (test/helpers/cluster.ts), replicating a topic of two partitions, RF 3 and
 * min.insync.replicas 2, active-active (mesh). Each registry lists the other region's three
 * brokers as bootstrap addresses.
 *
 * Two idempotent producers write the whole time: kcat (librdkafka, enable.idempotence,
 * acks=all, partitioned by librdkafka) in us-east and KafkaJS (idempotent, acks -1, both
 * partitions) in eu-west. Partition 0's leader is SIGKILLed in both regions at once, which
 * moves at the same time the sending side (its workers) and the receiving side (the remote
 * partition's leader, its dedup state) of partition 0 in both directions; then both restart.
 *
 * Afterwards, what a user checks, read with kcat and with KafkaJS in each region: every
 * acknowledged record is present exactly once in both regions; both regions hold the same
 * records; each origin partition's records are in the remote partition in the origin's
 * order; each replica set's logs are byte-identical.
 *
 * The second test pins down why a worker sends only what every in-sync replica holds: with
 * partition 1's followers in us-east stopped (SIGSTOP), records produced with acks=1 stay
 * above the high watermark and are not sent; the leader is then SIGKILLed, a follower takes
 * over without (some of) them and new records take their offsets. Both regions must end up with the
 * same records, the new ones included (had the old ones been sent, eu-west would drop the
 * new ones as duplicates of their origin offsets, or the link would stop as diverged).
 *
 * The third grows the topic with CreatePartitions in us-east: eu-west (a cluster) grows its
 * own region-wide at the next handshake, and the new partition's records arrive once, in order.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { kafkajsLoop, kcatLoop } from '../helpers/cluster-producers.js';
import { TestCluster, waitFor } from '../helpers/cluster.js';
import { readTopicToEnd } from '../helpers/kafkajs-collect.js';
import { kcat } from '../helpers/kcat.js';
import { parseKcatJson } from '../helpers/kcat-json.js';
import { freePort } from '../helpers/regions.js';

const TOPIC = 'geo';
const PARTITIONS = 2;
const EAST = 'us-east';
const WEST = 'eu-west';

let east: TestCluster;
let west: TestCluster;

/** n distinct free ports. */
async function ports(n: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < n) out.add(await freePort());
  return [...out];
}

before(async () => {
  const [e1, e2, e3, w1, w2, w3] = await ports(6);
  const replication = {
    // Each region is reached through any of its brokers; the link follows Metadata.
    regions: [
      { name: EAST, address: `127.0.0.1:${e1},127.0.0.1:${e2},127.0.0.1:${e3}` },
      { name: WEST, address: [`127.0.0.1:${w1}`, `127.0.0.1:${w2}`, `127.0.0.1:${w3}`] },
    ],
    policies: [{ name: 'geo-mesh', topics: TOPIC, topology: 'mesh', regions: [EAST, WEST] }],
    // A failover's retries within a second rather than the default 10 s ceiling.
    retry: { initialMs: 50, maxMs: 500 },
  };
  // One region after the other: six brokers starting at once on a small machine can miss
  // the harness's start-up wait.
  // us-east: the default lease (cluster.leaseTtlMs, 3 s) and a 5 s replica lag, so that the second test can hold
  // two followers stopped for a moment without the region counting them out.
  east = await TestCluster.start({ region: EAST, ports: [e1, e2, e3], minInsyncReplicas: 2, leaseTtlMs: null, replicaLagTimeMaxMs: 5000, config: { replication } });
  west = await TestCluster.start({ region: WEST, ports: [w1, w2, w3], minInsyncReplicas: 2, config: { replication } });
});

after(async () => {
  await Promise.allSettled([east?.close(), west?.close()]);
});

/** Records the region's replicator workers have had acknowledged by the other region (its brokers' admin API). */
async function sentRecords(cluster: TestCluster): Promise<number> {
  let n = 0;
  for (const b of cluster.running) {
    const status = (await (await fetch(`http://127.0.0.1:${b.adminPort}/v1/replication/status`)).json()) as { workers: Array<{ sentRecords: number }> };
    for (const w of status.workers) n += w.sentRecords;
  }
  return n;
}

interface Read {
  partition: number;
  offset: number;
  value: string;
}

/** Every record of the topic in one region as kcat reads it (to the high watermarks), in log order per partition. */
async function readWithKcat(cluster: TestCluster): Promise<Read[]> {
  const r = await kcat(['-b', cluster.bootstrap.join(','), '-C', '-J', '-t', TOPIC, '-o', 'beginning', '-e'], undefined, 30_000);
  assert.equal(r.code, 0, `kcat -C in ${cluster.region} exited ${r.code}: ${r.stderr.slice(-2000)}`);
  return parseKcatJson(r.stdout)
    .map((m) => ({ partition: m.partition, offset: m.offset, value: m.payload!.toString() }))
    .sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}

/** Values of `reads` in partition `p` produced in the region whose values start with `prefix`, in log order. */
function originOrder(reads: readonly Read[], p: number, prefix: string): string[] {
  return reads.filter((r) => r.partition === p && r.value.startsWith(prefix)).map((r) => r.value);
}

function counts(values: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return m;
}

test('two three-broker regions replicating active-active while partition 0 leader is SIGKILLed in each: every acknowledged record exactly once in both, in origin order', async (t) => {
  const t0 = Date.now();
  const mark = (what: string) => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  // The topic is created in us-east; its handshake creates it in eu-west through that
  // region's controller, unless the creation below gets there first (then it already exists).
  for (const c of [east, west]) {
    const admin = new Kafka({ clientId: 'georep-admin', brokers: c.bootstrap, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS, replicationFactor: 3, configEntries: [{ name: 'min.insync.replicas', value: '2' }] }], waitForLeaders: true });
    } finally {
      await admin.disconnect();
    }
  }
  for (const c of [east, west]) for (let p = 0; p < PARTITIONS; p++) await c.partition(TOPIC, p, (v) => v.replicas.length === 3 && v.isr.length === 3);
  mark('topic geo (2 partitions, RF 3) in both regions');

  const kc = kcatLoop({ bootstrap: east.bootstrap, topic: TOPIC, prefix: 'e-' });
  const kjs = kafkajsLoop({ bootstrap: west.bootstrap, topic: TOPIC, prefix: 'w-', clientId: 'georep-kafkajs', partitionOf: (n) => n % PARTITIONS });
  const killed: string[] = [];
  try {
    // Traffic both ways before the kills: each region holds some of the other's records.
    await waitFor('KafkaJS acknowledgements in eu-west', () => kjs.acked.length >= 60, 30_000, 20);
    // (Not read with kcat -e here: under steady production a partition may never look ended.)
    await waitFor('records of each region replicated to the other', async () => (await sentRecords(east)) > 0 && (await sentRecords(west)) > 0, 30_000, 200);
    mark(`replicating both ways (${kjs.acked.length} acknowledged in eu-west, ${kc.sent.length} sent in us-east)`);

    const before = await Promise.all([east, west].map((c) => c.partition(TOPIC, 0, (v) => v.isr.length === 3)));
    const victims = [east.node(before[0]!.leader), west.node(before[1]!.leader)];
    await Promise.all(victims.map((v) => v.kill9()));
    killed.push(`${EAST} broker ${victims[0]!.nodeId}`, `${WEST} broker ${victims[1]!.nodeId}`);
    mark(`SIGKILLed partition 0's leaders: ${killed.join(', ')}`);
    const afterKill = await Promise.all([east, west].map((c, i) => c.partition(TOPIC, 0, (v) => v.leader !== victims[i]!.nodeId && v.leaderEpoch > before[i]!.leaderEpoch)));
    mark(`new leaders of partition 0: ${EAST} broker ${afterKill[0]!.leader}, ${WEST} broker ${afterKill[1]!.leader}`);
    const ackedAtFailover = kjs.acked.length;
    await Promise.all([waitFor('KafkaJS acknowledgements from the new leaders', () => kjs.acked.length >= ackedAtFailover + 40, 30_000, 20), ...victims.map((v) => v.start())]);
    await Promise.all([east.waitMembers([1, 2, 3]), west.waitMembers([1, 2, 3])]);
    mark('both brokers restarted and registered');
    // The restarted brokers catch up (and may lead again) under traffic.
    const [sentAtRestart, ackedAtRestart] = [kc.sent.length, kjs.acked.length];
    await waitFor('more records after the restarts', () => kc.sent.length >= sentAtRestart + 150 && kjs.acked.length >= ackedAtRestart + 40, 30_000, 20);
  } finally {
    await kjs.stop();
  }
  const kcatEnd = await kc.stop();
  assert.equal(kcatEnd.code, 0, `kcat -P exited ${kcatEnd.code}; stderr:\n${kcatEnd.stderr.slice(-4000)}`);
  assert.doesNotMatch(kcatEnd.stderr, /[Dd]elivery failed|Failed to produce|[Ff]atal/, `kcat -P reported a failed delivery:\n${kcatEnd.stderr.slice(-4000)}`);
  mark(`producers stopped: ${kc.sent.length} delivered by kcat in ${EAST}, ${kjs.acked.length} acknowledged to KafkaJS in ${WEST}`);

  // Both regions converge on the same records.
  const acknowledged = [...kc.sent, ...kjs.acked];
  let reads: [Read[], Read[]] = [[], []];
  let missing = '';
  await waitFor(
    'every acknowledged record in both regions',
    async () => {
      reads = (await Promise.all([readWithKcat(east), readWithKcat(west)])) as [Read[], Read[]];
      const sets = reads.map((r) => new Set(r.map((x) => x.value)));
      const lacking = [EAST, WEST].map((name, i) => `${name} lacks ${acknowledged.filter((v) => !sets[i]!.has(v)).length}`);
      missing = lacking.join(', ');
      return acknowledged.every((v) => sets[0]!.has(v) && sets[1]!.has(v)) && sets[0]!.size === sets[1]!.size;
    },
    40_000,
    250,
    () => `(${missing}; ${reads[0].length} records in ${EAST}, ${reads[1].length} in ${WEST})`,
  );
  mark(`converged: ${reads[0].length} records in ${EAST}, ${reads[1].length} in ${WEST}`);

  for (const [i, name] of [EAST, WEST].entries()) {
    const c = counts(reads[i]!.map((r) => r.value));
    assert.deepEqual([...c].filter(([, n]) => n > 1), [], `kcat in ${name}: no record is stored twice`);
    assert.equal(reads[i]!.length, reads[1 - i]!.length, `${name} holds as many records as the other region`);
  }
  // Origin order per origin partition: a partition's own records, in its log order, are the
  // remote partition's records of that origin, in the same order.
  for (let p = 0; p < PARTITIONS; p++) {
    assert.deepEqual(originOrder(reads[1], p, 'e-'), originOrder(reads[0], p, 'e-'), `partition ${p}: ${EAST}'s records reach ${WEST} in ${EAST}'s order`);
    assert.deepEqual(originOrder(reads[0], p, 'w-'), originOrder(reads[1], p, 'w-'), `partition ${p}: ${WEST}'s records reach ${EAST} in ${WEST}'s order`);
    // ...which is each producer's own order.
    for (const prefix of ['e-', 'w-']) {
      const seq = originOrder(reads[0], p, prefix).map((v) => Number(v.slice(2)));
      const at = seq.findIndex((x, j) => j > 0 && x <= seq[j - 1]!);
      assert.equal(at, -1, `partition ${p}: ${prefix} values in produce order (at #${at}: ${seq[at - 1]} then ${seq[at]})`);
    }
  }
  assert.ok(reads[0].some((r) => r.partition === 0 && r.value.startsWith('w-')) && reads[1].some((r) => r.partition === 0 && r.value.startsWith('e-')), 'partition 0 carried data both ways');

  // KafkaJS reads the same records in each region (both regions at once).
  const kafkajsReads = await Promise.all([east, west].map((c) => readTopicToEnd(c.bootstrap[0]!, TOPIC, { timeoutMs: 30_000 })));
  for (const [i, c] of [east, west].entries()) {
    const values = kafkajsReads[i]!.map((m) => m.value!.toString());
    assert.deepEqual([...counts(values)].filter(([, n]) => n > 1), [], `KafkaJS in ${c.region}: no record twice`);
    assert.deepEqual([...values].sort(), reads[i]!.map((r) => r.value).sort(), `KafkaJS reads in ${c.region} what kcat reads`);
  }

  // Within each region the replicas agree byte for byte (markers included): the receiving
  // leader's appends were replicated like any produce.
  await Promise.all(
    [east, west].flatMap((c) =>
      Array.from({ length: PARTITIONS }, async (_, p) => {
        const s = await c.partition(TOPIC, p, (v) => v.isr.length === 3);
        await c.waitLogsIdentical(TOPIC, p, s.isr);
      }),
    ),
  );
  assert.deepEqual(kjs.failed, [], `KafkaJS gave up on sends while ${killed.join(' and ')} were killed`);
  mark('checked');
});

test('records above the high watermark are not sent: a leader SIGKILLed with them loses them in both regions, and the records that reuse their offsets reach both', async (t) => {
  const t0 = Date.now();
  const mark = (what: string) => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  const P = 1;
  const before = await east.partition(TOPIC, P, (v) => v.isr.length === 3);
  const leader = east.node(before.leader);
  const followers = before.replicas.filter((id) => id !== leader.nodeId).map((id) => east.node(id));
  // Two rounds: the first may still reach the followers in the answer to the fetch each had
  // parked at the leader (delivered into their socket buffers while they are stopped); the
  // second, produced once no fetch is parked, stays on the leader alone.
  const held = Array.from({ length: 20 }, (_, i) => `h1-${i}`);
  const leaderOnly = Array.from({ length: 20 }, (_, i) => `h2-${i}`);
  const fresh = Array.from({ length: 30 }, (_, i) => `f-${i}`);
  const stopped: number[] = [];
  try {
    for (const f of followers) {
      process.kill(f.pid!, 'SIGSTOP');
      stopped.push(f.pid!);
    }
    // acks=1: the leader alone has them; the high watermark cannot pass them.
    for (const values of [held, leaderOnly]) {
      const r = await kcat(['-P', '-b', leader.bootstrap, '-t', TOPIC, '-p', String(P), '-X', 'acks=1'], values.join('\n') + '\n', 20_000);
      assert.equal(r.code, 0, `kcat -P acks=1 exited ${r.code}: ${r.stderr.slice(-2000)}`);
    }
    // The leader's worker has them in its backlog and waits (or, were it to send them,
    // eu-west holds them: then the rest of the test fails, as it must).
    await waitFor(
      `the us-east leader's worker for ${TOPIC}-${P} to hold back the acks=1 records (or to have sent them)`,
      async () => {
        const status = (await (await fetch(`http://127.0.0.1:${leader.adminPort}/v1/replication/status`)).json()) as { workers: Array<{ topic: string; partition: number; state: string; backlogRecords: number }> };
        const w = status.workers.find((x) => x.topic === TOPIC && x.partition === P);
        if (w !== undefined && w.state === 'idle' && w.backlogRecords >= held.length + leaderOnly.length) return true;
        const westValues = new Set((await readWithKcat(west)).map((x) => x.value));
        return leaderOnly.every((v) => westValues.has(v));
      },
      10_000,
      50,
    );
    await leader.kill9();
  } finally {
    for (const pid of stopped) process.kill(pid, 'SIGCONT');
  }
  mark(`followers ${followers.map((f) => f.nodeId).join(', ')} stopped while ${held.length + leaderOnly.length} acks=1 records went to leader ${leader.nodeId}; leader SIGKILLed`);
  const after = await east.partition(TOPIC, P, (v) => v.leader !== leader.nodeId && v.leaderEpoch > before.leaderEpoch);
  mark(`broker ${after.leader} leads ${TOPIC}-${P} (epoch ${after.leaderEpoch})`);
  // (The killed leader stays down: what it alone held is gone with it, as the new leader's
  // log already says; a restart would only truncate it away.)
  const r = await kcat(['-P', '-b', east.bootstrap.join(','), '-t', TOPIC, '-p', String(P), '-X', 'enable.idempotence=true', '-X', 'acks=all'], fresh.join('\n') + '\n', 30_000);
  assert.equal(r.code, 0, `kcat -P acks=all exited ${r.code}: ${r.stderr.slice(-2000)}`);
  mark(`${fresh.length} records produced on the new leader`);

  let reads: Read[][] = [[], []];
  await waitFor(
    'both regions to hold the same records, the new ones included',
    async () => {
      reads = await Promise.all([readWithKcat(east), readWithKcat(west)]);
      const sets = reads.map((x) => new Set(x.map((y) => y.value)));
      return fresh.every((v) => sets[0]!.has(v) && sets[1]!.has(v)) && sets[0]!.size === sets[1]!.size && [...sets[0]!].every((v) => sets[1]!.has(v));
    },
    30_000,
    250,
    () => `(${EAST} has ${reads[0]!.length} records, ${WEST} ${reads[1]!.length}; the new records in ${WEST}: ${fresh.filter((v) => reads[1]!.some((x) => x.value === v)).length} of ${fresh.length}; ${WEST}'s link status: see its brokers' logs)`,
  );
  for (const [i, name] of [EAST, WEST].entries()) {
    assert.deepEqual([...counts(reads[i]!.map((x) => x.value))].filter(([, n]) => n > 1), [], `${name}: no record twice`);
    assert.deepEqual(originOrder(reads[i]!, P, 'f-'), fresh, `${name}: the new records once each, in order`);
    assert.equal(reads[i]!.filter((x) => x.value.startsWith('h2-')).length, 0, `${name}: the acks=1 records the killed leader alone held are in neither region`);
  }
  mark('both regions agree');
});

test('a topic grown with CreatePartitions in one region grows in the other region cluster, and the new partition replicates', async () => {
  // Every broker back (the tests before killed some): new partitions need RF 3 live brokers.
  for (const c of [east, west]) {
    for (const b of c.nodes) if (!b.running) await b.start();
    await c.waitMembers([1, 2, 3]);
  }
  const admin = new Kafka({ clientId: 'georep-grow', brokers: east.bootstrap, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createPartitions({ topicPartitions: [{ topic: TOPIC, count: PARTITIONS + 1 }] });
  } finally {
    await admin.disconnect();
  }
  const P = PARTITIONS;
  await east.partition(TOPIC, P, (v) => v.isr.length === 3);
  const values = Array.from({ length: 20 }, (_, i) => `grown-${i}`);
  const put = await kcat(['-P', '-b', east.bootstrap.join(','), '-t', TOPIC, '-p', String(P), '-X', 'acks=all'], values.join('\n') + '\n', 30_000);
  assert.equal(put.code, 0, put.stderr.slice(-2000));
  // eu-west grows its topic region-wide at the next handshake and receives the partition.
  await west.partition(TOPIC, P, (v) => v.isr.length === 3, { timeoutMs: 60_000 });
  const got = await waitFor('eu-west to hold the new partition\'s records', async () => {
    const r = await kcat(['-b', west.bootstrap.join(','), '-C', '-J', '-t', TOPIC, '-p', String(P), '-o', 'beginning', '-e'], undefined, 30_000);
    if (r.code !== 0) return false;
    const read = parseKcatJson(r.stdout).map((m) => m.payload!.toString());
    return read.length >= values.length ? read : false;
  }, 60_000, 200);
  assert.deepEqual(got, values, 'once each, in order');
});

/** GET on one broker's admin API, parsed. */
async function adminGet<T>(b: { adminPort: number }, path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`http://127.0.0.1:${b.adminPort}${path}`);
  return { status: res.status, body: (await res.json()) as T };
}

/** Each partition's high watermark in a region, asked of `brokers`. */
async function highWatermarks(brokers: readonly string[]): Promise<Map<number, string>> {
  const admin = new Kafka({ clientId: 'georep-dr-hw', brokers: [...brokers], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    return new Map((await admin.fetchTopicOffsets(TOPIC)).map((p) => [p.partition, p.high]));
  } finally {
    await admin.disconnect();
  }
}

/** The group's committed offsets per partition in a region (KafkaJS OffsetFetch at the group's coordinator there). */
async function committedOffsets(brokers: readonly string[], groupId: string): Promise<Map<number, string>> {
  const admin = new Kafka({ clientId: 'georep-dr-offsets', brokers: [...brokers], logLevel: logLevel.NOTHING, retry: { retries: 2, initialRetryTime: 100 } }).admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId, topics: [TOPIC] });
    return new Map(t.partitions.map((p) => [p.partition, p.offset]));
  } finally {
    await admin.disconnect();
  }
}

function sameOffsets(a: Map<number, string>, b: Map<number, string>): boolean {
  return a.size === b.size && [...a].every(([p, o]) => b.get(p) === o);
}

type SyncView = { region: string; connected: boolean; lastSuccessAt: number | null; lastError: string | null; brokers: Array<{ address: string }> };

test('disaster recovery between region clusters: a group\'s commits in us-east reach eu-west translated, and keep arriving with the eu-west broker listed first SIGKILLed; group views cover the whole region', async (t) => {
  const t0 = Date.now();
  const mark = (what: string) => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  for (const c of [east, west]) {
    for (const b of c.nodes) if (!b.running) await b.start();
    await c.waitMembers([1, 2, 3]);
  }
  const GROUP = 'georep-dr-group';
  const consumer = new Kafka({ clientId: 'georep-dr', brokers: east.bootstrap, logLevel: logLevel.NOTHING }).consumer({ groupId: GROUP });
  await consumer.connect();
  const victim = west.node(1);
  try {
    await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
    // KafkaJS commits after each batch (no autoCommitInterval/threshold).
    await consumer.run({ eachMessage: async () => {} });
    const eastAtEnd = async () => {
      const hw = await highWatermarks(east.bootstrap);
      return sameOffsets(await committedOffsets(east.bootstrap, GROUP), hw) ? hw : false;
    };
    await waitFor('the group in us-east to commit every partition at its end', eastAtEnd, 30_000, 200);
    // Both regions hold the same records (the tests before): the commit at us-east's end
    // translates to eu-west's end, what a consumer moving there resumes from.
    const westAtEnd = async (brokers: readonly string[]) => {
      const hw = await highWatermarks(brokers);
      return sameOffsets(await committedOffsets(brokers, GROUP), hw) ? hw : false;
    };
    const translated = await waitFor('eu-west to answer the translated offsets (its ends)', () => westAtEnd(west.bootstrap), 30_000, 200);
    mark(`translated in eu-west: ${JSON.stringify([...translated])}`);

    // us-east's registry lists eu-west's node 1 first: the offset sync, probes and the data
    // links must carry on through the other two.
    assert.equal(victim.bootstrap, west.bootstrap[0]);
    await victim.kill9();
    const killedAt = Date.now();
    const survivors = west.running.map((b) => b.bootstrap);
    const westBefore = await waitFor('eu-west ends from the survivors', () => highWatermarks(survivors), 30_000, 200);
    const more = Array.from({ length: 30 }, (_, i) => `dr-${i}`);
    const put = await kcat(['-P', '-b', east.bootstrap.join(','), '-t', TOPIC, '-X', 'acks=all'], more.join('\n') + '\n', 30_000);
    assert.equal(put.code, 0, put.stderr.slice(-2000));
    const total = (m: Map<number, string>) => [...m.values()].reduce((n, o) => n + Number(o), 0);
    await waitFor('the new records (and their markers) in eu-west', async () => total(await highWatermarks(survivors)) >= total(westBefore) + more.length, 60_000, 200);
    await waitFor('the group in us-east to commit the new ends', eastAtEnd, 30_000, 200);
    const after = await waitFor('eu-west to answer the new translated offsets without its first broker', () => westAtEnd(survivors), 60_000, 200);
    assert.ok(total(after) >= total(translated) + more.length, `eu-west's translated offsets moved past the new records: ${JSON.stringify([...translated])} -> ${JSON.stringify([...after])}`);
    mark(`translated in eu-west after the kill: ${JSON.stringify([...after])}`);

    // Every us-east broker's offset sync to eu-west succeeds again (the dead broker drops out
    // of eu-west's Metadata once its lease lapses).
    for (const b of east.running) {
      await waitFor(`us-east broker ${b.nodeId}: offset sync to eu-west healthy`, async () => {
        const { body } = await adminGet<{ offsetSync: SyncView[] }>(b, '/v1/dr');
        const s = body.offsetSync.find((x) => x.region === WEST);
        return s !== undefined && s.connected && s.lastError === null && (s.lastSuccessAt ?? 0) > killedAt && s.brokers.every((x) => x.address !== victim.bootstrap) ? s : false;
      }, 30_000, 200);
    }
    mark('offset sync healthy from every us-east broker');

    // Group views: the group is coordinated by one us-east broker; every broker lists and describes it.
    type Listed = { groupId: string; members: number; coordinator: number | null };
    const local = await Promise.all(east.running.map(async (b) => (await adminGet<Listed[]>(b, '/v1/groups?scope=broker')).body.filter((g) => g.groupId === GROUP)));
    const coordinators = local.flat().map((g) => g.coordinator);
    assert.equal(coordinators.length, 1, `exactly one us-east broker coordinates ${GROUP}: ${JSON.stringify(local)}`);
    for (const b of east.running) {
      const listed = (await adminGet<Listed[]>(b, '/v1/groups')).body.find((g) => g.groupId === GROUP);
      assert.deepEqual({ members: listed?.members, coordinator: listed?.coordinator }, { members: 1, coordinator: coordinators[0] }, `GET /v1/groups on us-east broker ${b.nodeId}`);
      const described = await adminGet<{ members: unknown[]; offsets: Array<{ partition: number; committedOffset: string }>; coordinator: number }>(b, `/v1/groups/${GROUP}`);
      assert.equal(described.status, 200, `GET /v1/groups/${GROUP} on broker ${b.nodeId}: ${JSON.stringify(described.body)}`);
      assert.equal(described.body.members.length, 1);
      assert.equal(described.body.coordinator, coordinators[0]);
    }
    // In eu-west every surviving broker answers the group's DR state from its coordinator there.
    for (const b of west.running) {
      const ids = (await adminGet<string[]>(b, '/v1/dr/groups')).body;
      assert.ok(ids.includes(GROUP), `GET /v1/dr/groups on eu-west broker ${b.nodeId}: ${JSON.stringify(ids)}`);
      const { status, body } = await adminGet<{ coordinator: number | null; partitions: Array<{ partition: number; peer: string | null; resolved: string }> }>(b, `/v1/dr/groups/${GROUP}`);
      assert.equal(status, 200);
      assert.notEqual(body.coordinator, null, `eu-west broker ${b.nodeId}: answered by the coordinator`);
      assert.deepEqual(new Map(body.partitions.map((p) => [p.partition, p.resolved])), after, `eu-west broker ${b.nodeId}: resolved offsets`);
      assert.ok(body.partitions.every((p) => p.peer === EAST));
    }
    mark('group views region-wide');
  } finally {
    await consumer.disconnect();
    if (!victim.running) await victim.start();
  }
});
