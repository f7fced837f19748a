/**
 * bench:tiered — offload throughput, cold reads from the object store through Kafka Fetch
 * and hot (local) reads of the same data in the same run, for the directory backend and S3
 * (s3rver), in alternating trials.
 *
 *   npm run bench:tiered
 *   BENCH_TIERED_MIB=128 BENCH_TIERED_TRIALS=5 npm run bench:tiered
 *   BENCH_TIERED_MIB=64 BENCH_TIERED_BACKENDS=directory BENCH_TIERED_WRITE=0 npm run bench:tiered
 *
 * BENCH_TIERED_BACKENDS (default `directory,s3rver`) picks the backends; BENCH_TIERED_WRITE=0
 * prints the table without writing the results file (a quick check of a change);
 * BENCH_TIERED_CPU_PROFILE=<dir> writes a V8 CPU profile of each cold read there.
 *
 * Per backend, one broker; each trial uses a fresh topic: kcat produces N MiB (acks=all,
 * 1 KiB) with offload off (its rate is the produce figure offload must keep up with); the
 * store's own PUT rate is measured straight through the BlobStore (and, before the cold read,
 * its GET rate in the cold reader's pattern); `offloadNow` uploads
 * every segment (offload MB/s); kcat reads everything back from local disk (hot); the local
 * copies (held until then) are deleted; one Fetch with a cold cache gives the first-byte
 * latency; kcat reads everything back from the store (cold). So each trial runs every
 * baseline before its subject, and the trials alternate them. The cache's high-water mark
 * is sampled throughout. For both reads it also records the CPU time of this process (the
 * broker, plus the bench's own bookkeeping) per GB read, which a busy machine changes far
 * less than MB/s, and for the hot read the bytes whose batch CRCs were checked again (the
 * upload already read every sealed byte back against its CRC: none should be).
 * Writes bench/results/tiered.md.
 */
import fs from 'node:fs';
import inspector from 'node:inspector';
import path from 'node:path';
import { loadConfig } from '../src/config/load-config.js';
import { Broker } from '../src/broker/broker.js';
import { createLogger } from '../src/logging.js';
import { ApiKey } from '../src/protocol/kafka/api-keys.js';
import type { BlobStore } from '../src/tiered/blobstore/blob-store.js';
import { FsBlobStore } from '../src/tiered/blobstore/fs-blob-store.js';
import { DEFAULT_READ_AHEAD_BLOCKS } from '../src/tiered/remote-reader.js';
import { startS3rver } from '../test/helpers/object-stores.js';
import { RawClient } from '../test/helpers/raw-kafka.js';
import {
  benchDir,
  formatMedian,
  formatRatio,
  formatTable,
  formatTarget,
  repeat,
  requireKcat,
  runTimed,
  trialCount,
  writeMessageFile,
  writeResults,
  type Row,
} from './harness.js';

const MIB = Number(process.env.BENCH_TIERED_MIB ?? 256);
const TRIALS = trialCount('BENCH_TIERED_TRIALS');
const BACKENDS = new Set((process.env.BENCH_TIERED_BACKENDS ?? 'directory,s3rver').split(',').map((b) => b.trim()));
const WRITE_RESULTS = process.env.BENCH_TIERED_WRITE !== '0';
const CPU_PROFILE_DIR = process.env.BENCH_TIERED_CPU_PROFILE;
const MSG = 1024;
const CACHE_BYTES = 64 * 1024 * 1024;
const BLOCK_BYTES = 1024 * 1024;
const READ_CONCURRENCY = 8;
/**
 * Local copies stay this long after their upload, so the hot read finds them on disk; the
 * bench then deletes them by evaluating local retention as of this far in the future.
 */
const HOLD_LOCAL_MS = 3_600_000;

const RAW_OBJECT_BYTES = 16 * 1024 * 1024;

/**
 * The store's own PUT rate: 16 MiB objects, 4 in flight, straight through the BlobStore. The
 * objects stay for `rawGetRate` (their count is returned).
 */
