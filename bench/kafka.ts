/**
 * bench:kafka — the Kafka path end to end on this machine, against the partition log's own
 * durable-append rate measured in the same run.
 *
 *   npm run bench:kafka
 *   BENCH_KAFKA_MESSAGES=100000 npm run bench:kafka     # a quicker run
 *
 * The broker runs as its own process (`meridian broker`), as in production; kcat is the
 * C client (so the client is not the bottleneck), KafkaJS the Node one. Broker, clients and
 * this script share the machine's 2 cores. Writes bench/results/kafka.md.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { ApiKey } from '../src/protocol/kafka/api-keys.js';
import { messageCodecs } from '../src/protocol/kafka/messages/index.js';
import { FrameDecoder } from '../src/protocol/kafka/frame-decoder.js';
import { Reader } from '../src/protocol/kafka/reader.js';
import { Writer } from '../src/protocol/kafka/writer.js';
import { encodeBatch } from '../src/storage/record-batch.js';
import { benchDir, formatTable, writeResults, type Row } from './harness.js';
import { logWrites } from './log-measure.js';

const BIN = fileURLToPath(new URL('../bin/meridian.js', import.meta.url));
const MESSAGES = Number(process.env.BENCH_KAFKA_MESSAGES ?? 300_000);
const MSG = 1024;
const LATENCY_RATE = Number(process.env.BENCH_KAFKA_RATE ?? 10_000);
const LATENCY_SECONDS = Number(process.env.BENCH_KAFKA_LATENCY_SECONDS ?? 10);
const VERIFY_TRIALS = Number(process.env.BENCH_KAFKA_VERIFY_TRIALS ?? 3);
/** Small segments, so most of what is consumed sits in sealed segments (whose reads check CRCs). */
const SEGMENT_BYTES = '32MiB';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function startBrokerProcess(dir: string, knownPort?: number): Promise<{ child: ChildProcess; port: number; stop: () => Promise<void> }> {
  const port = knownPort ?? (await freePort());
  const config = path.join(dir, 'broker.yaml');
  fs.writeFileSync(config, `region: bench\ndataDir: ${path.join(dir, 'data')}\nlogging:\n  level: info\nkafka:\n  port: ${port}\nlog:\n  segmentBytes: ${SEGMENT_BYTES}\n`);
  const child = spawn(process.execPath, [BIN, 'broker', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('meridian is running')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`broker exited ${code}`)));
  });
  return {
    child,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

function run(cmd: string, args: string[], stdin?: string): Promise<{ seconds: number; stdout: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: [stdin ? fs.openSync(stdin, 'r') : 'ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr}`));
      else resolve({ seconds, stdout, code });
    });
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * A minimal producer for the latency figure: messages are due at a fixed rate; every
 * millisecond the due ones go out as one batch (linger ≈ 1 ms) with acks=-1, up to 5
 * requests in flight on one connection, as librdkafka pipelines. Latency is from a
 * message's due time to its acknowledgement.
 */
async function latencyRun(port: number, topic: string, rate: number, seconds: number): Promise<number[]> {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  sock.setNoDelay(true);
  const inflight = new Map<number, number[]>();
  const latencies: number[] = [];
  const frames = new FrameDecoder({ maxFrameBytes: 0x7fffffff });
  sock.on('data', (d: Buffer) => {
    for (const frame of frames.push(d)) {
      const r = new Reader(frame);
      const corr = r.int32();
      const res = messageCodecs.get(ApiKey.Produce)!.decodeResponse(r, 7) as { responses: Array<{ partitionResponses: Array<{ errorCode: number }> }> };
      if (res.responses[0].partitionResponses[0].errorCode !== 0) throw new Error('produce failed in latency run');
      const now = performance.now();
      for (const due of inflight.get(corr)!) latencies.push(now - due);
      inflight.delete(corr);
    }
  });
  const value = Buffer.alloc(MSG - 30, 0x6c);
  const start = performance.now();
  const total = Math.floor(rate * seconds);
  let sent = 0;
  let corr = 0;
  while (sent < total) {
    const now = performance.now();
    const dueCount = Math.min(total, Math.floor(((now - start) / 1000) * rate)) - sent;
    if (dueCount > 0 && inflight.size < 5) {
      const dues = Array.from({ length: dueCount }, (_, i) => start + ((sent + i) / rate) * 1000);
      const batch = encodeBatch({ records: dues.map(() => ({ value })) });
      const w = new Writer(batch.length + 128);
      const size = w.reserveInt32();
      w.int16(ApiKey.Produce).int16(7).int32(++corr).nullableString('bench-latency');
      messageCodecs.get(ApiKey.Produce)!.encodeRequest(w, 7, { transactionalId: null, acks: -1, timeoutMs: 30_000, topicData: [{ name: topic, partitionData: [{ index: 0, records: batch }] }] } as never);
      w.setInt32(size, w.length - 4);
      inflight.set(corr, dues);
      sock.write(w.toBuffer());
      sent += dueCount;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  while (inflight.size > 0) await new Promise((r) => setTimeout(r, 5));
  sock.destroy();
  return latencies.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  if (fs.existsSync('/usr/bin/kcat') === false) throw new Error('kcat is required: bash scripts/install-tools.sh');
  const dir = benchDir('kafka');
  const bytes = MESSAGES * MSG;
  console.log(`bench:kafka: ${MESSAGES} messages of ${MSG} B (${(bytes / 2 ** 20).toFixed(0)} MiB) in ${dir}`);

  // Baseline: the log's durable appends (64 appenders, 16 KiB batches), same disk, same run.
  const base = await logWrites(path.join(dir, 'log-baseline'), 16 * 1024, Math.min(bytes, 512 * 2 ** 20), 64);
  const baseMBs = Math.min(bytes, 512 * 2 ** 20) / base.seconds / 1e6;
  console.log(`  log durable-append baseline: ${baseMBs.toFixed(0)} MB/s`);

  const msgFile = path.join(dir, 'messages.txt');
  const line = 'm'.repeat(MSG - 1) + '\n';
  const fd = fs.openSync(msgFile, 'w');
  for (let i = 0; i < MESSAGES; i += 10_000) fs.writeSync(fd, line.repeat(Math.min(10_000, MESSAGES - i)));
  fs.closeSync(fd);

  let broker = await startBrokerProcess(dir);
  const bootstrap = `127.0.0.1:${broker.port}`;
  const rows: Row[] = [];
  try {
    const kafka = new Kafka({ brokers: [bootstrap], clientId: 'bench', logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'kcat', numPartitions: 3 }, { topic: 'kjs', numPartitions: 3 }, { topic: 'latency', numPartitions: 1 }] });
    await admin.disconnect();

    // kcat produce, acks=all.
    const kp = await run('kcat', ['-P', '-b', bootstrap, '-t', 'kcat', '-X', 'acks=all', '-l', msgFile]);
    const kcatMBs = bytes / kp.seconds / 1e6;
    console.log(`  kcat produce: ${kcatMBs.toFixed(0)} MB/s`);

    // KafkaJS produce, acks=-1, 1,000-message sends, 4 at a time.
    const producer = kafka.producer();
    await producer.connect();
    const jsMessages = Math.min(MESSAGES, 200_000);
    const value = Buffer.alloc(MSG, 0x6a);
    let next = 0;
    const t0 = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < jsMessages) {
          const n = Math.min(1000, jsMessages - next);
          next += n;
          await producer.send({ topic: 'kjs', acks: -1, messages: Array.from({ length: n }, () => ({ value })) });
        }
      }),
    );
    const jsSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    await producer.disconnect();
    const jsMBs = (jsMessages * MSG) / jsSeconds / 1e6;
    console.log(`  KafkaJS produce: ${jsMBs.toFixed(0)} MB/s`);

    // kcat consume from the beginning (exits after the last message: -c).
    const kc = await run('kcat', ['-C', '-b', bootstrap, '-t', 'kcat', '-o', 'beginning', '-c', String(MESSAGES), '-q', '-f', '%S\n']);
    const consumed = kc.stdout.split('\n').filter(Boolean).length;
    if (consumed !== MESSAGES) throw new Error(`consumed ${consumed} of ${MESSAGES}`);
    const consumeMBs = bytes / kc.seconds / 1e6;
    console.log(`  kcat consume: ${consumeMBs.toFixed(0)} MB/s`);

    // Latency at a fixed moderate rate.
    const lat = await latencyRun(broker.port, 'latency', LATENCY_RATE, LATENCY_SECONDS);
    const p50 = percentile(lat, 50);
    const p99 = percentile(lat, 99);
    console.log(`  latency at ${LATENCY_RATE} msg/s: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`);

    const status = fs.readFileSync(`/proc/${broker.child.pid}/status`, 'utf8');
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;

    // Read integrity: a sealed segment's batches have their CRC-32C checked the first time a
    // process reads them, then the checked ranges are trusted. Each trial restarts the broker
    // (nothing checked yet), warms it up on another topic, and consumes twice: the first read
    // pays the checks, the second is the same read path without them. The page cache is warm
    // for both.
    const verify: Array<{ cold: number; warm: number }> = [];
    for (let trial = 0; trial < VERIFY_TRIALS; trial++) {
      await broker.stop();
      broker = await startBrokerProcess(dir, broker.port);
      const consume = async () => {
        const r = await run('kcat', ['-C', '-b', bootstrap, '-t', 'kcat', '-o', 'beginning', '-c', String(MESSAGES), '-q', '-f', '%S\n']);
        if (r.stdout.split('\n').filter(Boolean).length !== MESSAGES) throw new Error('short consume in the read-integrity trial');
        return bytes / r.seconds / 1e6;
      };
      // A fresh process runs cold code: warm it up on the other topic first, so the first
      // read below differs from the second by the checks alone.
      await run('kcat', ['-C', '-b', bootstrap, '-t', 'kjs', '-o', 'beginning', '-c', String(Math.min(MESSAGES, 100_000)), '-q', '-f', '%S\n']);
      const cold = await consume();
      const warm = await consume();
      verify.push({ cold, warm });
      console.log(`  read integrity trial ${trial + 1}: first read (CRCs checked) ${cold.toFixed(0)} MB/s, again (trusted) ${warm.toFixed(0)} MB/s`);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const ratios = verify.map((v) => v.cold / v.warm);

    rows.push(
      ['log durable appends (baseline, 64 appenders × 16 KiB)', `${baseMBs.toFixed(1)} MB/s`, '', ''],
      ['kcat produce, acks=all, 1 KiB', `${kcatMBs.toFixed(1)} MB/s`, `${(MESSAGES / kp.seconds).toFixed(0)} msg/s`, `**${((kcatMBs / baseMBs) * 100).toFixed(0)}% of baseline** (target >= 60%)`],
      ['KafkaJS produce, acks=-1, 1 KiB', `${jsMBs.toFixed(1)} MB/s`, `${(jsMessages / jsSeconds).toFixed(0)} msg/s`, `${((jsMBs / baseMBs) * 100).toFixed(0)}% of baseline (client-bound)`],
      ['kcat consume from the beginning', `${consumeMBs.toFixed(1)} MB/s`, `${(MESSAGES / kc.seconds).toFixed(0)} msg/s`, `**${(consumeMBs / kcatMBs).toFixed(1)}x produce** (target >= 3x)`],
      [`produce latency at ${LATENCY_RATE} msg/s, acks=-1`, '', `p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`, `**p99 target < 10 ms**; max ${lat[lat.length - 1].toFixed(1)} ms`],
      [
        'kcat consume, first read after a restart (sealed-segment CRCs checked)',
        `${median(verify.map((v) => v.cold)).toFixed(1)} MB/s`,
        '',
        `**${(median(ratios) * 100).toFixed(0)}% of the same read without checks** (median of ${verify.length}, range ${(Math.min(...ratios) * 100).toFixed(0)}–${(Math.max(...ratios) * 100).toFixed(0)}%; target >= 80%)`,
      ],
      ['kcat consume, second read (checked ranges trusted)', `${median(verify.map((v) => v.warm)).toFixed(1)} MB/s`, '', 'baseline for the row above'],
      ['broker peak RSS', `${(hwm / 2 ** 20).toFixed(0)} MiB`, '', ''],
    );
  } finally {
    await broker.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const table = formatTable(['measurement', 'throughput', 'rate', 'vs'], rows);
  console.log(table);
  writeResults('kafka', 'Kafka path: produce, consume and latency vs the log', table, [
    `${MESSAGES} messages of ${MSG} bytes. The broker is a separate process in flush mode fsync (acks=all waits for fdatasync, group commit), with ${SEGMENT_BYTES} segments so that most reads come from sealed segments.`,
    'Times include client start-up and metadata. kcat consume stops at the last message (-c), so the final long-poll for more data is not counted.',
    `Latency: a minimal Node producer in this script sends the messages due each millisecond as one batch (linger ≈ 1 ms), acks=-1, up to 5 requests in flight on one connection; latency runs from a message's due time to its acknowledgement, over ${LATENCY_SECONDS} s.`,
    'Broker, clients and the benchmark share 2 cores.',
  ]);
}

await main();
