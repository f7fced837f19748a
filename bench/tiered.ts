/**
 * bench:tiered — offload throughput, cold reads from the object store through Kafka Fetch
 * and hot (local) reads of the same data in the same run, for the directory backend and S3
 * (s3rver).
 *
 *   npm run bench:tiered
 *   BENCH_TIERED_MIB=128 npm run bench:tiered
 *
 * Per backend: kcat produces N MiB (acks=all, 1 KiB) with offload off (its rate is the
 * produce figure offload must keep up with); `offloadNow` uploads every segment (offload
 * MB/s); kcat reads everything back from local disk (hot); the local copies are deleted;
 * one Fetch with a cold cache gives the first-byte latency; kcat reads everything back from
 * the store (cold). The cache's high-water mark is sampled throughout. Writes
 * bench/results/tiered.md.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../src/config/load-config.js';
import { Broker } from '../src/broker/broker.js';
import { createLogger } from '../src/logging.js';
import { ApiKey } from '../src/protocol/kafka/api-keys.js';
import type { BlobStore } from '../src/tiered/blobstore/blob-store.js';
import { FsBlobStore } from '../src/tiered/blobstore/fs-blob-store.js';
import { startS3rver } from '../test/helpers/object-stores.js';
import { RawClient } from '../test/helpers/raw-kafka.js';
import { benchDir, formatTable, writeResults, type Row } from './harness.js';

const MIB = Number(process.env.BENCH_TIERED_MIB ?? 256);
const MSG = 1024;
const CACHE_BYTES = 64 * 1024 * 1024;

function run(cmd: string, args: string[], stdinFile?: string): Promise<{ seconds: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: [stdinFile ? fs.openSync(stdinFile, 'r') : 'ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('exit', (code) => (code === 0 ? resolve({ seconds: Number(process.hrtime.bigint() - t0) / 1e9, stdout }) : reject(new Error(`${cmd} exited ${code}: ${stderr}`))));
  });
}

/** The store's own PUT rate: 16 MiB objects, 4 in flight, straight through the BlobStore. */
async function rawPutRate(store: BlobStore, bytes: number): Promise<number> {
  const obj = Buffer.alloc(16 * 1024 * 1024, 0x72);
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
  for (let i = 0; i < n; i++) await store.delete(`raw-baseline/${i}`, { signal });
  return (n * obj.length) / seconds / 1e6;
}

