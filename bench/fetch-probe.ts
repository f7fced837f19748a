/**
 * Tuning probe (not a benchmark with a results file): the consumer's share of bench:scale's
 * replication lag, on one broker. PARTITIONS partitions (topics of 10), a kcat consumer group
 * over all of them (regex subscription, as bench:scale's lag consumers), and 2,000 one-record
 * produces a second round-robin over every partition; prints the lag from the produce
 * acknowledgement to the line kcat prints, and the broker's CPU over the run.
 * FETCH_PROBE_PARTITIONS (default 10000), FETCH_PROBE_SECONDS (10), FETCH_PROBE_YAML (one config
 * line for the broker), FETCH_PROBE_TAIL (print the broker's last lines), BENCH_SCALE_NODE_ARGS
 * as bench:scale (--cpu-prof).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { Kafka, logLevel } from 'kafkajs';
import { benchDir, freePort, percentile } from './harness.js';
import { BrokerProcess } from './scale-broker.js';
import { produceProbes, ScaleClient, type PartitionRef } from './scale-client.js';

const PARTITIONS = Number(process.env.FETCH_PROBE_PARTITIONS ?? 10_000);
const RATE = 2000;
const SECONDS = Number(process.env.FETCH_PROBE_SECONDS ?? 10);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const topics = Math.ceil(PARTITIONS / 10);
const ALL: PartitionRef[] = [];
for (let t = 0; t < topics; t++) for (let p = 0; p < Math.min(10, PARTITIONS - t * 10); p++) ALL.push({ topic: `scale-${String(t).padStart(4, '0')}`, partition: p });

const dir = benchDir('fetch-probe');
const us = new BrokerProcess({ region: 'us-east', dir: path.join(dir, 'us'), port: await freePort(), adminPort: await freePort(), extraYaml: ['topics: { autoCreate: false }', 'groups: { initialRebalanceDelayMs: 0 }', ...(process.env.FETCH_PROBE_YAML ? [process.env.FETCH_PROBE_YAML] : [])] });
await us.start();
try {
  const admin = new Kafka({ clientId: 'probe', brokers: [us.bootstrap], logLevel: logLevel.NOTHING, requestTimeout: 120_000 }).admin();
  await admin.connect();
  const all = Array.from({ length: topics }, (_, t) => ({ topic: `scale-${String(t).padStart(4, '0')}`, numPartitions: Math.min(10, PARTITIONS - t * 10) }));
  for (let i = 0; i < all.length; i += 250) await admin.createTopics({ topics: all.slice(i, i + 250), waitForLeaders: false, timeout: 120_000 });
  await admin.disconnect();
  await us.ready(new Map(all.map((t) => [t.topic, t.numPartitions])));
  const child = spawn('kcat', ['-b', us.bootstrap, '-G', 'probe', '-X', 'auto.offset.reset=latest', '-X', 'enable.auto.commit=false', '-u', '-q', '-f', '%k\n', '^scale-[0-9]+$'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const seen = new Map<string, number>();
  readline.createInterface({ input: child.stdout! }).on('line', (l) => seen.has(l) || seen.set(l, performance.now()));
  const producer = await ScaleClient.connect(us.spec.port);
  const value = Buffer.alloc(100, 0x6c);
  // Warm-up: one record to every partition until kcat has read from each.
  for (let round = 0; ; round++) {
    for (let i = 0; i < ALL.length; i += 1000) await producer.produce(ALL.slice(i, i + 1000).map((p, j) => ({ ...p, key: `w${round}:${i + j}` })), value);
    const t0 = performance.now();
    const covered = () => new Set([...seen.keys()].filter((k) => k.startsWith('w')).map((k) => k.slice(k.indexOf(':') + 1))).size;
    while (covered() < ALL.length && performance.now() - t0 < 3000) await sleep(100);
    console.log(`warm-up round ${round}: ${covered()} of ${ALL.length} partitions read`);
    if (covered() === ALL.length || round >= 20) break;
  }
  const total = RATE * SECONDS;
  const cpu0 = us.cpuSeconds();
  const start = performance.now();
  const acked = await produceProbes(producer, ALL, RATE, total, value);
  const deadline = performance.now() + 60_000;
  const got = () => Array.from({ length: total }, (_, i) => seen.has(`p${i}`)).filter(Boolean).length;
  while (got() < total && performance.now() < deadline) await sleep(200);
  const secs = (performance.now() - start) / 1000;
  const cpu = (us.cpuSeconds() - cpu0) / secs;
  const lags = Array.from({ length: total }, (_, i) => (seen.get(`p${i}`) ?? Infinity) - acked[i]).sort((a, b) => a - b);
  console.log(`${PARTITIONS} partitions, ${total} probes: lag p50 ${percentile(lags, 50).toFixed(0)} ms, p99 ${percentile(lags, 99).toFixed(0)} ms, max ${lags[lags.length - 1].toFixed(0)} ms; missing ${lags.filter((x) => x === Infinity).length}; broker CPU ${(cpu * 100).toFixed(0)}% of a core over ${secs.toFixed(1)} s`);
  producer.close();
  child.kill('SIGTERM');
  if (process.env.FETCH_PROBE_TAIL) console.log(us.tail);
} finally {
  await us.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
