/**
 * bench:georep — geo-replication between two regions on this machine, against NATS
 * JetStream's mirror over a leafnode measured in the same run (bench/georep-nats.ts).
 *
 *   npm run bench:georep
 *   BENCH_GEOREP_MESSAGES=100000 BENCH_GEOREP_TRIALS=5 npm run bench:georep
 *
 * Two regions, each a broker in its own process, replicate one topic one way (us-east to
 * eu-west), like a JetStream stream and its mirror:
 *   1. capacity, in alternating trials: with eu-west down, kcat produces 1 KiB messages into
 *      us-east as fast as it can (acks=all; the baseline), then eu-west starts and the backlog
 *      is replicated (the subject); the ratio is taken within each trial;
 *   2. live (one run): kcat produces at full speed while the link replicates; the backlog is
 *      sampled every 250 ms; replication MB/s is measured from the first produce to eu-west
 *      holding the last record;
 *   3. lag, in alternating trials against JetStream: a producer sends at a fixed moderate
 *      rate (5,000 msgs/s) into us-east, and a consumer long-polls eu-west; lag is the time
 *      from the produce acknowledgement in us-east to the record being returned by a Fetch in
 *      eu-west (same process, same clock). Each trial starts fresh servers: JetStream's hub
 *      and leaf (the baseline), then Meridian's two regions in each flush mode.
 * Both flush modes are measured: fsync (acks after fdatasync, on both sides) and interval
 * (acks after the write, fdatasync every second). Brokers, NATS servers and clients all
 * share the machine's 2 cores. Writes bench/results/georep.md.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { ApiKey } from '../src/protocol/kafka/api-keys.js';
import { messageCodecs } from '../src/protocol/kafka/messages/index.js';
import type { FetchResponse } from '../src/protocol/kafka/messages/fetch.js';
import { LinkClient } from '../src/replication/link-client.js';
import { decodeRecords, encodeBatch, isControlBatch, lastOffsetOf, storedBatches } from '../src/storage/record-batch.js';
import { Region } from '../test/helpers/regions.js';
import {
  alternate,
  benchDir,
  formatMedian,
  formatRatio,
  formatTable,
  formatTarget,
  freePort,
  median,
  percentile,
  repeat,
  requireKcat,
  runTimed,
  runtimeReset,
  trialCount,
  writeMessageFile,
  writeResults,
  type Row,
  type RuntimeWindow,
} from './harness.js';
import { JetStreamMirror, natsServerVersion, type FullSpeedFigures, type LagFigures } from './georep-nats.js';

const MESSAGES = Number(process.env.BENCH_GEOREP_MESSAGES ?? 200_000);
const MSG = 1024;
/** Lag is measured at each of these rates (msgs/s). */
const RATES = (process.env.BENCH_GEOREP_RATES ?? '5000,20000').split(',').map(Number);
const LAG_SECONDS = Number(process.env.BENCH_GEOREP_LAG_SECONDS ?? 10);
const WARMUP_MS = 1000;
/** Each region's event-loop delay histogram samples this often during the lag runs (GET /v1/runtime). */
const LOOP_RESOLUTION_MS = 2;
const TRIALS = trialCount('BENCH_GEOREP_TRIALS');
const SHM = '/dev/shm';

type Mode = 'fsync' | 'interval';

interface Capacity {
  produceAloneMBps: number;
  catchUpMBps: number;
}

type Live = Pick<FullSpeedFigures, 'produceMBps' | 'replicationMBps' | 'endLagMessages' | 'maxLagMessages' | 'catchUpMs'>;

