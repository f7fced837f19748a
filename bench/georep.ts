/**
 * bench:georep — geo-replication between two regions on this machine, against NATS
 * JetStream's mirror over a leafnode measured in the same run (bench/georep-nats.ts).
 *
 *   npm run bench:georep
 *   BENCH_GEOREP_MESSAGES=100000 npm run bench:georep     # a quicker run
 *
 * Two regions, each a broker in its own process, replicate one topic one way (us-east to
 * eu-west), like a JetStream stream and its mirror:
 *   1. throughput: kcat produces 1 KiB messages into us-east as fast as it can (acks=all);
 *      the replicator's backlog is sampled every 250 ms; replication MB/s is measured from
 *      the first produce to eu-west holding the last record;
 *   2. lag: a producer sends at a fixed moderate rate (5,000 msgs/s) into us-east, and a
 *      consumer long-polls eu-west; lag is the time from the produce acknowledgement in
 *      us-east to the record being returned by a Fetch in eu-west (same process, same clock).
 * Both flush modes are measured: fsync (acks after fdatasync, on both sides) and interval
 * (acks after the write), the latter being what NATS 2.9 does by default. Brokers, NATS
 * servers and clients all share the machine's 2 cores. Writes bench/results/georep.md.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { ApiKey } from '../src/protocol/kafka/api-keys.js';
import { messageCodecs } from '../src/protocol/kafka/messages/index.js';
import type { FetchResponse } from '../src/protocol/kafka/messages/fetch.js';
import { LinkClient } from '../src/replication/link-client.js';
import { decodeRecords, encodeBatch, isControlBatch, lastOffsetOf, storedBatches } from '../src/storage/record-batch.js';
import { Region, freePort } from '../test/helpers/regions.js';
import { benchDir, formatTable, writeResults, type Row } from './harness.js';
import { measureJetStreamMirror, type MirrorFigures } from './georep-nats.js';

const MESSAGES = Number(process.env.BENCH_GEOREP_MESSAGES ?? 200_000);
const MSG = 1024;
const RATE = Number(process.env.BENCH_GEOREP_RATE ?? 5000);
const LAG_SECONDS = Number(process.env.BENCH_GEOREP_LAG_SECONDS ?? 10);
const WARMUP_MS = 1000;
const CAPACITY_TRIALS = Number(process.env.BENCH_GEOREP_TRIALS ?? 5);
const SHM = '/dev/shm';

interface Figures {
  produceAloneMBps: number;
  catchUpMBps: number;
  produceMBps: number;
  replicationMBps: number;
  endLagMessages: number;
  maxLagMessages: number;
  catchUpMs: number;
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  lagSamples: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function run(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${cmd} exited ${code}: ${stderr}`))));
  });
}

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
 * Capacity: with eu-west down, kcat fills us-east alone (its maximum produce rate, nothing
 * else running); then eu-west starts and the backlog is replicated (the link's maximum
 * rate, measured from the first record it acknowledges to the last, so eu-west's process
 * start is not counted). Keeping up means the second is at least the first.
 */
async function capacity(a: Region, b: Region, msgFile: string, log: (s: string) => void): Promise<Pick<Figures, 'produceAloneMBps' | 'catchUpMBps'>> {
  // This VM's disk varies a lot from one second to the next: trials alternate produce and
  // replication, and the medians are compared.
  const trials: Array<Pick<Figures, 'produceAloneMBps' | 'catchUpMBps'>> = [];
  for (let i = 0; i < CAPACITY_TRIALS; i++) trials.push(await capacityTrial(a, b, `georep-capacity-${i}`, msgFile, log));
  const median = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  return { produceAloneMBps: median(trials.map((t) => t.produceAloneMBps)), catchUpMBps: median(trials.map((t) => t.catchUpMBps)) };
}

