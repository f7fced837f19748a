/**
 * Geo-replication under faults, with every region a real broker in its own process (see
 * test/helpers/regions.ts); kcat produces. Each test ends with the same check, in every
 * region and with two independent consumers, KafkaJS and kcat (which must also agree with
 * each other): the topic holds exactly the union of what was produced in all regions,
 * every record once, each origin's records in the order they were produced, nothing lost,
 * nothing extra. Records are compared by content (their values are unique,
 * `<origin>-<partition>-<seq>:<filler>`), never by offset: offsets differ between regions
 * because replicated data is written behind markers.
 *
 * 1. The SOURCE region is kill -9'd while it is in the middle of sending a backlog (a small
 *    request size and a rate limit make "in the middle" certain), three times; meanwhile the
 *    other region keeps producing, so the killed region is also a target that was down.
 * 2. The TARGET region of a one-way link is kill -9'd mid-replication, three times, while the
 *    source keeps producing; the source's workers show 'backing-off' with an error meanwhile.
 * 3. The link itself fails: both directions of a mesh go through TCP proxies that refuse
 *    connections for a while (the workers report 'backing-off', an error and a backlog), then
 *    add 200 ms of delay, then cut every connection at random moments, all while both regions
 *    produce steadily.
 *
 * Every produce is acknowledged by all replicas (kcat -P asks acks=-1; it is also passed
 * explicitly) before its records count as produced, and only regions that are up are
 * produced to, so the expected contents are exact.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import type { WorkerStatus } from '../../src/replication/worker.js';
import { KcatClient } from '../helpers/kcat-client.js';
import { Regions, waitCaughtUp, type Region } from '../helpers/regions.js';
import { assertClientsAgree, readBoth, type ReadRecord } from '../helpers/replication-check.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait.js';

const TOPIC = 'orders';
const PARTITIONS = [0, 1];
const US = 'us-east';
const EU = 'eu-west';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What was produced (and acknowledged), per origin region and partition, in produce order. */
class Ledger {
  readonly #values = new Map<string, string[]>();

  static key(origin: string, partition: number): string {
    return `${origin}-${partition}-`;
  }

  next(origin: string, partition: number): number {
    return this.#values.get(Ledger.key(origin, partition))?.length ?? 0;
  }

  add(origin: string, partition: number, values: string[]): void {
    const k = Ledger.key(origin, partition);
    this.#values.set(k, [...(this.#values.get(k) ?? []), ...values]);
  }