async function createTopic(bootstrap: string, topic: string): Promise<void> {
  const admin = new Kafka({ clientId: 'bench', brokers: [bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
  await admin.disconnect();
}

async function worker(a: Region, topic: string) {
  return (await a.status()).workers.find((w) => w.topic === topic);
}

async function untilReplicated(a: Region, topic: string, last: bigint): Promise<void> {
  for (;;) {
    const w = await worker(a, topic);
    if (w && w.replicatedOffset !== null && BigInt(w.replicatedOffset) >= last) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Two regions replicating `georep-*` one way, us-east to eu-west, in `dir` (eu-west in
 * `bDir` when given), started.
 */
async function regionPair(dir: string, name: string, mode: Mode, bDir?: string): Promise<{ a: Region; b: Region; stop: () => Promise<void> }> {
  const [pa, pb, adminA, adminB] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const regions = [{ name: 'us-east', address: `127.0.0.1:${pa}` }, { name: 'eu-west', address: `127.0.0.1:${pb}` }];
  const common = {
    logging: { level: 'warn' as const },
    metrics: { eventLoopResolutionMs: LOOP_RESOLUTION_MS },
    log: { flush: { mode, intervalMs: 1000 } },
    topics: { autoCreate: false },
    replication: { retry: { initialMs: 20, maxMs: 200 }, regions, policies: [{ name: 'dr', topics: 'georep-*', topology: 'one-way', source: 'us-east', targets: ['eu-west'] }] },
  };
  const a = new Region('us-east', pa, path.join(dir, `${name}-us-east`), { ...common, admin: { host: '127.0.0.1', port: adminA } });
  const b = new Region('eu-west', pb, path.join(bDir ?? dir, `${name}-eu-west`), { ...common, admin: { host: '127.0.0.1', port: adminB } });
  await Promise.all([a.start(), b.start()]);
  return { a, b, stop: async () => void (await Promise.all([a.stop(), b.stop()])) };
}

/**
 * Capacity, in alternating trials: with eu-west down, kcat fills us-east alone (its maximum
 * produce rate, nothing else running; the baseline); then eu-west starts and the backlog is
 * replicated (the link's maximum rate, measured from the first record it acknowledges to the
 * last, so eu-west's process start is not counted). Keeping up means the second is at least
 * the first.
 */
async function capacity(a: Region, b: Region, msgFile: string, log: (s: string) => void): Promise<Capacity[]> {
  const topic = (t: number) => `georep-capacity-${t}`;
  const trials = await alternate(
    TRIALS,
    async (t) => {
      await createTopic(a.bootstrap, topic(t));
      await b.stop();
      const p = await runTimed('kcat', ['-P', '-b', a.bootstrap, '-t', topic(t), '-p', '0', '-X', 'acks=all', '-l', msgFile]);
      return (MESSAGES * MSG) / p.seconds / 1e6;
    },
    async (t) => {
      await b.start();
      await untilReplicated(a, topic(t), 0n);
      const first = BigInt((await worker(a, topic(t)))!.replicatedOffset!);
      const t0 = performance.now();
      await untilReplicated(a, topic(t), BigInt(MESSAGES - 1));
      const bytes = Number(BigInt(MESSAGES - 1) - first) * MSG;
      return bytes / ((performance.now() - t0) / 1000) / 1e6;
    },
  );
  return trials.map(({ baseline, subject }, t) => {
    log(`  capacity trial ${t + 1}/${TRIALS}: produce alone ${baseline.toFixed(1)} MB/s, replication of the backlog ${subject.toFixed(1)} MB/s`);
    return { produceAloneMBps: baseline, catchUpMBps: subject };
  });
}

/**
 * Live (one run): kcat produces at full speed while the link replicates; the backlog is
 * sampled every 250 ms. On one machine the two regions share 2 cores and one disk.
 */
async function throughput(a: Region, msgFile: string, log: (s: string) => void): Promise<Live> {
  const topic = 'georep-throughput';
  await createTopic(a.bootstrap, topic);
  while ((await worker(a, topic))?.state !== 'idle') await new Promise((r) => setTimeout(r, 50));
  let maxLag = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const w = await worker(a, topic);
      if (w) maxLag = Math.max(maxLag, w.backlogRecords);
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  const t0 = performance.now();
  const p = await runTimed('kcat', ['-P', '-b', a.bootstrap, '-t', topic, '-p', '0', '-X', 'acks=all', '-l', msgFile]);
  const end = await worker(a, topic);
  const endLag = end?.backlogRecords ?? MESSAGES;
  const tProduced = performance.now();
  await untilReplicated(a, topic, BigInt(MESSAGES - 1));
  const tDone = performance.now();
  sampling = false;
  await sampler;
  const bytes = MESSAGES * MSG;
  const f = {
    produceMBps: bytes / p.seconds / 1e6,
    replicationMBps: bytes / ((tDone - t0) / 1000) / 1e6,
    endLagMessages: endLag,
    maxLagMessages: Math.max(maxLag, endLag),
    catchUpMs: tDone - tProduced,
  };
  log(`  live: produce ${f.produceMBps.toFixed(1)} MB/s, replication ${f.replicationMBps.toFixed(1)} MB/s, lag at end ${f.endLagMessages} msgs, max ${f.maxLagMessages}, caught up ${f.catchUpMs.toFixed(0)} ms after`);
  return f;
}

/**
 * Produces `rate` msgs/s into `a` (each millisecond's due messages as one batch, acks=-1, up
 * to 5 requests in flight) while long-polling `b`; returns the lag of each message from its
 * acknowledgement in `a` to its Fetch in `b`.
 */
async function lagRun(a: Region, b: Region, rate: number, log: (s: string) => void): Promise<number[]> {
  const topic = 'georep-lag';
  await createTopic(a.bootstrap, topic);
  // Wait until the topic exists in b (the replicator creates it) and the worker is idle.
  for (;;) {
    const w = await worker(a, topic);
    if (w?.state === 'idle' && (await b.status()).topics.some((t) => t.name === topic)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const producer = new LinkClient({ address: a.bootstrap, clientId: 'bench-producer' });
  const consumer = new LinkClient({ address: b.bootstrap, clientId: 'bench-consumer' });
  const total = Math.floor(rate * LAG_SECONDS);
  const acked = new Float64Array(total).fill(NaN);
  const seen = new Float64Array(total).fill(NaN);
  const start = performance.now();
  let done = false;

  const consume = (async () => {
    let offset = 0n;
    let got = 0;
    while (got < total) {
      const r = await consumer.request(ApiKey.Fetch, 11, (w) =>
        messageCodecs.get(ApiKey.Fetch)!.encodeRequest(w, 11, {
          clusterId: null, replicaId: -1, replicaState: { replicaId: -1, replicaEpoch: -1n }, maxWaitMs: 500, minBytes: 1, maxBytes: 8 << 20, isolationLevel: 0, sessionId: 0, sessionEpoch: -1,
          topics: [{ topic, topicId: '', partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset: offset, lastFetchedEpoch: -1, logStartOffset: -1n, partitionMaxBytes: 8 << 20, replicaDirectoryId: '' }] }],
          forgottenTopicsData: [], rackId: '',
        } as never),
      );
      const now = performance.now();
      const res = messageCodecs.get(ApiKey.Fetch)!.decodeResponse(r, 11) as FetchResponse;
      const records = res.responses[0].partitions[0].records;
      if (!records || records.length === 0) {
        if (done && performance.now() - start > (LAG_SECONDS + 30) * 1000) throw new Error(`only ${got} of ${total} messages reached eu-west`);
        continue;
      }
      for (const { buf: batch, h } of storedBatches(records)) {
        offset = lastOffsetOf(h) + 1n;
        if (isControlBatch(h)) continue;
        for (const rec of decodeRecords(batch)) {
          const seq = Number(rec.value!.readBigUInt64BE(0));
          if (Number.isNaN(seen[seq])) {
            seen[seq] = now;
            got++;
          }
        }
      }
    }
  })();

  const value = Buffer.alloc(MSG - 30, 0x6c);
  let sent = 0;
  let inFlight = 0;
  const pending: Array<Promise<void>> = [];
  while (sent < total) {
    const now = performance.now();
    const due = Math.min(total, Math.floor(((now - start) / 1000) * rate)) - sent;
    if (due > 0 && inFlight < 5) {
      const first = sent;
      const batch = encodeBatch({
        records: Array.from({ length: due }, (_, i) => {
          const v = Buffer.from(value);
          v.writeBigUInt64BE(BigInt(first + i), 0);
          return { value: v };
        }),
      });
      sent += due;
      inFlight++;
      pending.push(
        producer
          .request(ApiKey.Produce, 7, (w) =>
            messageCodecs.get(ApiKey.Produce)!.encodeRequest(w, 7, { transactionalId: null, acks: -1, timeoutMs: 30_000, topicData: [{ name: topic, partitionData: [{ index: 0, records: batch }] }] } as never),
          )
          .then((r) => {
            const t = performance.now();
            const res = messageCodecs.get(ApiKey.Produce)!.decodeResponse(r, 7) as { responses: Array<{ partitionResponses: Array<{ errorCode: number }> }> };
            if (res.responses[0].partitionResponses[0].errorCode !== 0) throw new Error('produce failed in the lag run');
            for (let i = first; i < first + due; i++) acked[i] = t;
            inFlight--;
          }),
      );
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(pending);
  done = true;
  await consume;
  producer.close();
  consumer.close();
  const lags: number[] = [];
  for (let i = 0; i < total; i++) {
    if (acked[i] - start < WARMUP_MS) continue;
    lags.push(seen[i] - acked[i]);
  }
  log(`  lag: ${lags.length} samples after ${WARMUP_MS} ms warm-up`);
  return lags.sort((x, y) => x - y);
}

/** Meridian's lag figures, with what each region's runtime did during the run. */
type MeridianLag = LagFigures & { runtime: { a: RuntimeWindow; b: RuntimeWindow } };

const runtimeLine = (r: RuntimeWindow) => `loop delay p99 ${r.eventLoopDelayMs.p99.toFixed(1)} ms, max ${r.eventLoopDelayMs.max.toFixed(1)} ms; GC ${r.gc.count} pauses, longest ${r.gc.maxMs.toFixed(1)} ms`;

/** One lag trial of Meridian in `mode`: a fresh pair of regions, the lag run, removed after. */
async function meridianLag(dir: string, mode: Mode, rate: number, t: number, log: (s: string) => void): Promise<MeridianLag> {
  const name = `lag-${mode}-${rate}-${t}`;
  const pair = await regionPair(dir, name, mode);
  try {
    // Earlier runs' dirty pages are written back first (the NATS trials do the same), so
    // that writeback does not land in the middle of the lag measurement.
    spawnSync('sync');
    const adminPorts = [pair.a.adminPort!, pair.b.adminPort!];
    await Promise.all(adminPorts.map(runtimeReset));
    const lags = await lagRun(pair.a, pair.b, rate, log);
    const [ra, rb] = await Promise.all(adminPorts.map(runtimeReset));
    const f = { lagP50Ms: percentile(lags, 50), lagP99Ms: percentile(lags, 99), lagMaxMs: lags[lags.length - 1], lagSamples: lags.length, runtime: { a: ra, b: rb } };
    log(`  Meridian ${mode} lag trial ${t + 1}/${TRIALS} at ${rate} msgs/s: p50 ${f.lagP50Ms.toFixed(2)} ms, p99 ${f.lagP99Ms.toFixed(2)} ms, max ${f.lagMaxMs.toFixed(1)} ms; us-east ${runtimeLine(ra)}; eu-west ${runtimeLine(rb)}`);
    return f;
  } finally {
    await pair.stop();
    for (const r of [pair.a, pair.b]) fs.rmSync(r.dataDir, { recursive: true, force: true });
  }
}

/** One lag trial of JetStream: a fresh hub and leaf, the lag run, removed after. */
async function natsLag(dir: string, rate: number, t: number, log: (s: string) => void): Promise<LagFigures> {
  const natsDir = path.join(dir, `nats-lag-${rate}-${t}`);
  const mirror = await JetStreamMirror.start({ dir: natsDir, messageBytes: MSG, log: (s) => log(`  ${s}`) });
  try {
    const f = await mirror.lag(rate, LAG_SECONDS);
    log(`  JetStream lag trial ${t + 1}/${TRIALS} at ${rate} msgs/s: p50 ${f.lagP50Ms.toFixed(2)} ms, p99 ${f.lagP99Ms.toFixed(2)} ms, max ${f.lagMaxMs.toFixed(1)} ms`);
    return f;
  } finally {
    await mirror.close();
    fs.rmSync(natsDir, { recursive: true, force: true });
  }
}

/** Capacity and the live run of one flush mode, on one pair of regions. */
async function meridianCapacity(dir: string, mode: Mode, msgFile: string, log: (s: string) => void): Promise<{ capacity: Capacity[]; live: Live }> {
  const pair = await regionPair(dir, mode, mode);
  try {
    log(`Meridian, flush mode ${mode}:`);
    const c = await capacity(pair.a, pair.b, msgFile, log);
    const live = await throughput(pair.a, msgFile, log);
    return { capacity: c, live };
  } finally {
    await pair.stop();
  }
}

/**
 * Replication capacity with eu-west on its own storage (a tmpfs, so its writes cost no disk
 * time): what the replication path itself moves, against what us-east's disk takes from a
 * producer. On this machine the two regions otherwise share one disk.
 */
async function separateStorageCapacity(dir: string, msgFile: string, log: (s: string) => void): Promise<Capacity[] | null> {
  if (!fs.existsSync(SHM)) return null;
  const bDir = fs.mkdtempSync(path.join(SHM, 'meridian-georep-'));
  try {
    const pair = await regionPair(dir, 'separate', 'fsync', bDir);
    try {
      log('Meridian, fsync mode, eu-west on its own storage (tmpfs):');
      return await capacity(pair.a, pair.b, msgFile, log);
    } finally {
      await pair.stop();
    }
  } finally {
    fs.rmSync(bDir, { recursive: true, force: true });
  }
}

/** The lag trials at one rate: JetStream (the baseline), then Meridian fsync and interval, alternating. */
async function lagAtRate(dir: string, rate: number, log: (s: string) => void) {
  log(`Lag at ${rate} msgs/s, ${TRIALS} alternating trials (JetStream, then Meridian fsync and interval):`);
  return alternate(
    TRIALS,
    (t) => natsLag(dir, rate, t, log),
    async (t) => ({ fsync: await meridianLag(dir, 'fsync', rate, t, log), interval: await meridianLag(dir, 'interval', rate, t, log) }),
  );
}

type LagTrials = Awaited<ReturnType<typeof lagAtRate>>;

/** Rows of the lag table: per rate, Meridian in each mode against JetStream in the same trials. */
function lagRows(rate: number, lag: LagTrials): Row[] {
  const n = (x: number, d = 1) => x.toFixed(d);
  const cells = (l: LagFigures[]) => [formatMedian(l.map((x) => x.lagP50Ms), '', 2), formatMedian(l.map((x) => x.lagP99Ms), '', 2), n(Math.max(...l.map((x) => x.lagMaxMs)), 1)];
  const vsNats = (mode: Mode) => {
    const ratios = lag.map((x) => x.subject[mode].lagP99Ms / x.baseline.lagP99Ms);
    return `**${formatRatio(ratios, 'times')}**; ${formatTarget(ratios, '<=', 1, '1x')}`;
  };
  return [
    [`${rate}`, 'Meridian, fsync acks', ...cells(lag.map((x) => x.subject.fsync)), vsNats('fsync')],
    [`${rate}`, 'Meridian, interval flush', ...cells(lag.map((x) => x.subject.interval)), vsNats('interval')],
    [`${rate}`, 'NATS JetStream mirror (leafnode)', ...cells(lag.map((x) => x.baseline)), 'baseline'],
  ];
}

const LAG_HEADER = ['msgs/s', 'system', 'lag p50 ms', 'lag p99 ms', 'lag max ms (all trials)', 'p99 vs JetStream (same trial)'];

/** Rows of the runtime table: per rate and mode, each region's event loop and GC during the lag runs. */
function runtimeRows(rate: number, lag: LagTrials): Row[] {
  const cells = (rs: RuntimeWindow[]) => [
    `${formatMedian(rs.map((r) => r.eventLoopDelayMs.p99), '', 1)} / ${formatMedian(rs.map((r) => r.eventLoopDelayMs.max), '', 1)}`,
    `${formatMedian(rs.map((r) => r.gc.maxMs), '', 1)} / ${formatMedian(rs.map((r) => r.gc.totalMs), '', 0)}`,
  ];
  return (['fsync', 'interval'] as const).map((mode) => {
    const runs = lag.map((x) => x.subject[mode]);
    return [`${rate}`, mode === 'fsync' ? 'Meridian, fsync acks' : 'Meridian, interval flush', ...cells(runs.map((r) => r.runtime.a)), ...cells(runs.map((r) => r.runtime.b))];
  });
}

const RUNTIME_HEADER = ['msgs/s', 'system', 'us-east event-loop delay p99 / max ms', 'us-east GC longest / total ms', 'eu-west event-loop delay p99 / max ms', 'eu-west GC longest / total ms'];

async function main(): Promise<void> {
  requireKcat();
  // BENCH_GEOREP_ONLY=lag: the lag trials only, printed, no results file (tuning runs).
  const only = process.env.BENCH_GEOREP_ONLY;
  const natsVersion = natsServerVersion();
  const dir = benchDir('georep');
  const log = (s: string) => console.log(s);
  log(`bench:georep: ${TRIALS} trials; ${MESSAGES} messages of ${MSG} B at full speed, then ${RATES.join(' and ')} msgs/s for ${LAG_SECONDS} s, in ${dir}`);
  const msgFile = path.join(dir, 'messages.txt');
  writeMessageFile(msgFile, MESSAGES, MSG, 'g');
  try {
    if (only === 'lag') {
      const rows: Row[] = [];
      const runtime: Row[] = [];
      for (const rate of RATES) {
        const lag = await lagAtRate(dir, rate, log);
        rows.push(...lagRows(rate, lag));
        runtime.push(...runtimeRows(rate, lag));
      }
      console.log(`\n${formatTable(LAG_HEADER, rows)}\n\n${formatTable(RUNTIME_HEADER, runtime)}\n(BENCH_GEOREP_ONLY=lag: no results file written)`);
      return;
    }
    const fsync = await meridianCapacity(dir, 'fsync', msgFile, log);
    const interval = await meridianCapacity(dir, 'interval', msgFile, log);
    const separate = await separateStorageCapacity(dir, msgFile, log);

    log('NATS JetStream mirror over a leafnode, full speed:');
    const natsDir = path.join(dir, 'nats-live');
    const mirror = await JetStreamMirror.start({ dir: natsDir, messageBytes: MSG, log: (s) => log(`  ${s}`) });
    let natsLive: FullSpeedFigures;
    try {
      natsLive = await mirror.fullSpeed(MESSAGES);
    } finally {
      await mirror.close();
      fs.rmSync(natsDir, { recursive: true, force: true });
    }

    const lagTrials: Array<{ rate: number; lag: LagTrials }> = [];
    for (const rate of RATES) lagTrials.push({ rate, lag: await lagAtRate(dir, rate, log) });

    const n = (x: number, d = 1) => x.toFixed(d);
    const live = (f: Live) => `${n(f.produceMBps)} / ${n(f.replicationMBps)} (max ${f.maxLagMessages} msgs behind, caught up ${n(f.catchUpMs, 0)} ms after the last produce)`;
    const capacityCells = (c: Capacity[]) => {
      const ratios = c.map((x) => x.catchUpMBps / x.produceAloneMBps);
      return [
        formatMedian(c.map((x) => x.produceAloneMBps)),
        formatMedian(c.map((x) => x.catchUpMBps)),
        `**${formatRatio(ratios, 'times')}**; ${formatTarget(ratios, '>=', 1, '1x')}`,
      ];
    };
    const rows: Row[] = [
      ['Meridian, fsync acks', ...capacityCells(fsync.capacity), live(fsync.live)],
      ['Meridian, interval flush', ...capacityCells(interval.capacity), live(interval.live)],
    ];
    if (separate) rows.push(['Meridian, fsync acks, eu-west on its own storage', ...capacityCells(separate), '—']);
    rows.push(['NATS JetStream mirror (leafnode)', '—', '—', '—', live(natsLive)]);
    const capacityTable = formatTable(['system', 'produce alone MB/s', 'replication of a backlog MB/s', 'replication / produce', 'live, one run: produce / replication MB/s'], rows);
    const lagTable = formatTable(LAG_HEADER, lagTrials.flatMap(({ rate, lag }) => lagRows(rate, lag)));
    const runtimeTable = formatTable(RUNTIME_HEADER, lagTrials.flatMap(({ rate, lag }) => runtimeRows(rate, lag)));
    const table = `${capacityTable}\n\n${lagTable}\n\n${runtimeTable}`;
    const samples = lagTrials.map(({ rate, lag }) => `${median(lag.map((x) => x.subject.fsync.lagSamples))} at ${rate} msgs/s`).join(', ');
    const notes = [
      `One topic, one partition, replicated one way (us-east to eu-west, like a JetStream stream and its mirror). Capacity: ${MESSAGES} messages of ${MSG} B produced at full speed into region A (kcat, acks=all; for NATS a pipelined publisher at the server's ceiling). Lag: ${RATES.join(' and ')} msgs/s for ${LAG_SECONDS} s each (first ${WARMUP_MS} ms ignored; about ${samples} samples per trial).`,
      '',
      `Figures with a range are the median and range (min–max) of ${TRIALS} trials; each ratio is taken within a trial (baseline and subject measured one after the other), then its median and range are shown.`,
      '',
      `- Capacity (${TRIALS} alternating trials per row): region A alone takes the messages at its maximum rate while B is down (the baseline); then B starts and the backlog is replicated (timed from the first acknowledged request to the last, so B's process start is not counted). Keeping up means the link replicates at least as fast as A can take produce. Both regions write to the same disk here; the row with eu-west on its own storage (a tmpfs) has B write to memory instead.`,
      '- Live (one run per system): the same produce with the link running; the two regions (or NATS servers) share 2 cores and one disk.',
      `- Lag (${TRIALS} alternating trials per rate): each trial starts fresh servers and runs JetStream first (the baseline), then Meridian in fsync mode, then in interval mode; "p99 vs JetStream" divides each Meridian p99 by the same trial's JetStream p99. The producer sends each millisecond's due messages as one batch (acks=-1, up to 5 requests in flight); the consumer in B long-polls.`,
      '',
      `The regions during the lag runs (last table): each region's GET /v1/runtime window, reset before and read after each Meridian lag run: how late its event loop ran (sampled every ${LOOP_RESOLUTION_MS} ms; p99 and max) and its GC pauses (longest, and their total over the ${LAG_SECONDS} s run), medians of the trials. A lag tail longer than both says the time went elsewhere: the disk, the other processes on the 2 cores, or the client.`,
      '',
      'Live replication MB/s runs from the first produce to region B holding the last message. Lag runs from the produce acknowledgement in A to the message being returned by a consumer in B (same process, same clock; a negative value means B served it before A\'s ack reached the producer).',
      '',
      `Both regions, both NATS servers and the clients share 2 cores. NATS is nats-server ${natsVersion} with JetStream's default sync setting (the configuration sets no sync_interval), so it acknowledges before an fsync, as Meridian's interval mode does; fsync mode is Meridian's default (fdatasync before every acknowledgement, in both regions).`,
      '',
      'Targets: replication keeps up with region A\'s maximum produce rate; lag p99 no higher than JetStream\'s mirror in the same trial (ratio <= 1), in both flush modes, at each rate.',
    ];
    console.log(`\n${table}`);
    writeResults('georep', 'Geo-replication vs NATS JetStream mirror', table, notes);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