async function capacityTrial(a: Region, b: Region, topic: string, msgFile: string, log: (s: string) => void): Promise<Pick<Figures, 'produceAloneMBps' | 'catchUpMBps'>> {
  await createTopic(a.bootstrap, topic);
  await b.stop();
  const produceMs = await run('kcat', ['-P', '-b', a.bootstrap, '-t', topic, '-p', '0', '-X', 'acks=all', '-l', msgFile]);
  await b.start();
  await untilReplicated(a, topic, 0n);
  const first = BigInt((await worker(a, topic))!.replicatedOffset!);
  const t0 = performance.now();
  await untilReplicated(a, topic, BigInt(MESSAGES - 1));
  const bytes = Number(BigInt(MESSAGES - 1) - first) * MSG;
  const f = { produceAloneMBps: (MESSAGES * MSG) / (produceMs / 1000) / 1e6, catchUpMBps: bytes / ((performance.now() - t0) / 1000) / 1e6 };
  log(`  capacity: produce alone ${f.produceAloneMBps.toFixed(1)} MB/s, replication of the backlog ${f.catchUpMBps.toFixed(1)} MB/s`);
  return f;
}

/**
 * Live: kcat produces at full speed while the link replicates; the backlog is sampled every
 * 250 ms. On one machine the two regions share 2 cores and one disk, so each slows the other.
 */
async function throughput(a: Region, msgFile: string, log: (s: string) => void): Promise<Pick<Figures, 'produceMBps' | 'replicationMBps' | 'endLagMessages' | 'maxLagMessages' | 'catchUpMs'>> {
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
  const produceMs = await run('kcat', ['-P', '-b', a.bootstrap, '-t', topic, '-p', '0', '-X', 'acks=all', '-l', msgFile]);
  const end = await worker(a, topic);
  const endLag = end?.backlogRecords ?? MESSAGES;
  const tProduced = performance.now();
  await untilReplicated(a, topic, BigInt(MESSAGES - 1));
  const tDone = performance.now();
  sampling = false;
  await sampler;
  const bytes = MESSAGES * MSG;
  const f = {
    produceMBps: bytes / (produceMs / 1000) / 1e6,
    replicationMBps: bytes / ((tDone - t0) / 1000) / 1e6,
    endLagMessages: endLag,
    maxLagMessages: Math.max(maxLag, endLag),
    catchUpMs: tDone - tProduced,
  };
  log(`  live: produce ${f.produceMBps.toFixed(1)} MB/s, replication ${f.replicationMBps.toFixed(1)} MB/s, lag at end ${f.endLagMessages} msgs, max ${f.maxLagMessages}, caught up ${f.catchUpMs.toFixed(0)} ms after`);
  return f;
}

/**
 * Produces RATE msgs/s into `a` (each millisecond's due messages as one batch, acks=-1, up
 * to 5 requests in flight) while long-polling `b`; returns the lag of each message from its
 * acknowledgement in `a` to its Fetch in `b`.
 */