async function rawPutRate(store: BlobStore, bytes: number): Promise<{ mbps: number; objects: number }> {
  const obj = Buffer.alloc(RAW_OBJECT_BYTES, 0x72);
  const n = Math.max(4, Math.round(bytes / obj.length));
  const signal = new AbortController().signal;
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < n) await store.put(`raw-baseline/${next++}`, obj, { signal });
    }),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { mbps: (n * obj.length) / seconds / 1e6, objects: n };
}

/**
 * The store's own GET rate in the cold reader's pattern, straight through the BlobStore: the
 * objects `rawPutRate` left, in ranged GETs of BLOCK_BYTES, READ_CONCURRENCY in flight, each
 * into a recycled block buffer (where the store takes one); every byte is compared with what
 * was put. Deletes the objects.
 */
async function rawGetRate(store: BlobStore, objects: number): Promise<number> {
  const signal = new AbortController().signal;
  const ranges: Array<{ key: string; start: number }> = [];
  for (let i = 0; i < objects; i++) for (let p = 0; p < RAW_OBJECT_BYTES; p += BLOCK_BYTES) ranges.push({ key: `raw-baseline/${i}`, start: p });
  const expected = Buffer.alloc(BLOCK_BYTES, 0x72);
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: READ_CONCURRENCY }, async () => {
      const into = Buffer.allocUnsafe(BLOCK_BYTES);
      while (next < ranges.length) {
        const r = ranges[next++]!;
        const got = await store.get(r.key, { signal, range: { start: r.start, end: r.start + BLOCK_BYTES - 1 }, into });
        if (!got.equals(expected)) throw new Error(`raw GET of ${r.key} at ${r.start} returned other bytes than were put`);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  for (let i = 0; i < objects; i++) await store.delete(`raw-baseline/${i}`, { signal });
  return (ranges.length * BLOCK_BYTES) / seconds / 1e6;
}

async function measure(name: string, store: BlobStore, dir: string, msgFile: string, messages: number): Promise<{ rows: Row[]; partitions: number }> {
  const config = loadConfig({
    env: {},
    overrides: {
      region: 'bench',
      dataDir: path.join(dir, `data-${name}`),
      logging: { level: 'warn' },
      kafka: { host: '127.0.0.1', port: 0 },
      log: { segmentBytes: 16 * 1024 * 1024, retention: { ms: -1 } },
      tiered: {
        enabled: true,
        offload: { onSeal: false, localBytesThreshold: -1, minAgeMs: -1 },
        localRetention: { bytes: 0 },
        deletionLagMs: HOLD_LOCAL_MS,
        checkIntervalMs: 100,
        uploadConcurrency: 4,
        cache: { bytes: CACHE_BYTES, blockBytes: BLOCK_BYTES, readConcurrency: READ_CONCURRENCY },
      },
    },
  });
  const broker = await Broker.start(config, createLogger({ level: 'warn', name: 'bench' }), { blobStore: store });
  const tiered = broker.tiered!;
  const bootstrap = `127.0.0.1:${broker.kafkaPort}`;
  const bytes = messages * MSG;
  const consumeArgs = (topic: string) => ['-C', '-b', bootstrap, '-t', topic, '-o', 'beginning', '-c', String(messages), '-q', '-f', '%S\n'];
  let peakCache = 0;
  let partitions = 0;
  const sampler = setInterval(() => (peakCache = Math.max(peakCache, tiered.reader.stats().bytesCached)), 10);
  try {
    const trials = await repeat(TRIALS, async (t) => {
      const topic = `cold-${t}`;
      // Produce with offload off: the rate offload has to keep up with.
      const p = await runTimed('kcat', ['-P', '-b', bootstrap, '-t', topic, '-X', 'acks=all', '-l', msgFile]);
      // The store's own PUT rate, just before the offload.
      const put = await rawPutRate(store, bytes);
      const putMBs = put.mbps;
      // Offload everything (the active segment is rolled first).
      const t0 = process.hrtime.bigint();
      await tiered.offloadNow(topic);
      const offloadSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const logBytes = tiered.status().filter((s) => s.topic === topic).reduce((n, s) => n + s.remoteBytes, 0);
      // Hot: everything still on local disk (no GET may be issued).
      const getsBeforeHot = tiered.reader.stats().getsIssued;
      const crcBeforeHot = crcChecked(broker, topic);
      const hotCpu0 = process.cpuUsage();
      const hot = await runTimed('kcat', consumeArgs(topic));
      const hotCpu = process.cpuUsage(hotCpu0);
      const hotCrcBytes = crcChecked(broker, topic) - crcBeforeHot;
      const hotGets = tiered.reader.stats().getsIssued - getsBeforeHot;
      if (hotGets > 0) throw new Error(`the hot read of ${topic} issued ${hotGets} GETs: local copies were deleted before it`);
      // Delete local copies (every segment but the empty active one), as if the hold had passed.
      const deadline = Date.now() + 60_000;
      for (;;) {
        tiered.tick(Date.now() + HOLD_LOCAL_MS);
        if (!broker.topics.partitions(topic).some((l) => l.segments().length > 1)) break;
        if (Date.now() > deadline) throw new Error('local copies were not deleted');
        await new Promise((r) => setTimeout(r, 20));
      }
      // First byte of a cold read: one Fetch at offset 0 of partition 0, nothing of this topic cached.
      const getsBefore = tiered.reader.stats().getsIssued;
      const firstByteMs = await firstFetch(broker.kafkaPort, topic);
      const firstGets = tiered.reader.stats().getsIssued - getsBefore;
      // Cold: everything from the store (the block above is warm; it is 1 MiB of N).
      // The store's own GET rate, just before the cold read.
      const getMBs = await rawGetRate(store, put.objects);
      const profiling = CPU_PROFILE_DIR === undefined ? undefined : await startProfile();
      const coldStats0 = tiered.reader.stats();
      const coldCpu0 = process.cpuUsage();
      const cold = await runTimed('kcat', consumeArgs(topic));
      const coldCpu = process.cpuUsage(coldCpu0);
      const coldStats = tiered.reader.stats();
      if (profiling !== undefined) await profiling(path.join(CPU_PROFILE_DIR!, `cold-${name}-${t + 1}.cpuprofile`));
      const consumed = cold.stdout.split('\n').filter(Boolean).length;
      if (consumed !== messages) throw new Error(`cold read returned ${consumed} of ${messages}`);
      partitions = broker.topics.partitions(topic).length;
      const f = {
        produceMBs: bytes / p.seconds / 1e6,
        putMBs,
        getMBs,
        offloadMBs: logBytes / offloadSeconds / 1e6,
        hotMBs: bytes / hot.seconds / 1e6,
        coldMBs: bytes / cold.seconds / 1e6,
        firstByteMs,
        firstGets,
        hotCpuPerGB: cpuSeconds(hotCpu) / (bytes / 1e9),
        coldCpuPerGB: cpuSeconds(coldCpu) / (bytes / 1e9),
        hotCrcBytes,
        coldGets: coldStats.getsIssued - coldStats0.getsIssued,
        coldReused: coldStats.buffersReused - coldStats0.buffersReused,
        coldCrcBytes: coldStats.crcBytes - coldStats0.crcBytes,
      };
      console.log(
        `  ${name} trial ${t + 1}/${TRIALS}: produce ${f.produceMBs.toFixed(0)} MB/s, PUT ${f.putMBs.toFixed(0)} MB/s, offload ${f.offloadMBs.toFixed(0)} MB/s, ` +
          `hot ${f.hotMBs.toFixed(0)} MB/s (${f.hotCpuPerGB.toFixed(2)} CPU s/GB), GET ${f.getMBs.toFixed(0)} MB/s, cold ${f.coldMBs.toFixed(0)} MB/s (${f.coldCpuPerGB.toFixed(2)} CPU s/GB), first byte ${f.firstByteMs.toFixed(1)} ms (${f.firstGets} GETs); ` +
          `cold: ${f.coldGets} GETs, ${f.coldReused} into recycled block buffers, ${(f.coldCrcBytes / 2 ** 20).toFixed(0)} MiB CRC-checked`,
      );
      return f;
    });
    const s = tiered.reader.stats();
    const col = <K extends keyof (typeof trials)[number]>(k: K) => trials.map((x) => x[k]);
    const vsProduce = trials.map((x) => x.offloadMBs / x.produceMBs);
    const vsPut = trials.map((x) => x.offloadMBs / x.putMBs);
    const coldVsHot = trials.map((x) => x.coldMBs / x.hotMBs);
    const coldVsGet = trials.map((x) => x.coldMBs / x.getMBs);
    const gets = col('firstGets');
    const rows: Row[] = [
      [`${name}: kcat produce, acks=all (offload off)`, formatMedian(col('produceMBs'), 'MB/s'), 'baseline for offload'],
      [`${name}: the store's own PUT rate (16 MiB objects, 4 in flight)`, formatMedian(col('putMBs'), 'MB/s'), 'baseline for offload'],
      [
        `${name}: offload (4 uploads in flight)`,
        formatMedian(col('offloadMBs'), 'MB/s'),
        `**${formatRatio(vsProduce, 'times')} produce**; ${formatTarget(vsProduce, '>=', 1, '1x')}; ${formatRatio(vsPut)} of the store's PUT rate`,
      ],
      [
        `${name}: hot read, kcat from local disk`,
        formatMedian(col('hotMBs'), 'MB/s'),
        `baseline for cold read; broker CPU ${formatMedian(col('hotCpuPerGB'), 's', 2)} per GB read; batch CRCs checked again: ${Math.max(...col('hotCrcBytes'))} bytes (the upload checked every sealed byte)`,
      ],
      [`${name}: the store's own GET rate (1 MiB ranges, ${READ_CONCURRENCY} in flight, as the cold reader)`, formatMedian(col('getMBs'), 'MB/s'), 'baseline for cold read: the most the store serves this way'],
      [
        `${name}: cold read, kcat through Fetch from the store`,
        formatMedian(col('coldMBs'), 'MB/s'),
        `**${formatRatio(coldVsHot)} of hot**; ${formatTarget(coldVsHot, '>=', 0.5, '50%')}; ${formatRatio(coldVsGet)} of the store's GET rate; broker CPU ${formatMedian(col('coldCpuPerGB'), 's', 2)} per GB read`,
      ],
      [
        `${name}: first byte of a cold Fetch`,
        formatMedian(col('firstByteMs'), 'ms'),
        `${Math.min(...gets) === Math.max(...gets) ? gets[0] : `${Math.min(...gets)}–${Math.max(...gets)}`} GETs issued by that Fetch (read-ahead included)`,
      ],
      [
        `${name}: cache high-water mark`,
        `${(peakCache / 2 ** 20).toFixed(1)} MiB`,
        `**configured ${CACHE_BYTES / 2 ** 20} MiB**; over all trials ${s.getsIssued} GETs, hit ratio ${(s.hitRatio * 100).toFixed(0)}%`,
      ],
    ];
    return { rows, partitions };
  } finally {
    clearInterval(sampler);
    await broker.close();
  }
}

/** Bytes of `topic`'s local logs whose batch CRCs reads have checked so far. */
function crcChecked(broker: Broker, topic: string): number {
  return broker.topics.partitions(topic).reduce((n, l) => n + l.stats().bytesCrcChecked, 0);
}

function cpuSeconds(u: NodeJS.CpuUsage): number {
  return (u.user + u.system) / 1e6;
}

/** Starts V8's CPU profiler; the function it returns stops it and writes the profile to a file. */
async function startProfile(): Promise<(file: string) => Promise<void>> {
  const session = new inspector.Session();
  session.connect();
  const post = (method: string, params?: object): Promise<any> =>
    new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
  await post('Profiler.enable');
  await post('Profiler.start');
  return async (file) => {
    const { profile } = await post('Profiler.stop');
    session.disconnect();
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(profile));
  };
}

