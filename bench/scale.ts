/**
 * bench:scale — 10,000 partitions on one broker (issue 15), with a second region replicating
 * them, measured as an operator and a client see it.
 *
 *   npm run bench:scale
 *   npm run bench:scale -- --partitions 1000 --trials 1     (a quick run while developing)
 *
 * Two regions, each `meridian broker --config FILE` in its own process: us-east holds
 * N partitions (topics `scale-0000`... of 10 partitions each) and replicates them one way to
 * eu-west. The bench:
 *   1. starts both, creates the topics with KafkaJS (CreateTopics, 250 topics a request) and
 *      waits for eu-west to hold them all (the replicator creates them there);
 *   2. idle: us-east's RSS, open fds and CPU over 10 s with no traffic; Metadata for all
 *      topics (latency and size); the admin API's /metrics and the routes that list every
 *      partition (size and latency);
 *   3. in each of --trials alternating trials:
 *      - replication lag: a producer sends 2,000 one-record batches/s round-robin over all
 *        N partitions (acks=all) while a kcat consumer group in eu-west reads them; lag is
 *        from the produce acknowledgement in us-east to kcat printing the record in eu-west;
 *      - produce through one connection (this script's producer, ~1 MB requests, 5 in flight):
 *        over all N partitions round-robin against the same bytes into one partition (the
 *        target's ratio: what spreading costs the broker); then the same pair with us-east's
 *        replication policy taken away at run time (what spreading costs one broker alone);
 *      - produce with kcat, same total bytes each: the baseline is one kcat into a one-partition topic
 *        (its best case); the subject is one kcat per topic (random partitioner over its 10
 *        partitions, acks=all), 8 at a time; a control row sends the same kcat fleet into the
 *        one-partition topic, to tell the fleet's own cost (1,000 process starts) from the
 *        partitions';
 *      - replication catch-up after the produce (the backlog drained to eu-west);
 *      - restart: the kcat fleet produces again (idempotent), us-east is SIGKILLed under it,
 *        and the time from spawning it again to serving Metadata for every topic, then a
 *        Produce, is measured; the fleet finishes through the restart;
 *   4. a kcat consumer group reads every scale-* partition of us-east to the end (count
 *      checked against the high watermarks), against kcat reading the one-partition topic;
 *   5. idle again, with data in every partition.
 * Writes bench/results/scale.md.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import {
  benchDir,
  formatMedian,
  formatRatio,
  formatTable,
  formatTarget,
  freePort,
  machineBusySeconds,
  median,
  percentile,
  requireKcat,
  writeMessageFile,
  writeResults,
  type Row,
} from './harness.js';
import { BrokerProcess, PeakSampler, type RuntimeWindow } from './scale-broker.js';
import { produceProbes, ScaleClient, type PartitionRef } from './scale-client.js';
import { encodeBatch } from '../src/storage/record-batch.js';

const { values: args } = parseArgs({
  options: { partitions: { type: 'string' }, trials: { type: 'string' }, messages: { type: 'string' } },
  strict: true,
});
const PARTITIONS = Number(args.partitions ?? process.env.BENCH_SCALE_PARTITIONS ?? 10_000);
const TRIALS = Number(args.trials ?? process.env.BENCH_SCALE_TRIALS ?? 3);
/** Messages per produce run (baseline, control and subject alike). */
const MESSAGES = Number(args.messages ?? process.env.BENCH_SCALE_MESSAGES ?? 200_000);
for (const [name, v] of [['--partitions', PARTITIONS], ['--trials', TRIALS], ['--messages', MESSAGES]] as const) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, not ${v}`);
}
if (TRIALS < 3) console.warn(`--trials ${TRIALS}: fewer than 3 trials; figures are reported as such, not as medians`);
const PER_TOPIC = Math.min(10, PARTITIONS);
const TOPICS = Math.ceil(PARTITIONS / PER_TOPIC);
const MSG = 1024;
const KCAT_PARALLEL = 8;
const LAG_RATE = 2000;
/** Long enough for every partition to get at least two probes. */
const LAG_SECONDS = Math.max(10, Math.ceil((2 * PARTITIONS) / LAG_RATE));
const IDLE_SECONDS = 10;
/** How long the lag consumers get to show they read every partition, and the probes to arrive after the last is sent. */
const WARM_UP_MS = 90_000;
const LAG_DRAIN_MS = 60_000;
const SINGLE = 'single-0';
const CREATE_BATCH = 250;

const topicName = (i: number) => `scale-${String(i).padStart(4, '0')}`;
const partitionCount = (i: number) => Math.min(PER_TOPIC, PARTITIONS - i * PER_TOPIC);
const ALL: PartitionRef[] = [];
for (let t = 0; t < TOPICS; t++) for (let p = 0; p < partitionCount(t); p++) ALL.push({ topic: topicName(t), partition: p });
const EXPECT = new Map<string, number>([[SINGLE, 1], ...Array.from({ length: TOPICS }, (_, t) => [topicName(t), partitionCount(t)] as [string, number])]);

const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

interface Idle {
  rss: number;
  fds: number;
  cpuPercent: number;
  euCpuPercent: number;
  runtime: RuntimeWindow;
}

async function idle(us: BrokerProcess, eu: BrokerProcess): Promise<Idle> {
  await us.runtimeWindow();
  const [u0, e0, t0] = [us.cpuSeconds(), eu.cpuSeconds(), performance.now()];
  await sleep(IDLE_SECONDS * 1000);
  const secs = (performance.now() - t0) / 1000;
  const [u1, e1] = [us.cpuSeconds(), eu.cpuSeconds()];
  return { rss: us.rss(), fds: us.fds(), cpuPercent: ((u1 - u0) / secs) * 100, euCpuPercent: ((e1 - e0) / secs) * 100, runtime: await us.runtimeWindow() };
}

const stalls = (w: RuntimeWindow) => `loop delay p99 ${w.loopP99Ms.toFixed(0)} ms, max ${w.loopMaxMs.toFixed(0)} ms; GC ${((w.gcMs / 1000 / w.seconds) * 100).toFixed(0)}% of the time, longest ${w.gcMaxMs.toFixed(0)} ms`;

/** Metadata for every topic, `n` times in a row on one connection: latencies (ms, sorted) and the response size. */
async function metadataLatency(us: BrokerProcess, n = 20): Promise<{ ms: number[]; bytes: number }> {
  const client = await ScaleClient.connect(us.spec.port);
  try {
    const ms: number[] = [];
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const r = await client.metadata();
      ms.push(performance.now() - t0);
      bytes = r.bytes;
      if (r.response.topics.length !== EXPECT.size) throw new Error(`Metadata listed ${r.response.topics.length} topics, expected ${EXPECT.size}`);
    }
    return { ms: ms.sort((a, b) => a - b), bytes };
  } finally {
    client.close();
  }
}

const ADMIN_ROUTES = ['/metrics', '/v1/topics', '/v1/replication/status', '/v1/regions', '/v1/tiered/status'];

/** Each admin route listed above, 3 times: the median latency and the body size. */
async function adminProbe(b: BrokerProcess): Promise<Map<string, { ms: number; bytes: number; status: number }>> {
  const out = new Map<string, { ms: number; bytes: number; status: number }>();
  for (const route of ADMIN_ROUTES) {
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await b.admin(route));
    out.set(route, { ms: median(runs.map((r) => r.ms)), bytes: runs[0].bytes, status: runs[0].status });
  }
  return out;
}

async function createTopics(us: BrokerProcess): Promise<number> {
  const admin = new Kafka({ clientId: 'bench-scale', brokers: [us.bootstrap], logLevel: logLevel.NOTHING, requestTimeout: 120_000 }).admin();
  await admin.connect();
  try {
    const t0 = performance.now();
    const all = [...EXPECT].map(([topic, numPartitions]) => ({ topic, numPartitions }));
    for (let i = 0; i < all.length; i += CREATE_BATCH) await admin.createTopics({ topics: all.slice(i, i + CREATE_BATCH), waitForLeaders: false, timeout: 120_000 });
    return (performance.now() - t0) / 1000;
  } finally {
    await admin.disconnect();
  }
}

/** kcat processes running now: killed when the bench fails, so none outlives it. */
const LIVE = new Set<ChildProcess>();

/** Runs kcat with `args` to its exit; rejects on a non-zero exit, with the end of its stderr. */
function kcat(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('kcat', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    LIVE.add(child);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-1000)));
    child.once('error', reject);
    child.once('close', (code) => {
      LIVE.delete(child);
      if (code === 0) resolve();
      else reject(new Error(`kcat ${args.join(' ')} exited ${code}: ${stderr}`));
    });
  });
}

/** Runs kcat with each of `jobs`' arguments, KCAT_PARALLEL at a time: wall seconds and the runs that failed. */
async function fleet(jobs: string[][]): Promise<{ seconds: number; failed: string[] }> {
  const t0 = performance.now();
  const failed: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(KCAT_PARALLEL, jobs.length) }, async () => {
      while (next < jobs.length) {
        const job = jobs[next++];
        await kcat(job).catch((err: Error) => failed.push(err.message.slice(0, 300)));
      }
    }),
  );
  return { seconds: (performance.now() - t0) / 1000, failed };
}

const produceArgs = (us: BrokerProcess, topic: string, file: string, extra: string[] = []) => ['-P', '-b', us.bootstrap, '-t', topic, '-X', 'acks=all', ...extra, '-l', file];

/** The records of `sent` keys kcat has printed, by key, with the time each line arrived. */
function kcatLines(args: string[]): { seen: Map<string, number>; stop: () => Promise<void>; exited: Promise<number | null> } {
  const child = spawn('kcat', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  LIVE.add(child);
  const seen = new Map<string, number>();
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    if (!seen.has(line)) seen.set(line, performance.now());
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  void exited.then(() => LIVE.delete(child));
  void exited.then((code) => {
    if (code !== 0 && code !== null) log(`  kcat ${args.join(' ')} exited ${code}: ${stderr}`);
  });
  return {
    seen,
    exited,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

interface LagFigures {
  p50: number;
  p99: number;
  max: number;
  samples: number;
  missing: number;
}

interface Lag {
  /** ack in us-east → read in eu-west: the replication lag. */
  remote: LagFigures;
  /** ack in us-east → read in us-east by the same kind of consumer: the consumer's own share, the baseline. */
  local: LagFigures;
  partitions: number;
  /** Partitions both consumers were seen reading before the timed run (all of them unless the warm-up timed out). */
  warmed: number;
}

/**
 * Replication lag across all partitions: two kcat consumer groups, one in eu-west and one in
 * us-east (the baseline: what the consumer itself adds), from the latest offsets, are first
 * shown to read every partition (warm-up rounds of one record per partition until each
 * printed one from each); then LAG_RATE records/s go round-robin over the partitions for
 * LAG_SECONDS, each in its own batch, up to 5 Produce requests in flight.
 */
async function lagRun(us: BrokerProcess, eu: BrokerProcess, trial: number): Promise<Lag> {
  const reader = (b: BrokerProcess) => kcatLines(['-b', b.bootstrap, '-G', `scale-lag-${trial}`, '-X', 'auto.offset.reset=latest', '-X', 'enable.auto.commit=false', '-u', '-q', '-f', '%k\n', '^scale-[0-9]+$']);
  const remote = reader(eu);
  const local = reader(us);
  const producer = await ScaleClient.connect(us.spec.port);
  const value = Buffer.alloc(100, 0x6c);
  try {
    const warmDeadline = performance.now() + WARM_UP_MS;
    let warmed = 0;
    for (let round = 0; ; round++) {
      for (let i = 0; i < ALL.length; i += 1000) await producer.produce(ALL.slice(i, i + 1000).map((p, j) => ({ ...p, key: `w${round}:${i + j}` })), value);
      const roundStart = performance.now();
      const covered = () => {
        let least = Infinity;
        for (const r of [remote, local]) {
          const parts = new Set<string>();
          for (const k of r.seen.keys()) if (k.startsWith('w')) parts.add(k.slice(k.indexOf(':') + 1));
          least = Math.min(least, parts.size);
        }
        return least;
      };
      while (covered() < ALL.length && performance.now() - roundStart < 3000) await sleep(100);
      warmed = covered();
      if (warmed === ALL.length) break;
      if (performance.now() > warmDeadline) {
        // Measured anyway: the lag of what is slow to arrive is the point.
        log(`  lag warm-up: after ${WARM_UP_MS / 1000} s both consumers have read only ${warmed} of ${ALL.length} partitions; measuring anyway`);
        break;
      }
      log(`  lag warm-up round ${round}: both consumers have read ${warmed} of ${ALL.length} partitions`);
    }
    const total = LAG_RATE * LAG_SECONDS;
    const acked = await produceProbes(producer, ALL, LAG_RATE, total, value);
    const deadline = performance.now() + LAG_DRAIN_MS;
    const got = (r: typeof remote) => {
      let n = 0;
      for (let i = 0; i < total; i++) if (r.seen.has(`p${i}`)) n++;
      return n;
    };
    while ((got(remote) < total || got(local) < total) && performance.now() < deadline) await sleep(200);
    const figures = (r: typeof remote): LagFigures => {
      const lags: number[] = [];
      // A probe not read by the deadline counts as infinitely late, so a p99 is never
      // flattered by what never arrived.
      for (let i = 0; i < total; i++) lags.push((r.seen.get(`p${i}`) ?? Infinity) - acked[i]);
      lags.sort((a, b) => a - b);
      const missing = lags.filter((x) => x === Infinity).length;
      return { p50: percentile(lags, 50), p99: percentile(lags, 99), max: lags[lags.length - 1], samples: total - missing, missing };
    };
    return { remote: figures(remote), local: figures(local), partitions: Math.min(total, ALL.length), warmed };
  } finally {
    producer.close();
    await Promise.all([remote.stop(), local.stop()]);
  }
}

/** Sum of backlogRecords over us-east's links, from its admin API. */
async function backlog(us: BrokerProcess): Promise<number> {
  // Without the per-partition list: polled every 250 ms while eu-west catches up, the
  // 10,000 workers' JSON was a tenth of us-east's allocation in that time.
  const r = await us.admin('/v1/replication/status?workers=false');
  if (r.status !== 200) throw new Error(`GET /v1/replication/status?workers=false answered ${r.status}: ${r.body.slice(0, 300)}`);
  const s = JSON.parse(r.body) as { links: Array<{ backlogRecords: number }> };
  return s.links.reduce((n, l) => n + l.backlogRecords, 0);
}

async function untilReplicated(us: BrokerProcess, timeoutMs = 600_000): Promise<number> {
  const t0 = performance.now();
  while ((await backlog(us)) > 0) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`replication to eu-west did not catch up within ${timeoutMs / 1000} s`);
    await sleep(250);
  }
  return (performance.now() - t0) / 1000;
}

/**
 * Takes us-east's replication policy away at run time (PUT /v1/replication/policies with none:
 * its workers stop), or reverts to its config file's (DELETE), and waits until its links run
 * `workers` partition workers.
 */
async function setReplication(us: BrokerProcess, on: boolean, workers: number): Promise<void> {
  const r = await us.admin('/v1/replication/policies', on ? { method: 'DELETE' } : { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ policies: [] }) });
  if (r.status !== 200) throw new Error(`${on ? 'DELETE' : 'PUT'} /v1/replication/policies answered ${r.status}: ${r.body.slice(0, 300)}`);
  const t0 = performance.now();
  for (;;) {
    const s = await us.admin('/v1/replication/status?workers=false');
    const running = (JSON.parse(s.body) as { remotes: Array<{ workers: number }> }).remotes.reduce((n, l) => n + l.workers, 0);
    if (running === workers) return;
    if (performance.now() - t0 > 120_000) throw new Error(`us-east runs ${running} replication workers 120 s after the policy change, not ${workers}`);
    await sleep(100);
  }
}

interface Restart {
  metadataSeconds: number;
  produceSeconds: number;
  fleetFailed: number;
}

/** SIGKILL us-east under a kcat fleet (idempotent producers), then time its return. */
async function restartUnderLoad(us: BrokerProcess, perTopicFile: string): Promise<Restart> {
  const jobs = Array.from({ length: TOPICS }, (_, t) => produceArgs(us, topicName(t), perTopicFile, ['-X', 'topic.partitioner=random', '-X', 'enable.idempotence=true']));
  const load = fleet(jobs);
  await sleep(2000);
  await us.kill9();
  const t0 = performance.now();
  us.spawn();
  await us.ready(EXPECT, 300_000, 10);
  const metadataSeconds = (performance.now() - t0) / 1000;
  for (;;) {
    const c = await ScaleClient.connect(us.spec.port).catch(() => undefined);
    try {
      if (c) {
        await c.produce([{ ...ALL[0], key: 'restart' }], Buffer.from('restart'));
        break;
      }
    } catch {
      // Not serving produce yet.
    } finally {
      c?.close();
    }
    await sleep(10);
  }
  const produceSeconds = (performance.now() - t0) / 1000;
  const done = await load;
  for (const f of done.failed.slice(0, 3)) log(`  a kcat of the restart fleet failed: ${f}`);
  return { metadataSeconds, produceSeconds, fleetFailed: done.failed.length };
}

interface Consume {
  groupRecords: number;
  expected: bigint;
  groupPerSec: number;
  singleRecords: number;
  singleExpected: bigint;
  singlePerSec: number;
}

/** Counts the lines kcat prints until it exits (one per record with -f '%p\n'). */
async function kcatCount(args: string[]): Promise<{ records: number; seconds: number }> {
  const t0 = performance.now();
  const child = spawn('kcat', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  LIVE.add(child);
  void new Promise((r) => child.once('exit', r)).then(() => LIVE.delete(child));
  let records = 0;
  child.stdout!.on('data', (d: Buffer) => {
    for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1)) records++;
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
  const code = await new Promise<number | null>((r) => child.once('close', r));
  if (code !== 0) throw new Error(`kcat ${args.join(' ')} exited ${code}: ${stderr}`);
  return { records, seconds: (performance.now() - t0) / 1000 };
}

async function consume(us: BrokerProcess): Promise<Consume> {
  const client = await ScaleClient.connect(us.spec.port);
  let expected = 0n;
  let singleExpected = 0n;
  try {
    for (const hw of (await client.highWatermarks(ALL)).values()) expected += hw;
    singleExpected = (await client.highWatermarks([{ topic: SINGLE, partition: 0 }])).get(`${SINGLE}/0`)!;
  } finally {
    client.close();
  }
  const single = await kcatCount(['-C', '-b', us.bootstrap, '-t', SINGLE, '-p', '0', '-o', 'beginning', '-e', '-q', '-f', '%p\n']);
  const group = await kcatCount(['-b', us.bootstrap, '-G', 'scale-consume', '-X', 'auto.offset.reset=earliest', '-e', '-q', '-f', '%p\n', '^scale-[0-9]+$']);
  return {
    groupRecords: group.records,
    expected,
    groupPerSec: group.records / group.seconds,
    singleRecords: single.records,
    singleExpected,
    singlePerSec: single.records / single.seconds,
  };
}

/** Bytes of one produce request of the one-connection rows (librdkafka's default message.max.bytes). */
const REQUEST_BYTES = 1_000_000;
const IN_FLIGHT = 5;

/**
 * One connection produces `total` records of MSG bytes, acks=all, up to IN_FLIGHT requests of
 * about REQUEST_BYTES in flight (as librdkafka pipelines), round-robin over `targets`: each
 * request carries one batch for each of the next partitions in turn, of total/targets records
 * each (at least 1). Into one partition, each request is one batch of REQUEST_BYTES. MB/s.
 */
async function oneConnection(us: BrokerProcess, targets: PartitionRef[], total: number): Promise<number> {
  const client = await ScaleClient.connect(us.spec.port);
  try {
    const perPartition = Math.max(1, Math.min(Math.floor(total / targets.length), Math.floor(REQUEST_BYTES / MSG)));
    const partitionsPerRequest = Math.max(1, Math.floor(REQUEST_BYTES / (perPartition * MSG)));
    const value = Buffer.alloc(MSG - 30, 0x73);
    // Whole request frames, built before the clock starts: the client's encoding is not what
    // is measured. (Until 2026-12-06 only the batches were: framing each ~1 MB request on the
    // clock cost this process ~0.3 s of CPU per run, on the cores the brokers share.)
    const requests: Buffer[] = [];
    let sent = 0;
    let next = 0;
    while (sent < total) {
      const req: Array<PartitionRef & { batch: Buffer }> = [];
      while (req.length < partitionsPerRequest && sent < total) {
        const n = Math.min(perPartition, total - sent);
        req.push({ ...targets[next++ % targets.length], batch: encodeBatch({ records: Array.from({ length: n }, () => ({ value })) }) });
        sent += n;
      }
      requests.push(ScaleClient.produceFrame(req));
    }
    const t0 = performance.now();
    let i = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (i < requests.length) await client.sendProduce(requests[i++]);
      }),
    );
    return (total * MSG) / ((performance.now() - t0) / 1000) / 1e6;
  } finally {
    client.close();
  }
}

const PATTERN_SCRIPT = path.join(path.dirname(new URL(import.meta.url).pathname), 'fsync-pattern.ts');

/** What one fsync-pattern.ts run measured. */
interface PatternRun {
  mbps: number;
  userSeconds: number;
  systemSeconds: number;
}

function patternRun(dir: string, files: number, writeBytes: number, perRequest: number, totalBytes: number): Promise<PatternRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', PATTERN_SCRIPT, dir, String(files), String(writeBytes), String(perRequest), String(IN_FLIGHT), String(totalBytes)], { stdio: ['ignore', 'pipe', 'pipe'] });
    LIVE.add(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      LIVE.delete(child);
      if (code !== 0) reject(new Error(`fsync-pattern.ts exited ${code}: ${err}`));
      else resolve(JSON.parse(out.trim().split('\n').at(-1)!) as PatternRun);
    });
  });
}

/**
 * The disk alone, in the one-connection rows' patterns: two writers at once (as us-east and
 * eu-west each write the same bytes), each writing `total` records' worth of bytes with an
 * fdatasync per file written, 5 requests in flight; into one file with ~1 MB writes, then
 * over one file per partition with one partition batch's bytes per write and as many writes
 * per request as the produce puts partitions in one. MB/s per writer (the slower of the two)
 * and the two writers' system CPU seconds together.
 */
async function diskPattern(dir: string, total: number): Promise<{ single: PatternRun; spread: PatternRun }> {
  const perPartition = Math.max(1, Math.min(Math.floor(total / PARTITIONS), Math.floor(REQUEST_BYTES / MSG)));
  const batchBytes = perPartition * MSG;
  const perRequest = Math.max(1, Math.floor(REQUEST_BYTES / batchBytes));
  const singleBytes = Math.floor(REQUEST_BYTES / MSG) * MSG;
  const both = async (files: number, writeBytes: number, writesPerRequest: number): Promise<PatternRun> => {
    const runs = await Promise.all(['a', 'b'].map((w) => patternRun(path.join(dir, `disk-pattern-${w}`), files, writeBytes, writesPerRequest, total * MSG)));
    return {
      mbps: Math.min(...runs.map((r) => r.mbps)),
      userSeconds: runs.reduce((a, r) => a + r.userSeconds, 0),
      systemSeconds: runs.reduce((a, r) => a + r.systemSeconds, 0),
    };
  };
  const single = await both(1, singleBytes, 1);
  const spread = await both(PARTITIONS, batchBytes, perRequest);
  return { single, spread };
}

/** CPU seconds spent during one one-connection run. */
interface RunCpu {
  machine: number;
  us: number;
  usMainUser: number;
  usMainSystem: number;
  eu: number;
}

/** Runs `run` and the CPU the machine and both brokers spent meanwhile. */
async function withCpu<T>(us: BrokerProcess, eu: BrokerProcess, run: () => Promise<T>): Promise<{ result: T; cpu: RunCpu }> {
  const m0 = machineBusySeconds();
  const [u0, e0, t0] = [us.cpuSeconds(), eu.cpuSeconds(), us.mainThreadCpu()];
  const result = await run();
  const t1 = us.mainThreadCpu();
  return { result, cpu: { machine: machineBusySeconds() - m0, us: us.cpuSeconds() - u0, usMainUser: t1.user - t0.user, usMainSystem: t1.system - t0.system, eu: eu.cpuSeconds() - e0 } };
}

interface TrialResult {
  lag: Lag;
  /** CPU during the one-connection runs (over every partition; into one). */
  spreadCpu: RunCpu;
  spreadBaselineCpu: RunCpu;
  /** One connection over every partition, and the same into one partition (MB/s). */
  spreadMBps: number;
  spreadBaselineMBps: number;
  /** The same pair with us-east's replication policy taken away (MB/s), and its CPU. */
  aloneMBps: number;
  aloneBaselineMBps: number;
  aloneCpu: RunCpu;
  aloneBaselineCpu: RunCpu;
  /** The disk alone in the same two patterns (diskPattern). */
  disk: { single: PatternRun; spread: PatternRun };
  baselineMBps: number;
  controlMBps: number;
  subjectMBps: number;
  /** us-east's own stalls while the subject fleet produced. */
  subjectRuntime: RuntimeWindow;
  catchUpSeconds: number;
  restart: Restart;
}

async function main(): Promise<void> {
  requireKcat();
  const dir = benchDir('scale');
  const perTopic = Math.max(1, Math.floor(MESSAGES / TOPICS));
  const total = perTopic * TOPICS;
  log(`bench:scale: ${PARTITIONS} partitions (${TOPICS} topics), ${TRIALS} trial(s), ${total} messages of ${MSG} B per produce run, in ${dir}`);
  const perTopicFile = path.join(dir, 'per-topic.txt');
  const totalFile = path.join(dir, 'total.txt');
  writeMessageFile(perTopicFile, perTopic, MSG, 's');
  writeMessageFile(totalFile, total, MSG, 's');

  const [usPort, euPort, usAdmin, euAdmin] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const extraYaml = [
    'topics: { autoCreate: false }',
    // One member per group here: no wait for others to join.
    'groups: { initialRebalanceDelayMs: 0 }',
    'replication:',
    `  regions: [{ name: us-east, address: "127.0.0.1:${usPort}" }, { name: eu-west, address: "127.0.0.1:${euPort}" }]`,
    `  policies: [{ name: scale, topics: ["scale-*", "single-*"], topology: one-way, source: us-east, targets: [eu-west] }]`,
  ];
  const us = new BrokerProcess({ region: 'us-east', dir: path.join(dir, 'us-east'), port: usPort, adminPort: usAdmin, extraYaml });
  const eu = new BrokerProcess({ region: 'eu-west', dir: path.join(dir, 'eu-west'), port: euPort, adminPort: euAdmin, extraYaml });
  let sampler: PeakSampler | undefined;
  try {
    let t0 = performance.now();
    await Promise.all([us.start(), eu.start()]);
    const emptyStart = (performance.now() - t0) / 1000;
    log(`both regions up in ${emptyStart.toFixed(1)} s; creating ${EXPECT.size} topics`);
    const createSeconds = await createTopics(us);
    t0 = performance.now();
    await us.ready(EXPECT);
    const usVisible = createSeconds + (performance.now() - t0) / 1000;
    await eu.ready(EXPECT, 600_000, 500);
    const euVisible = createSeconds + (performance.now() - t0) / 1000;
    log(`topics created in ${createSeconds.toFixed(1)} s, all in us-east's Metadata at ${usVisible.toFixed(1)} s, in eu-west's at ${euVisible.toFixed(1)} s`);
    await sleep(5000);
    const idleEmpty = await idle(us, eu);
    log(`idle, empty: RSS ${mib(idleEmpty.rss)}, ${idleEmpty.fds} fds, CPU ${idleEmpty.cpuPercent.toFixed(1)}% (eu-west ${idleEmpty.euCpuPercent.toFixed(1)}%)`);
    const metaEmpty = await metadataLatency(us);
    log(`Metadata (all topics): p50 ${percentile(metaEmpty.ms, 50).toFixed(1)} ms, max ${metaEmpty.ms.at(-1)!.toFixed(1)} ms, ${metaEmpty.bytes} B`);
    const adminEmpty = await adminProbe(us);
    for (const [r, a] of adminEmpty) log(`  GET ${r}: ${a.status}, ${a.bytes} B in ${a.ms.toFixed(0)} ms`);

    sampler = new PeakSampler([us, eu]);
    const trials: TrialResult[] = [];
    for (let t = 0; t < TRIALS; t++) {
      log(`trial ${t + 1}/${TRIALS}:`);
      const lag = await lagRun(us, eu, t);
      const lf = (x: LagFigures) => `p50 ${x.p50.toFixed(0)} ms, p99 ${x.p99.toFixed(0)} ms, max ${x.max.toFixed(0)} ms (${x.samples} samples, ${x.missing} missing)`;
      log(`  lag over ${lag.partitions} partitions, read in eu-west: ${lf(lag.remote)}; read in us-east: ${lf(lag.local)}`);
      await untilReplicated(us);
      const { result: spreadBaselineMBps, cpu: spreadBaselineCpu } = await withCpu(us, eu, () => oneConnection(us, [{ topic: SINGLE, partition: 0 }], total));
      await untilReplicated(us);
      const { result: spreadMBps, cpu: spreadCpu } = await withCpu(us, eu, () => oneConnection(us, ALL, total));
      log(`  one connection over ${PARTITIONS} partitions: ${spreadMBps.toFixed(1)} MB/s; into one partition: ${spreadBaselineMBps.toFixed(1)} MB/s (${((spreadMBps / spreadBaselineMBps) * 100).toFixed(0)}%)`);
      await untilReplicated(us);
      // The same pair with no replication policy in us-east: what spreading costs one broker
      // by itself, without the replicator's and eu-west's share of these 2 cores.
      await setReplication(us, false, 0);
      const { result: aloneBaselineMBps, cpu: aloneBaselineCpu } = await withCpu(us, eu, () => oneConnection(us, [{ topic: SINGLE, partition: 0 }], total));
      const { result: aloneMBps, cpu: aloneCpu } = await withCpu(us, eu, () => oneConnection(us, ALL, total));
      await setReplication(us, true, ALL.length + 1);
      const aloneCatchUp = await untilReplicated(us);
      log(`  the same without replication: ${aloneMBps.toFixed(1)} MB/s; into one partition: ${aloneBaselineMBps.toFixed(1)} MB/s (${((aloneMBps / aloneBaselineMBps) * 100).toFixed(0)}%); eu-west caught up ${aloneCatchUp.toFixed(1)} s after the policy came back`);
      const disk = await diskPattern(dir, total);
      log(`  the disk alone, two writers, an fdatasync per file written: ${disk.spread.mbps.toFixed(1)} MB/s over ${PARTITIONS} files vs ${disk.single.mbps.toFixed(1)} MB/s into one (${((disk.spread.mbps / disk.single.mbps) * 100).toFixed(0)}%); system CPU ${disk.spread.systemSeconds.toFixed(2)} s vs ${disk.single.systemSeconds.toFixed(2)} s`);
      await untilReplicated(us);
      const tBase = performance.now();
      await kcat(produceArgs(us, SINGLE, totalFile, ['-p', '0']));
      const baselineMBps = (total * MSG) / ((performance.now() - tBase) / 1000) / 1e6;
      log(`  baseline, one kcat into one partition: ${baselineMBps.toFixed(1)} MB/s`);
      await untilReplicated(us);
      const control = await fleet(Array.from({ length: TOPICS }, () => produceArgs(us, SINGLE, perTopicFile, ['-p', '0'])));
      if (control.failed.length > 0) throw new Error(`control fleet: ${control.failed.length} kcat runs failed: ${control.failed[0]}`);
      const controlMBps = (total * MSG) / control.seconds / 1e6;
      log(`  control, ${TOPICS} kcats into one partition: ${controlMBps.toFixed(1)} MB/s`);
      await untilReplicated(us);
      await us.runtimeWindow();
      const subject = await fleet(Array.from({ length: TOPICS }, (_, i) => produceArgs(us, topicName(i), perTopicFile, ['-X', 'topic.partitioner=random'])));
      if (subject.failed.length > 0) throw new Error(`subject fleet: ${subject.failed.length} kcat runs failed: ${subject.failed[0]}`);
      const subjectMBps = (total * MSG) / subject.seconds / 1e6;
      const subjectRuntime = await us.runtimeWindow();
      const catchUpSeconds = await untilReplicated(us);
      log(`  subject, ${TOPICS} kcats over ${PARTITIONS} partitions: ${subjectMBps.toFixed(1)} MB/s (${((subjectMBps / baselineMBps) * 100).toFixed(0)}% of the baseline); eu-west caught up ${catchUpSeconds.toFixed(1)} s after`);
      const restart = await restartUnderLoad(us, perTopicFile);
      log(`  restart after SIGKILL under load: Metadata for every topic after ${restart.metadataSeconds.toFixed(1)} s, a Produce after ${restart.produceSeconds.toFixed(1)} s; ${restart.fleetFailed} kcat runs failed`);
      await untilReplicated(us);
      log(`  us-east during the subject: ${stalls(subjectRuntime)}`);
      trials.push({ lag, spreadMBps, spreadBaselineMBps, spreadCpu, spreadBaselineCpu, aloneMBps, aloneBaselineMBps, aloneCpu, aloneBaselineCpu, disk, baselineMBps, controlMBps, subjectMBps, subjectRuntime, catchUpSeconds, restart });
    }
    sampler.stop();

    log('consume: a kcat group over every scale-* partition, then kcat on the one-partition topic');
    const c = await consume(us);
    log(`  group: ${c.groupRecords} of ${c.expected} records, ${c.groupPerSec.toFixed(0)}/s; one partition: ${c.singleRecords} of ${c.singleExpected}, ${c.singlePerSec.toFixed(0)}/s`);
    const metaLoaded = await metadataLatency(us);
    const adminLoaded = await adminProbe(us);
    for (const [r, a] of adminLoaded) log(`  GET ${r}: ${a.status}, ${a.bytes} B in ${a.ms.toFixed(0)} ms`);
    await sleep(5000);
    const idleLoaded = await idle(us, eu);
    log(`idle, with data: RSS ${mib(idleLoaded.rss)}, ${idleLoaded.fds} fds, CPU ${idleLoaded.cpuPercent.toFixed(1)}% (eu-west ${idleLoaded.euCpuPercent.toFixed(1)}%)`);

    const peakRss = sampler.peakRss.get('us-east') ?? 0;
    const pct = (x: number) => `${x.toFixed(1)}%`;
    const f = (xs: number[], unit: string, d = 1) => formatMedian(xs, unit, d);
    const ratios = trials.map((x) => x.subjectMBps / x.baselineMBps);
    const controlRatios = trials.map((x) => x.subjectMBps / x.controlMBps);
    const spreadRatios = trials.map((x) => x.spreadMBps / x.spreadBaselineMBps);
    const diskRatios = trials.map((x) => x.disk.spread.mbps / x.disk.single.mbps);
    const aloneRatios = trials.map((x) => x.aloneMBps / x.aloneBaselineMBps);
    const lagP99s = trials.map((x) => x.lag.remote.p99 / 1000);
    const restarts = trials.map((x) => x.restart.metadataSeconds);
    const rows: Row[] = [
      ['broker RSS, idle (topics created; after the load)', `${mib(idleEmpty.rss)}; ${mib(idleLoaded.rss)}`, '—'],
      ['broker RSS under load (peak, sampled every 250 ms)', mib(peakRss), `target < 1 GiB: ${peakRss < 2 ** 30 ? 'met' : 'missed'}`],
      ['open fds (idle empty; idle after the load; peak)', `${idleEmpty.fds}; ${idleLoaded.fds}; ${sampler.peakFds.get('us-east') ?? 0}`, `limit ${fs.readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+(\d+)/)?.[1] ?? '?'} (ulimit -n)`],
      [`broker CPU while idle, ${IDLE_SECONDS} s (empty; after the load)`, `${pct(idleEmpty.cpuPercent)}; ${pct(idleLoaded.cpuPercent)} of a core`, `target < 5%: ${idleEmpty.cpuPercent < 5 && idleLoaded.cpuPercent < 5 ? 'met' : 'missed'} (eu-west ${pct(idleEmpty.euCpuPercent)}; ${pct(idleLoaded.euCpuPercent)})`],
      ['us-east\'s own stalls while idle (empty; after the load)', `${stalls(idleEmpty.runtime)}; ${stalls(idleLoaded.runtime)}`, 'GET /v1/runtime over the idle window'],
      [`Metadata, all ${EXPECT.size} topics (20 in a row; idle, after the load)`, `p50 ${percentile(metaEmpty.ms, 50).toFixed(1)} ms, max ${metaEmpty.ms.at(-1)!.toFixed(1)} ms; p50 ${percentile(metaLoaded.ms, 50).toFixed(1)} ms, max ${metaLoaded.ms.at(-1)!.toFixed(1)} ms`, `${(metaEmpty.bytes / 1024).toFixed(0)} KiB per response`],
      [
        `produce: one connection over all ${PARTITIONS} partitions vs the same connection into one partition (acks=all, ${IN_FLIGHT} requests of ~1 MB in flight)`,
        `${f(trials.map((x) => x.spreadMBps), 'MB/s')} vs ${f(trials.map((x) => x.spreadBaselineMBps), 'MB/s')}: **${formatRatio(spreadRatios)}**`,
        formatTarget(spreadRatios, '>=', 0.5, '50%'),
      ],
      [
        'CPU during those two runs (over every partition; into one): the machine (2 cores); us-east, and of it its event-loop thread (user + kernel); eu-west',
        (['spreadCpu', 'spreadBaselineCpu'] as const)
          .map((k) => {
            const c = trials.map((x) => x[k]);
            return `${f(c.map((x) => x.machine), 's', 2)}; us-east ${f(c.map((x) => x.us), 's', 2)}, event loop ${f(c.map((x) => x.usMainUser), 's', 2)} + ${f(c.map((x) => x.usMainSystem), 's', 2)}; eu-west ${f(c.map((x) => x.eu), 's', 2)}`;
          })
          .join(' — '),
        'where the time goes (bench/README, "One connection over 10,000 partitions"): the kernel share of the event loop rises on this VM once the page cache grows into memory the hypervisor took back',
      ],
      [
        'the same pair without replication (us-east\'s policy taken away for these two runs, then put back): MB/s; CPU (the machine; us-east)',
        `${f(trials.map((x) => x.aloneMBps), 'MB/s')} vs ${f(trials.map((x) => x.aloneBaselineMBps), 'MB/s')}: **${formatRatio(aloneRatios)}**; ${f(trials.map((x) => x.aloneCpu.machine), 's', 2)}, us-east ${f(trials.map((x) => x.aloneCpu.us), 's', 2)} — ${f(trials.map((x) => x.aloneBaselineCpu.machine), 's', 2)}, us-east ${f(trials.map((x) => x.aloneBaselineCpu.us), 's', 2)}`,
        `what spreading costs one broker by itself; ${formatTarget(aloneRatios, '>=', 0.5, '50%')}. The target's row above also carries the replicator's and eu-west's share of the same 2 cores`,
      ],
      [
        `the disk alone in the same two patterns: two writers at once (as the two regions), an fdatasync per file written; over ${PARTITIONS} files vs into one`,
        `${f(trials.map((x) => x.disk.spread.mbps), 'MB/s')} vs ${f(trials.map((x) => x.disk.single.mbps), 'MB/s')}: **${formatRatio(diskRatios)}**`,
        `what an fdatasync per partition leaves of the disk (the ceiling of the row above with log.flush.journal off; on, the default, the broker makes those writes durable with one fdatasync per group); the writers' system CPU ${f(trials.map((x) => x.disk.spread.systemSeconds), 's', 2)} vs ${f(trials.map((x) => x.disk.single.systemSeconds), 's', 2)}`,
      ],
      [`produce: ${TOPICS} kcats (one per topic) over ${PARTITIONS} partitions vs the same ${TOPICS} kcats into one partition`, `${f(trials.map((x) => x.subjectMBps), 'MB/s')} vs ${f(trials.map((x) => x.controlMBps), 'MB/s')}: **${formatRatio(controlRatios)}**`, formatTarget(controlRatios, '>=', 0.5, '50%')],
      [`produce: the same ${PARTITIONS} partitions vs one kcat into one partition`, `vs ${f(trials.map((x) => x.baselineMBps), 'MB/s')}: **${formatRatio(ratios)}**`, `${formatTarget(ratios, '>=', 0.5, '50%')} (this baseline starts 1 process, the subject ${TOPICS})`],
      ['us-east\'s own stalls while the subject produced (GET /v1/runtime)', trials.map((x) => stalls(x.subjectRuntime)).join('; '), 'per trial'],
      [`replication lag at ${LAG_RATE}/s over all partitions: ack in us-east → read in eu-west`, `p50 ${f(trials.map((x) => x.lag.remote.p50 / 1000), 's', 3)}, **p99 ${f(lagP99s, 's', 3)}**, max ${(Math.max(...trials.map((x) => x.lag.remote.max)) / 1000).toFixed(3)} s`, `${formatTarget(lagP99s, '<', 1, '1 s')}; ${trials.map((x) => x.lag.remote.missing).join(', ')} of ${LAG_RATE * LAG_SECONDS} probes not read in eu-west ${LAG_DRAIN_MS / 1000} s after the last was sent${trials.some((x) => x.lag.warmed < ALL.length) ? `; the consumers were seen reading only ${trials.map((x) => x.lag.warmed).join(', ')} of ${ALL.length} partitions before the run` : ''}`],
      ['the same records read in us-east (baseline: the consumer\'s own share)', `p50 ${f(trials.map((x) => x.lag.local.p50 / 1000), 's', 3)}, p99 ${f(trials.map((x) => x.lag.local.p99 / 1000), 's', 3)}, max ${(Math.max(...trials.map((x) => x.lag.local.max)) / 1000).toFixed(3)} s`, `eu-west p99 − us-east p99: ${f(trials.map((x) => (x.lag.remote.p99 - x.lag.local.p99) / 1000), 's', 3)}`],
      ['replication catch-up after the produce run', f(trials.map((x) => x.catchUpSeconds), 's'), `${total} messages replicated`],
      ['restart after SIGKILL under load: to Metadata for every topic; to a Produce', `**${f(restarts, 's')}**; ${f(trials.map((x) => x.restart.produceSeconds), 's')}`, formatTarget(restarts, '<', 30, '30 s')],
      ['topic creation (CreateTopics, 250 a request); visible in eu-west', `${createSeconds.toFixed(1)} s; ${euVisible.toFixed(1)} s`, `${EXPECT.size} topics, ${PARTITIONS + 1} partitions`],
      [`consume: a kcat group over ${PARTITIONS} partitions vs kcat on one partition (one run)`, `${c.groupPerSec.toFixed(0)} vs ${c.singlePerSec.toFixed(0)} records/s: ${((c.groupPerSec / c.singlePerSec) * 100).toFixed(0)}%`, `read ${c.groupRecords} of ${c.expected}; ${c.singleRecords} of ${c.singleExpected}`],
      ...[...adminLoaded].map(([r, a]): Row => [`admin GET ${r} (after the load)`, `${a.status}, ${(a.bytes / 1024).toFixed(0)} KiB in ${a.ms.toFixed(0)} ms`, `idle, empty: ${(adminEmpty.get(r)!.bytes / 1024).toFixed(0)} KiB in ${adminEmpty.get(r)!.ms.toFixed(0)} ms`]),
    ];
    const table = formatTable(['figure', 'result', 'baseline or target'], rows);
    const failures = trials.reduce((n, x) => n + x.lag.remote.missing + x.lag.local.missing, 0) + (BigInt(c.groupRecords) === c.expected ? 0 : 1) + (BigInt(c.singleRecords) === c.singleExpected ? 0 : 1);
    const notes = [
      `${PARTITIONS} partitions in ${TOPICS} topics (\`scale-0000\`...) of ${PER_TOPIC}, plus the one-partition baseline topic \`${SINGLE}\`, on one broker (us-east), replicated one way to a second broker (eu-west) on the same machine; both run \`meridian broker --config FILE\` with the defaults (fsync flush mode) except \`topics.autoCreate: false\` and \`groups.initialRebalanceDelayMs: 0\`. Brokers, kcat and this script share the machine's cores.`,
      '',
      `Figures with a range are the median and range (min–max) of ${TRIALS} trial(s); the produce ratio is taken within each trial, the baseline run right before its subject.`,
      '',
      `- Produce, one connection (the target's row): this script's producer sends ${total} messages of ${MSG} B, acks=all, with ${IN_FLIGHT} requests of about 1 MB in flight on one connection; over all partitions each request carries one batch for each of the next partitions in turn (round-robin, ${Math.max(1, Math.floor(total / PARTITIONS))} records a batch), into one partition each request is one batch. Both run back to back in each trial, the one-partition baseline first; the ratio is what spreading the same bytes over ${PARTITIONS} partitions costs the broker (more, smaller batches; with the shared journal, on by default, one fdatasync per group of partitions written, else one per partition).`,
      `- Without replication: right after that pair, us-east's replication policy is replaced at run time by none (\`PUT /v1/replication/policies\`, its ${PARTITIONS + 1} workers stop), the same two runs go again, and the config file's policy comes back (\`DELETE\`); eu-west then catches up on both runs' bytes before the next row.`,
      `- The disk alone (bench/fsync-pattern.ts, no broker): right after that pair, two processes at once (us-east and eu-west each write every byte) each write the same ${total * MSG} bytes with ${IN_FLIGHT} requests in flight: into one file, ~1 MB per write; then over ${PARTITIONS} files (one per partition) in the produce's pattern, one partition batch's bytes per file per request, each write followed by an fdatasync of its file, as a log per partition in fsync mode does without the shared journal. MB/s is the slower writer's. The ratio is what the disk itself gives up for an fdatasync per partition, before any broker code runs.`,
      `- Produce, kcat: ${total} messages of ${MSG} B per run, acks=all. Subject: one kcat per topic (${perTopic} messages each, \`topic.partitioner=random\` over its ${PER_TOPIC} partitions), ${KCAT_PARALLEL} at a time; kcat produces to one topic per run, so ${TOPICS} processes start, connect and fetch metadata. Its baseline: the same fleet, same messages, into partition 0 of the one-partition topic \`${SINGLE}\`, run right before it: the ratio is what spreading over ${PARTITIONS} partitions costs. Second baseline: one kcat sends all ${total} messages into \`${SINGLE}\` (no process starts to pay for).`,
      `- Replication lag: ${LAG_RATE} one-record batches/s (100 B values) for ${LAG_SECONDS} s, round-robin over all ${PARTITIONS} partitions, acks=all, one connection with up to 5 requests in flight; a kcat consumer group in eu-west (regex subscription, from the latest offsets, shown to read every partition before the run) prints each record unbuffered; lag is from the Produce acknowledgement in us-east to the line arriving here (same clock). A probe not read ${LAG_DRAIN_MS / 1000} s after the last was sent counts as infinitely late (a p99 of Infinity: more than 1% never arrived in time). A second kcat group reads the same records in us-east: the consumer's own share of the lag.`,
      `- Restart: one kcat per topic (idempotent, same messages as the subject) produces; 2 s in, us-east gets SIGKILL and is spawned again at once; timed from the spawn to a Metadata response listing every topic with every partition led, then to an acknowledged Produce. kcat gives up when all its brokers are down (librdkafka's ALL_BROKERS_DOWN is fatal to kcat), so the kcats running at the kill or started while it was down exit with an error: ${median(trials.map((x) => x.restart.fleetFailed))} of ${TOPICS} (median); those started once it serves again finish. The consume count below covers whatever they wrote.`,
      `- RSS and fds from /proc/<pid>/status and /proc/<pid>/fd; CPU from /proc/<pid>/stat over ${IDLE_SECONDS} s with no client connected. Admin routes: median of 3 GETs.`,
      '',
      failures === 0 ? 'Every record was read: the lag consumer saw every probe, and the consume counts equal the sum of the high watermarks.' : `**Problems: ${failures}** (missing lag probes, or consume counts that differ from the high watermarks; see the figures).`,
    ];
    console.log(`\n${table}`);
    writeResults('scale', `Scale: ${PARTITIONS} partitions on one broker`, table, notes, PARTITIONS === 10_000 ? 'npm run bench:scale' : `npm run bench:scale -- --partitions ${PARTITIONS}`);
  } finally {
    sampler?.stop();
    for (const c of LIVE) c.kill('SIGKILL');
    await Promise.all([us.stop(), eu.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