async function lagRun(a: Region, b: Region, log: (s: string) => void): Promise<number[]> {
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
  const total = Math.floor(RATE * LAG_SECONDS);
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
    const due = Math.min(total, Math.floor(((now - start) / 1000) * RATE)) - sent;
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

/**
 * Replication capacity with eu-west on its own storage (a tmpfs, so its writes cost no disk
 * time): what the replication path itself moves, against what us-east's disk takes from a
 * producer. Regions on separate machines each have their own disk; on this one they share
 * it, which caps both the producer and the replicator at the same disk's rate.
 */
async function measureSeparateStorage(dir: string, msgFile: string, log: (s: string) => void): Promise<Pick<Figures, 'produceAloneMBps' | 'catchUpMBps'> | null> {
  if (!fs.existsSync(SHM)) return null;
  const bDir = fs.mkdtempSync(path.join(SHM, 'meridian-georep-'));
  const [pa, pb] = [await freePort(), await freePort()];
  const regions = [{ name: 'us-east', address: `127.0.0.1:${pa}` }, { name: 'eu-west', address: `127.0.0.1:${pb}` }];
  const common = {
    logging: { level: 'warn' as const },
    topics: { autoCreate: false },
    replication: { retry: { initialMs: 20, maxMs: 200 }, regions, policies: [{ name: 'dr', topics: 'georep-*', topology: 'one-way', source: 'us-east', targets: ['eu-west'] }] },
  };
  const a = new Region('us-east', pa, path.join(dir, 'separate-us-east'), common);
  const b = new Region('eu-west', pb, path.join(bDir, 'eu-west'), common);
  await Promise.all([a.start(), b.start()]);
  try {
    log('Meridian, fsync mode, eu-west on its own storage (tmpfs):');
    return await capacity(a, b, msgFile, log);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    fs.rmSync(bDir, { recursive: true, force: true });
  }
}

async function measureMeridian(dir: string, mode: 'fsync' | 'interval', msgFile: string, log: (s: string) => void): Promise<Figures> {
  const [pa, pb] = [await freePort(), await freePort()];
  const regions = [{ name: 'us-east', address: `127.0.0.1:${pa}` }, { name: 'eu-west', address: `127.0.0.1:${pb}` }];
  const common = {
    logging: { level: 'warn' as const },
    log: { flush: { mode, intervalMs: 1000 } },
    topics: { autoCreate: false },
    replication: { retry: { initialMs: 20, maxMs: 200 }, regions, policies: [{ name: 'dr', topics: 'georep-*', topology: 'one-way', source: 'us-east', targets: ['eu-west'] }] },
  };
  const a = new Region('us-east', pa, path.join(dir, `${mode}-us-east`), common);
  const b = new Region('eu-west', pb, path.join(dir, `${mode}-eu-west`), common);
  await Promise.all([a.start(), b.start()]);
  try {
    log(`Meridian, flush mode ${mode}:`);
    const c = await capacity(a, b, msgFile, log);
    const t = await throughput(a, msgFile, log);
    // The throughput runs' dirty pages are written back first (the NATS run does the
    // same), so that writeback does not land in the middle of the lag measurement.
    spawnSync('sync');
    const lags = await lagRun(a, b, log);
    const f = { ...c, ...t, lagP50Ms: percentile(lags, 50), lagP99Ms: percentile(lags, 99), lagMaxMs: lags[lags.length - 1], lagSamples: lags.length };
    log(`  lag p50 ${f.lagP50Ms.toFixed(2)} ms, p99 ${f.lagP99Ms.toFixed(2)} ms, max ${f.lagMaxMs.toFixed(1)} ms`);
    return f;
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
}

async function main(): Promise<void> {
  if (!fs.existsSync('/usr/bin/kcat')) throw new Error('kcat is required: bash scripts/install-tools.sh');
  const dir = benchDir('georep');
  const log = (s: string) => console.log(s);
  log(`bench:georep: ${MESSAGES} messages of ${MSG} B at full speed, then ${RATE} msgs/s for ${LAG_SECONDS} s, in ${dir}`);
  const msgFile = path.join(dir, 'messages.txt');
  const line = 'g'.repeat(MSG - 1) + '\n';
  const fd = fs.openSync(msgFile, 'w');
  for (let i = 0; i < MESSAGES; i += 10_000) fs.writeSync(fd, line.repeat(Math.min(10_000, MESSAGES - i)));
  fs.closeSync(fd);
  try {
    const fsync = await measureMeridian(dir, 'fsync', msgFile, log);
    if (process.env.BENCH_GEOREP_QUICK === '1') return; // tuning runs: Meridian fsync only, no results file
    const interval = await measureMeridian(dir, 'interval', msgFile, log);
    const separate = await measureSeparateStorage(dir, msgFile, log);
    log('NATS JetStream mirror over a leafnode:');
    const nats: MirrorFigures = await measureJetStreamMirror({ dir: path.join(dir, 'nats'), messageBytes: MSG, fullSpeedMessages: MESSAGES, rate: RATE, latencySeconds: LAG_SECONDS, log: (s) => log(`  ${s}`) });
    log(`  produce ${nats.produceMBps.toFixed(1)} MB/s, mirror ${nats.replicationMBps.toFixed(1)} MB/s, lag p50 ${nats.lagP50Ms.toFixed(2)} ms, p99 ${nats.lagP99Ms.toFixed(2)} ms`);

    const n = (x: number, d = 1) => x.toFixed(d);
    const rows: Row[] = [];
    const live = (f: { produceMBps: number; replicationMBps: number; maxLagMessages: number; catchUpMs: number }) =>
      `${n(f.produceMBps)} / ${n(f.replicationMBps)} (max ${f.maxLagMessages} msgs behind, caught up ${n(f.catchUpMs, 0)} ms after the last produce)`;
    for (const [name, f] of [['Meridian, fsync acks', fsync], ['Meridian, interval flush', interval]] as const) {
      rows.push([name, n(f.produceAloneMBps), n(f.catchUpMBps), `**${n(f.catchUpMBps / f.produceAloneMBps, 2)}x**`, live(f), n(f.lagP50Ms, 2), n(f.lagP99Ms, 2), n(f.lagMaxMs, 1), `**${n(f.lagP99Ms / nats.lagP99Ms, 2)}x**`]);
    }
    if (separate) rows.push(['Meridian, fsync acks, eu-west on its own storage', n(separate.produceAloneMBps), n(separate.catchUpMBps), `**${n(separate.catchUpMBps / separate.produceAloneMBps, 2)}x**`, '—', '—', '—', '—', '—']);
    rows.push(['NATS JetStream mirror (leafnode)', '—', '—', '—', live(nats), n(nats.lagP50Ms, 2), n(nats.lagP99Ms, 2), n(nats.lagMaxMs, 1), '1x']);
    const table = formatTable(
      ['system', 'produce alone MB/s', 'replication of a backlog MB/s', 'replication / produce', 'live: produce / replication MB/s', `lag p50 ms @${RATE}/s`, 'lag p99 ms', 'lag max ms', 'p99 vs JetStream'],
      rows,
    );
    const notes = [
      `One topic, one partition, replicated one way (us-east to eu-west, like a JetStream stream and its mirror). ${MESSAGES} messages of ${MSG} B produced at full speed into region A (kcat, acks=all; for NATS a pipelined publisher at the server's ceiling), then ${RATE} msgs/s for ${LAG_SECONDS} s (first ${WARMUP_MS} ms ignored).`,
      '',
      `- Capacity: region A alone takes the messages at its maximum rate while B is down; then B starts and the backlog is replicated (timed from the first acknowledged request to the last, so B's process start is not counted). Keeping up means the link replicates at least as fast as A can take produce: the ratio column (medians of ${CAPACITY_TRIALS} alternating trials; this VM's disk varies by 2x from one second to the next). Both regions write to the same disk here, so producing and replicating are capped by the same disk rate; the row with eu-west on its own storage (a tmpfs) measures what the replication path itself carries, as between regions on separate machines.`,
      '- Live: the same produce with the link running. On one machine the two regions share 2 cores and one disk, so the live figures split the machine between them; JetStream\'s live figures are the same measurement.',
      '',
      'Live replication MB/s runs from the first produce to region B holding the last message. Lag runs from the produce acknowledgement in A to the message being returned by a consumer in B (same process, same clock; a negative value means B served it before A\'s ack reached the producer).',
      '',
      'Both regions, both NATS servers and the clients share 2 cores. NATS 2.9 acknowledges after a buffered write; Meridian\'s interval mode is the like-for-like comparison, fsync mode is Meridian\'s default (fdatasync before every acknowledgement, in both regions).',
      '',
      'The interval mode replicated a backlog somewhat more slowly than the fsync mode in most runs (the receiving region then fdatasyncs a second of appends at once); the disk noise is too large here to say more.',
      '',
      `Targets: replication keeps up with region A's maximum produce rate; p99 lag no worse than 2x JetStream's mirror at the same rate and message size.`,
    ];
    console.log(`\n${table}`);
    writeResults('georep', 'Geo-replication vs NATS JetStream mirror', table, notes);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