async function measure(name: string, store: BlobStore, dir: string, msgFile: string, messages: number): Promise<Row[]> {
  const rawMBs = await rawPutRate(store, messages * MSG);
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
        deletionLagMs: 0,
        checkIntervalMs: 100,
        uploadConcurrency: 4,
        cache: { bytes: CACHE_BYTES, blockBytes: 1024 * 1024, readConcurrency: 8 },
      },
    },
  });
  const broker = await Broker.start(config, createLogger({ level: 'warn', name: 'bench' }), { blobStore: store });
  const bootstrap = `127.0.0.1:${broker.kafkaPort}`;
  const bytes = messages * MSG;
  let peakCache = 0;
  const sampler = setInterval(() => (peakCache = Math.max(peakCache, broker.tiered!.reader.stats().bytesCached)), 10);
  try {
    // Produce with offload off: the rate offload has to keep up with.
    const p = await run('kcat', ['-P', '-b', bootstrap, '-t', 'cold', '-X', 'acks=all', '-l', msgFile]);
    const produceMBs = bytes / p.seconds / 1e6;
    // Offload everything (the active segment is rolled first).
    const t0 = process.hrtime.bigint();
    await broker.tiered!.offloadNow('cold');
    const offloadSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const logBytes = broker.tiered!.status().filter((s) => s.topic === 'cold').reduce((n, s) => n + s.remoteBytes, 0);
    const offloadMBs = logBytes / offloadSeconds / 1e6;
    // Hot: everything still on local disk.
    const hot = await run('kcat', ['-C', '-b', bootstrap, '-t', 'cold', '-o', 'beginning', '-c', String(messages), '-q', '-f', '%S\n']);
    const hotMBs = bytes / hot.seconds / 1e6;
    // Delete local copies (every segment but the empty active one).
    broker.tiered!.tick();
    const deadline = Date.now() + 60_000;
    while (broker.topics.partitions('cold').some((l) => l.segments().length > 1)) {
      if (Date.now() > deadline) throw new Error('local copies were not deleted');
      await new Promise((r) => setTimeout(r, 20));
      broker.tiered!.tick();
    }
    // First byte of a cold read: one Fetch at offset 0 of partition 0, nothing cached.
    const c = await RawClient.connect(broker.kafkaPort);
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
      topics: [{ topic: 'cold', topicId: '00000000-0000-0000-0000-000000000000', partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset: 0n, lastFetchedEpoch: -1, logStartOffset: -1n, partitionMaxBytes: 1 << 20, replicaDirectoryId: '00000000-0000-0000-0000-000000000000' }] }],
      forgottenTopicsData: [],
      rackId: '',
    });
    const firstByteMs = Number(process.hrtime.bigint() - f0) / 1e6;
    c.close();
    if (first.body.responses[0].partitions[0].errorCode !== 0) throw new Error(`cold fetch failed: ${first.body.responses[0].partitions[0].errorCode}`);
    // Cold: everything from the store (the one block above is warm; it is 1 MiB of N).
    const cold = await run('kcat', ['-C', '-b', bootstrap, '-t', 'cold', '-o', 'beginning', '-c', String(messages), '-q', '-f', '%S\n']);
    const consumed = cold.stdout.split('\n').filter(Boolean).length;
    if (consumed !== messages) throw new Error(`cold read returned ${consumed} of ${messages}`);
    const coldMBs = bytes / cold.seconds / 1e6;
    const s = broker.tiered!.reader.stats();
    console.log(`  ${name}: produce ${produceMBs.toFixed(0)} MB/s, offload ${offloadMBs.toFixed(0)} MB/s, hot ${hotMBs.toFixed(0)} MB/s, cold ${coldMBs.toFixed(0)} MB/s, first byte ${firstByteMs.toFixed(1)} ms`);
    return [
      [`${name}: kcat produce, acks=all (offload off)`, `${produceMBs.toFixed(1)} MB/s`, ''],
      [`${name}: the store's own PUT rate (16 MiB objects, 4 in flight)`, `${rawMBs.toFixed(1)} MB/s`, 'baseline'],
      [
        `${name}: offload (4 uploads in flight)`,
        `${offloadMBs.toFixed(1)} MB/s`,
        `**${(offloadMBs / produceMBs).toFixed(2)}x produce** (target >= 1x); ${((offloadMBs / rawMBs) * 100).toFixed(0)}% of the store's PUT rate`,
      ],
      [`${name}: hot read, kcat from local disk`, `${hotMBs.toFixed(1)} MB/s`, ''],
      [`${name}: cold read, kcat through Fetch from the store`, `${coldMBs.toFixed(1)} MB/s`, `**${((coldMBs / hotMBs) * 100).toFixed(0)}% of hot** (target >= 50%)`],
      [`${name}: first byte of a cold Fetch`, `${firstByteMs.toFixed(1)} ms`, 'one 1 MiB block GET + index GET'],
      [`${name}: cache high-water mark`, `${(peakCache / 2 ** 20).toFixed(1)} MiB`, `**configured ${CACHE_BYTES / 2 ** 20} MiB**; ${s.getsIssued} GETs, hit ratio ${(s.hitRatio * 100).toFixed(0)}%`],
    ];
  } finally {
    clearInterval(sampler);
    await broker.close();
  }
}

async function main(): Promise<void> {
  const dir = benchDir('tiered');
  const messages = Math.floor((MIB * 2 ** 20) / MSG);
  console.log(`bench:tiered: ${messages} messages of ${MSG} B (${MIB} MiB) per backend in ${dir}`);
  const msgFile = path.join(dir, 'messages.txt');
  const line = 't'.repeat(MSG - 1) + '\n';
  const fd = fs.openSync(msgFile, 'w');
  for (let i = 0; i < messages; i += 10_000) fs.writeSync(fd, line.repeat(Math.min(10_000, messages - i)));
  fs.closeSync(fd);
  const rows: Row[] = [];
  try {
    rows.push(...(await measure('directory', new FsBlobStore({ dir: path.join(dir, 'bucket') }), dir, msgFile, messages)));
    const s3 = await startS3rver();
    try {
      rows.push(...(await measure('s3rver', s3.store, dir, msgFile, messages)));
    } finally {
      await s3.stop();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const table = formatTable(['measurement', 'result', 'vs'], rows);
  console.log(table);
  writeResults('tiered', 'Tiered storage: offload, cold and hot reads', table, [
    `${MIB} MiB of 1 KiB messages per backend in one partition of 16 MiB segments; the broker runs in this process, kcat and s3rver as child processes, all on 2 cores.`,
    'Cold reads go through the remote reader: 1 MiB ranged GETs into a 64 MiB LRU cache with 2 blocks of read-ahead and 8 GETs in flight; every batch is CRC-checked before it is served.',
    's3rver is a Node.js S3 emulator that writes objects to its own disk: a real S3 or MinIO has other latencies; the ratios, not the absolute figures, carry over.',
  ]);
}

await main();