/** One Fetch at offset 0 of partition 0 of `topic`; its time to the response, ms. */
async function firstFetch(port: number, topic: string): Promise<number> {
  const c = await RawClient.connect(port);
  try {
    const f0 = process.hrtime.bigint();
    const first = await c.request(ApiKey.Fetch, 11, {
      clusterId: null,
      replicaId: -1,
      replicaState: { replicaId: -1, replicaEpoch: -1n },
      maxWaitMs: 0,
      minBytes: 1,
      maxBytes: 1 << 20,
      isolationLevel: 0,
      sessionId: 0,
      sessionEpoch: -1,
      topics: [{ topic, topicId: '00000000-0000-0000-0000-000000000000', partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset: 0n, lastFetchedEpoch: -1, logStartOffset: -1n, partitionMaxBytes: 1 << 20, replicaDirectoryId: '00000000-0000-0000-0000-000000000000' }] }],
      forgottenTopicsData: [],
      rackId: '',
    });
    const ms = Number(process.hrtime.bigint() - f0) / 1e6;
    const code = first.body.responses[0].partitions[0].errorCode;
    if (code !== 0) throw new Error(`cold fetch failed: ${code}`);
    return ms;
  } finally {
    c.close();
  }
}

async function main(): Promise<void> {
  requireKcat();
  const dir = benchDir('tiered');
  const messages = Math.floor((MIB * 2 ** 20) / MSG);
  console.log(`bench:tiered: ${TRIALS} trials of ${messages} messages of ${MSG} B (${MIB} MiB) per backend in ${dir}`);
  const msgFile = path.join(dir, 'messages.txt');
  writeMessageFile(msgFile, messages, MSG, 't');
  const rows: Row[] = [];
  let partitions = 0;
  try {
    if (BACKENDS.has('directory')) {
      const d = await measure('directory', new FsBlobStore({ dir: path.join(dir, 'bucket') }), dir, msgFile, messages);
      rows.push(...d.rows);
      partitions = d.partitions;
    }
    if (BACKENDS.has('s3rver')) {
      const s3 = await startS3rver();
      try {
        const r = await measure('s3rver', s3.store, dir, msgFile, messages);
        rows.push(...r.rows);
        partitions = r.partitions;
      } finally {
        await s3.stop();
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const table = formatTable(['measurement', 'result', 'vs'], rows);
  console.log(table);
  if (!WRITE_RESULTS) return;
  writeResults('tiered', 'Tiered storage: offload, cold and hot reads', table, [
    `${MIB} MiB of 1 KiB messages per trial, produced by kcat into a fresh auto-created topic (${partitions} partitions, 16 MiB segments), ${TRIALS} trials per backend; the broker runs in this process, kcat and s3rver as child processes, all on 2 cores.`,
    'Each trial runs, in order: kcat produce, the store\'s PUT rate, offload, hot read (the local copies are held for it, and it must issue no GET), deletion of the local copies, the first cold Fetch, the store\'s GET rate (the PUT rate\'s objects read back in the cold reader\'s ranges and concurrency, every byte compared, then deleted), cold read; so each baseline runs before its subject within a trial and the trials alternate them. Ratios are taken within each trial and shown as the median with its range (min–max); other figures are the median and range of the trials.',
    'Broker CPU per GB read is this process\'s CPU time (the broker, and the bench\'s own bookkeeping) over the bytes read: on this shared machine MB/s moves with the load (the store\'s PUT rate, which runs no broker code, moves with it), CPU per GB much less.',
    `Cold reads go through the remote reader: ${BLOCK_BYTES / 2 ** 20} MiB ranged GETs into a ${CACHE_BYTES / 2 ** 20} MiB LRU cache with ${DEFAULT_READ_AHEAD_BLOCKS} blocks of read-ahead and ${READ_CONCURRENCY} GETs in flight; every batch is CRC-checked before it is served.`,
    's3rver is a Node.js S3 emulator that writes objects to its own disk; a real S3 or MinIO has other latencies and rates.',
  ]);
}

await main();