  origins(): string[] {
    return [...new Set([...this.#values.keys()].map((k) => k.replace(/-\d+-$/, '')))];
  }

  get(origin: string, partition: number): string[] {
    return this.#values.get(Ledger.key(origin, partition)) ?? [];
  }

  get total(): number {
    let n = 0;
    for (const v of this.#values.values()) n += v.length;
    return n;
  }
}

/** A record value: unique, self-describing, 100 bytes or so, the filler derived from the name. */
function value(origin: string, partition: number, seq: number): string {
  const name = `${origin}-${partition}-${String(seq).padStart(6, '0')}`;
  return `${name}:${String.fromCharCode(97 + (seq % 26)).repeat(60 + (seq % 40))}`;
}

/**
 * Produces `n` records to one partition of `region` with kcat (small batches, so a
 * replication request carries several of them), and records them once kcat has every
 * delivery report.
 */
async function produce(region: Region, ledger: Ledger, partition: number, n: number): Promise<void> {
  const from = ledger.next(region.name, partition);
  const values = Array.from({ length: n }, (_, i) => value(region.name, partition, from + i));
  await new KcatClient(region.bootstrap).produce(TOPIC, values.join('\n') + '\n', ['-p', String(partition), '-X', 'acks=all', '-X', 'batch.num.messages=40', '-X', 'linger.ms=2']);
  ledger.add(region.name, partition, values);
}

/**
 * Produces to every partition of `region` in a loop (one kcat call after another per partition,
 * so each origin's order is defined) until `stop()`, which rethrows a failed produce.
 */
function steadyProducer(region: Region, ledger: Ledger, perCall: number, pauseMs: number): { calls: () => number; stop: () => Promise<void> } {
  let stopped = false;
  let calls = 0;
  const done = Promise.all(
    PARTITIONS.map(async (p) => {
      while (!stopped) {
        await produce(region, ledger, p, perCall);
        calls++;
        await sleep(pauseMs);
      }
    }),
  );
  done.catch(() => {}); // observed by stop()
  return {
    calls: () => calls,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

async function createTopic(region: Region): Promise<void> {
  const kafka = new Kafka({ clientId: 'replication-faults', brokers: [region.bootstrap], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    assert.equal(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS.length }], waitForLeaders: true }), true);
  } finally {
    await admin.disconnect();
  }
}

/** The handshake of `from`'s workers creates the topic in `to`, with the same partition count. */
async function waitTopicCreatedIn(to: Region): Promise<void> {
  await waitFor(`${TOPIC} to be created in ${to.name} by replication`, async () => {
    const t = (await to.status()).topics.find((x) => x.name === TOPIC);
    return t ? t.partitions.length : undefined;
  }, 20_000).then((n) => assert.equal(n, PARTITIONS.length, `${TOPIC} in ${to.name} has ${n} partitions`));
}

async function workersTo(region: Region, remote: string): Promise<WorkerStatus[]> {
  return (await region.status()).workers.filter((w) => w.topic === TOPIC && w.remote === remote);
}

const sum = (ws: WorkerStatus[], f: (w: WorkerStatus) => number) => ws.reduce((n, w) => n + f(w), 0);

/**
 * Waits until `region` is in the middle of sending to `remote`: it has sent records since
 * `sentBefore` (its workers' sentRecords) and still has a backlog.
 */
async function waitMidFlight(region: Region, remote: string, sentBefore: number): Promise<{ sent: number; backlog: number }> {
  return waitFor(`${region.name} to be mid-way through replicating to ${remote}`, async () => {
    const ws = await workersTo(region, remote);
    const sent = sum(ws, (w) => w.sentRecords);
    const backlog = sum(ws, (w) => w.backlogRecords);
    return ws.length === PARTITIONS.length && sent > sentBefore && backlog > 0 ? { sent, backlog } : undefined;
  }, 20_000, 20);
}

/** Waits until every worker of `region` towards `remote` backs off with an error and a backlog. */
async function waitBackingOff(region: Region, remote: string): Promise<WorkerStatus[]> {
  let last: WorkerStatus[] = [];
  try {
    return await waitFor(`${region.name}'s workers towards ${remote} to back off`, async () => {
      last = await workersTo(region, remote);
      return last.length === PARTITIONS.length && last.every((w) => w.state === 'backing-off' && w.error !== null && w.backlogRecords > 0) ? last : undefined;
    }, 15_000, 25);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nlast status: ${JSON.stringify(last.map((w) => ({ p: w.partition, state: w.state, error: w.error, backlog: w.backlogRecords })))}`);
  }
}

/** Recent replication log lines of a region, for failure messages. */
function replicationLog(region: Region, n = 15): string {
  return region.logLines.filter((l) => /replicat|backlog|snapshot/i.test(l)).slice(-n).join('\n');
}

/**
 * The exactly-once check, on one region, as KafkaJS and as kcat read it: per partition, each
 * origin's records are exactly what was produced there, in produce order; no record is
 * unknown, and keys and headers are empty as produced. Returns the record count.
 */
async function assertExactlyOnce(region: Region, ledger: Ledger, others: Region[]): Promise<number> {
  const reads = await readBoth(region.bootstrap, TOPIC);
  const problems = (['KafkaJS', 'kcat'] as const).flatMap((client) => exactlyOnceProblems(`${region.name} (${client})`, reads[client], ledger));
  if (problems.length > 0) {
    assert.fail(`${problems.join('\n')}\n--- replication log, ${[region, ...others].map((r) => r.name).join(', ')}:\n${[region, ...others].map((r) => replicationLog(r)).join('\n')}`);
  }
  assertClientsAgree(region.name, reads);
  return reads.KafkaJS.length;
}

function exactlyOnceProblems(where: string, messages: readonly ReadRecord[], ledger: Ledger): string[] {
  const origins = ledger.origins();
  const problems: string[] = [];
  for (const p of PARTITIONS) {
    const got = messages.filter((m) => m.partition === p);
    for (const m of got) {
      if (m.key !== null || m.headers.length > 0) problems.push(`${where}/${p} offset ${m.offset}: unexpected key or headers`);
    }
    const values = got.map((m) => m.value?.toString('latin1') ?? '<null>');
    const unknown = values.filter((v) => !origins.some((o) => v.startsWith(Ledger.key(o, p))));
    if (unknown.length > 0) problems.push(`${where}/${p}: ${unknown.length} records from no origin, e.g. ${unknown.slice(0, 3).join(', ')}`);
    for (const origin of origins) {
      const expected = ledger.get(origin, p);
      const mine = values.filter((v) => v.startsWith(Ledger.key(origin, p)));
      if (mine.length === expected.length && mine.every((v, i) => v === expected[i])) continue;
      const want = new Set(expected);
      const seen = new Map<string, number>();
      for (const v of mine) seen.set(v, (seen.get(v) ?? 0) + 1);
      const missing = expected.filter((v) => !seen.has(v));
      const dups = [...seen].filter(([, c]) => c > 1);
      const foreign = mine.filter((v) => !want.has(v));
      const firstDiff = mine.findIndex((v, i) => v !== expected[i]);
      problems.push(
        `${where}/${p} records from ${origin}: got ${mine.length}, produced ${expected.length}; ` +
          `${missing.length} missing (first ${missing.slice(0, 2).map((v) => v.slice(0, 22)).join(', ')}), ` +
          `${dups.length} duplicated (e.g. ${dups.slice(0, 2).map(([v, c]) => `${v.slice(0, 22)} x${c}`).join(', ')}), ` +
          `${foreign.length} unknown; first difference at #${firstDiff}: got ${mine[firstDiff]?.slice(0, 22)}, expected ${expected[firstDiff]?.slice(0, 22)}`,
      );
    }
  }
  if (messages.length !== ledger.total && problems.length === 0) problems.push(`${where}: ${messages.length} records, produced ${ledger.total}`);
  return problems;
}

async function report(t: TestContext, regions: Region[]): Promise<void> {
  for (const r of regions) {
    const s = await r.status();
    const ws = s.workers.filter((w) => w.topic === TOPIC);
    t.diagnostic(
      `${r.name}: received appendedBatches=${s.target.appendedBatches} duplicateBatches=${s.target.duplicateBatches} loopDropped=${s.target.loopDroppedBatches}; ` +
        `sent (since its last start) records=${sum(ws, (w) => w.sentRecords)} retries=${sum(ws, (w) => w.retries)}`,
    );
  }
}

test('kill -9 of the source region mid-replication, three times: exactly once in both regions', { timeout: 60_000 }, async (t) => {
  const regions = await Regions.create({
    names: [US, EU],
    policies: [{ name: 'orders-mesh', topics: TOPIC, topology: 'mesh', regions: [US, EU], rateLimit: '512KiB' }],
    overrides: { replication: { maxRequestBytes: 16 * 1024 } },
  });
  t.after(() => regions.close());
  await regions.start();
  const us = regions.get(US);
  const eu = regions.get(EU);
  await createTopic(us);
  await waitTopicCreatedIn(eu);

  const ledger = new Ledger();
  for (let round = 0; round < 3; round++) {
    const sentBefore = sum(await workersTo(us, EU), (w) => w.sentRecords);
    // A backlog of ~1.3 MB in us-east, which the 512 KiB/s link needs a few seconds to send.
    await Promise.all(PARTITIONS.map(async (p) => {
      for (let call = 0; call < 3; call++) await produce(us, ledger, p, 2000);
    }));
    const mid = await waitMidFlight(us, EU, sentBefore);
    await us.kill9();
    t.diagnostic(`round ${round}: killed ${US} with ${mid.backlog} records still to send (${mid.sent - sentBefore} sent this round)`);

    // us-east is down: eu-west keeps producing; its own link towards us-east backs off.
    await Promise.all(PARTITIONS.map(async (p) => {
      for (let call = 0; call < 2; call++) await produce(eu, ledger, p, 500);
    }));
    const waiting = await waitBackingOff(eu, US);
    assert.ok(waiting.every((w) => /connect|closed/i.test(w.error!)), `errors name the connection: ${waiting.map((w) => w.error).join('; ')}`);

    await us.start();
  }

  await waitCaughtUp([us, eu], 40_000);
  const counts = [await assertExactlyOnce(us, ledger, [eu]), await assertExactlyOnce(eu, ledger, [us])];
  assert.deepEqual(counts, [ledger.total, ledger.total]);
  t.diagnostic(`${ledger.total} records (us-east ${PARTITIONS.map((p) => ledger.get(US, p).length)}, eu-west ${PARTITIONS.map((p) => ledger.get(EU, p).length)}) exactly once in both regions`);
  await report(t, [us, eu]);
});

test('kill -9 of the target region mid-replication, three times, while the source produces: exactly once', { timeout: 60_000 }, async (t) => {
  const regions = await Regions.create({
    names: [US, EU],
    policies: [{ name: 'orders-one-way', topics: TOPIC, topology: 'one-way', source: US, targets: [EU], rateLimit: '1MiB' }],
    overrides: { replication: { maxRequestBytes: 16 * 1024 } },
  });
  t.after(() => regions.close());
  await regions.start();
  const us = regions.get(US);
  const eu = regions.get(EU);
  await createTopic(us);
  await waitTopicCreatedIn(eu);

  const ledger = new Ledger();
  const producer = steadyProducer(us, ledger, 500, 50);
  try {
    for (let round = 0; round < 3; round++) {
      const sentBefore = sum(await workersTo(us, EU), (w) => w.sentRecords);
      const mid = await waitMidFlight(us, EU, sentBefore);
      await eu.kill9();
      const callsAtKill = producer.calls();
      t.diagnostic(`round ${round}: killed ${EU} with ${mid.backlog} records still to send`);
      const waiting = await waitBackingOff(us, EU);
      assert.ok(waiting.every((w) => /connect|closed/i.test(w.error!)), `errors name the connection: ${waiting.map((w) => w.error).join('; ')}`);
      // The source goes on taking writes while its target is down.
      await waitFor('more produce calls while the target is down', () => (producer.calls() >= callsAtKill + 2 ? true : undefined), 20_000, 20);
      await eu.start();
    }
  } finally {
    await producer.stop();
  }

  await waitCaughtUp([us, eu], 40_000);
  assert.deepEqual(ledger.origins(), [US]);
  const counts = [await assertExactlyOnce(us, ledger, [eu]), await assertExactlyOnce(eu, ledger, [us])];
  assert.deepEqual(counts, [ledger.total, ledger.total]);
  t.diagnostic(`${ledger.total} records from ${US} exactly once in both regions`);
  await report(t, [us, eu]);
});

test('link refused, delayed and cut at random moments while both regions produce: exactly once', { timeout: 60_000 }, async (t) => {
  // us-east reaches eu-west through toEu, eu-west reaches us-east through toUs.
  const toEu = new TcpProxy({ targetPort: 0 });
  const toUs = new TcpProxy({ targetPort: 0 });
  await Promise.all([toEu.start(), toUs.start()]);
  t.after(() => Promise.all([toEu.close(), toUs.close()]));
  const regions = await Regions.create({
    names: [US, EU],
    policies: [{ name: 'orders-mesh', topics: TOPIC, topology: 'mesh', regions: [US, EU] }],
    overrides: { replication: { maxRequestBytes: 16 * 1024 } },
    addressOf: (from, to, port) => {
      if (from === to) return `127.0.0.1:${port}`;
      const proxy = to === EU ? toEu : toUs;
      proxy.options.targetPort = port;
      return `127.0.0.1:${proxy.port}`;
    },
  });
  t.after(() => regions.close());
  await regions.start();
  const us = regions.get(US);
  const eu = regions.get(EU);
  await createTopic(us);
  await waitTopicCreatedIn(eu);

  const ledger = new Ledger();
  const producers = [steadyProducer(us, ledger, 300, 40), steadyProducer(eu, ledger, 300, 40)];
  try {
    await waitMidFlight(us, EU, 0);
    await waitMidFlight(eu, US, 0);

    // 1. The link refuses connections: every worker backs off, says why, and has a backlog.
    toEu.setRefusing(true);
    toUs.setRefusing(true);
    const cutAt = producers.map((p) => p.calls());
    const [usWaiting, euWaiting] = await Promise.all([waitBackingOff(us, EU), waitBackingOff(eu, US)]);
    for (const w of [...usWaiting, ...euWaiting]) assert.match(w.error!, /connect|closed/i, `worker ${w.partition}->${w.remote}`);
    await waitFor('both regions to produce while the link is down', () => (producers.every((p, i) => p.calls() >= cutAt[i] + 4) ? true : undefined), 20_000, 20);
    // Every worker tries again, twice, and fails again: still backing off, the backlog kept.
    // A worker between two attempts is briefly 'starting' (its next handshake), so the state
    // is part of the condition waited for, not of one snapshot that may land on an attempt.
    const retriesAt = new Map(usWaiting.map((w) => [w.partition, w.retries]));
    let last: Awaited<ReturnType<typeof workersTo>> = [];
    const during = await waitFor('us-east\'s workers to retry twice more against the refusing link, backing off with their backlog kept', async () => {
      last = await workersTo(us, EU);
      return last.every((w) => w.retries >= retriesAt.get(w.partition)! + 2 && w.state === 'backing-off' && w.backlogRecords > 0) ? last : undefined;
    }, 20_000, 50).catch((err: Error) => assert.fail(`${err.message}: ${JSON.stringify(last.map((w) => [w.state, w.retries, w.backlogRecords]))}`));
    assert.ok(during.every((w) => w.state === 'backing-off' && w.backlogRecords > 0), JSON.stringify(during.map((w) => [w.state, w.backlogRecords])));
    t.diagnostic(`link refused: us-east backlog ${sum(usWaiting, (w) => w.backlogRecords)} records, error "${usWaiting[0].error}"`);
    toEu.setRefusing(false);
    toUs.setRefusing(false);

    // 2. A slow link: 200 ms each way on every chunk.
    await waitFor('the link to recover', async () => ((await workersTo(us, EU)).every((w) => w.state === 'running' || w.state === 'idle') ? true : undefined), 20_000, 50);
    toEu.options.delayMs = 200;
    toUs.options.delayMs = 200;
    const slowFrom = sum(await workersTo(us, EU), (w) => w.sentRecords);
    await waitFor('records to cross the slow link', async () => (sum(await workersTo(us, EU), (w) => w.sentRecords) > slowFrom + 4000 ? true : undefined), 30_000, 50);
    // Back to no delay; the proxy would reorder bytes still waiting out their delay against
    // new undelayed ones, so the switch goes with a cut (a fault the link must survive anyway).
    toEu.options.delayMs = 0;
    toUs.options.delayMs = 0;
    toEu.cutAll();
    toUs.cutAll();

    // 3. Connections cut at random moments mid-flight.
    for (let i = 0; i < 8; i++) {
      await sleep(150 + Math.floor(Math.random() * 450));
      if (Math.random() < 0.5) toEu.cutAll();
      else toUs.cutAll();
      if (i % 3 === 2) {
        toEu.cutAll();
        toUs.cutAll();
      }
    }
    await sleep(500);
  } finally {
    await Promise.all(producers.map((p) => p.stop()));
  }

  await waitCaughtUp([us, eu], 40_000);
  const counts = [await assertExactlyOnce(us, ledger, [eu]), await assertExactlyOnce(eu, ledger, [us])];
  assert.deepEqual(counts, [ledger.total, ledger.total]);
  t.diagnostic(`${ledger.total} records (us-east ${PARTITIONS.map((p) => ledger.get(US, p).length)}, eu-west ${PARTITIONS.map((p) => ledger.get(EU, p).length)}) exactly once in both regions`);
  // Resends after a cut are expected to show up as duplicates the receiver dropped; they say
  // nothing about correctness (the contents above do), so they are only reported.
  await report(t, [us, eu]);
});
