/**
 * bench:kafka — the Kafka path end to end on this machine, against the partition log's own
 * durable-append rate measured in the same run, in alternating trials.
 *
 *   npm run bench:kafka
 *   BENCH_KAFKA_MESSAGES=100000 BENCH_KAFKA_TRIALS=5 npm run bench:kafka
 *
 * The broker runs as its own process (`meridian broker`), as in production; kcat is the
 * C client (so the client is not the bottleneck), KafkaJS the Node one. Broker, clients and
 * this script share the machine's 2 cores. Writes bench/results/kafka.md.
 *
 * The broker has two listeners: PLAINTEXT, which every row uses unless it says otherwise, and
 * SASL_SSL (TLS with certificates made by openssl in the bench's directory, SCRAM-SHA-512
 * with a bootstrap user), for the rows that price TLS and SASL against plaintext in
 * alternating trials, and for the rate of full logins (TCP, TLS, SCRAM).
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { SECRETS } from '../test/helpers/secrets.js';
import { makePki, type Pki } from '../test/helpers/tls-certs.js';
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
  processCpuSeconds,
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
import { logWrites } from './log-measure.js';
import { inChild, type ClientGc } from './latency.js';
import { BROKER_NODE_FLAGS } from '../src/node-flags.js';

const BIN = fileURLToPath(new URL('../bin/meridian.js', import.meta.url));
const MESSAGES = Number(process.env.BENCH_KAFKA_MESSAGES ?? 300_000);
const MSG = 1024;
const LATENCY_RATE = Number(process.env.BENCH_KAFKA_RATE ?? 10_000);
const LATENCY_HIGH_RATE = Number(process.env.BENCH_KAFKA_HIGH_RATE ?? 50_000);
/** `latency`: only the latency rows (no results file is written), for working on the tail. */
const ONLY = process.env.BENCH_KAFKA_ONLY;
/** The broker's event-loop delay histogram samples this often during the run (GET /v1/runtime). */
const LOOP_RESOLUTION_MS = 2;
const LATENCY_SECONDS = Number(process.env.BENCH_KAFKA_LATENCY_SECONDS ?? 10);
const TRIALS = trialCount('BENCH_KAFKA_TRIALS');
const VERIFY_TRIALS = trialCount('BENCH_KAFKA_VERIFY_TRIALS', TRIALS);
/** The log baseline writes this much per trial (at most). */
const BASELINE_BYTES_CAP = 512 * 2 ** 20;
/** Small segments, so most of what is consumed sits in sealed segments (whose reads check CRCs). */
const SEGMENT_BYTES = '32MiB';
/** Seconds of logins per handshake-rate trial, and logins under way at once. */
const LOGIN_SECONDS = Number(process.env.BENCH_KAFKA_LOGIN_SECONDS ?? 3);
const LOGIN_CONCURRENCY = 4;
const SASL_USER = 'bench';

interface BrokerPorts {
  plain: number;
  sasl: number;
  admin: number;
}

interface BrokerProcess {
  child: ChildProcess;
  port: number;
  saslPort: number;
  adminPort: number;
  stop: () => Promise<void>;
}

async function startBrokerProcess(dir: string, pki: Pki, known?: BrokerPorts): Promise<BrokerProcess> {
  const ports = known ?? { plain: await freePort(), sasl: await freePort(), admin: await freePort() };
  const config = path.join(dir, 'broker.yaml');
  fs.writeFileSync(
    config,
    [
      'region: bench',
      `dataDir: ${path.join(dir, 'data')}`,
      'logging:',
      '  level: info',
      'kafka:',
      '  listeners:',
      `    - { name: PLAINTEXT, host: 127.0.0.1, port: ${ports.plain}, securityProtocol: PLAINTEXT }`,
      `    - { name: SASL_SSL, host: 127.0.0.1, port: ${ports.sasl}, securityProtocol: SASL_SSL, tls: { certFile: ${pki.broker.cert}, keyFile: ${pki.broker.key} } }`,
      'security:',
      `  bootstrap: { user: ${SASL_USER} }`,
      'log:',
      `  segmentBytes: ${SEGMENT_BYTES}`,
      `admin: { host: 127.0.0.1, port: ${ports.admin} }`,
      `metrics: { eventLoopResolutionMs: ${LOOP_RESOLUTION_MS}ms }`,
      '',
    ].join('\n'),
  );
  // The password through the environment, as the config reference recommends, not the file.
  const env = { ...process.env, MERIDIAN_SECURITY__BOOTSTRAP__PASSWORD: SECRETS.benchSasl };
  // The broker runs with the node flags `meridian` passes (src/node-flags.ts). BENCH_KAFKA_NODE_ARGS
  // replaces them (e.g. "--cpu-prof"; "" for node's defaults).
  const nodeArgs = (process.env.BENCH_KAFKA_NODE_ARGS ?? BROKER_NODE_FLAGS.join(' ')).split(/\s+/).filter((x) => x !== '');
  const child = spawn(process.execPath, [...nodeArgs, BIN, 'broker', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'], env });
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
    port: ports.plain,
    saslPort: ports.sasl,
    adminPort: ports.admin,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** kcat's settings for the SASL_SSL listener: SCRAM-SHA-512 as the bootstrap user, the bench's CA. */
function saslKcatArgs(pki: Pki): string[] {
  return ['-X', 'security.protocol=SASL_SSL', '-X', 'sasl.mechanisms=SCRAM-SHA-512', '-X', `sasl.username=${SASL_USER}`, '-X', `sasl.password=${SECRETS.benchSasl}`, '-X', `ssl.ca.location=${pki.ca.cert}`];
}

/** CPU seconds the finished (waited-for) child processes of this process used: the kcat runs. */
function childrenCpuSeconds(): number {
  const fields = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

/** Bytes a raw stream moves (the TLS ceiling baseline). */
const RAW_STREAM_BYTES = 512 * 1024 * 1024;

/**
 * The machine's own TLS ceiling: one Node process streams RAW_STREAM_BYTES to itself over
 * loopback, over TLS (the broker's certificate, the default TLS 1.3 cipher) or plain TCP,
 * encrypting and decrypting on one core. MB/s.
 */
async function rawStream(pki: Pki, useTls: boolean): Promise<number> {
  const chunk = Buffer.alloc(1024 * 1024, 7);
  const server = useTls ? tls.createServer({ cert: fs.readFileSync(pki.broker.cert), key: fs.readFileSync(pki.broker.key) }) : net.createServer();
  server.on(useTls ? 'secureConnection' : 'connection', (socket: net.Socket) => {
    let sent = 0;
    const pump = () => {
      while (sent < RAW_STREAM_BYTES) {
        sent += chunk.length;
        if (!socket.write(chunk)) return void socket.once('drain', pump);
      }
      socket.end();
    };
    pump();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const c = useTls ? tls.connect({ port, host: '127.0.0.1', ca: fs.readFileSync(pki.ca.cert), servername: 'localhost' }) : net.connect(port, '127.0.0.1');
    c.on('data', () => {});
    c.on('end', resolve);
    c.on('error', reject);
  });
  const seconds = (performance.now() - t0) / 1000;
  await new Promise<void>((r) => server.close(() => r()));
  return RAW_STREAM_BYTES / seconds / 1e6;
}

interface LoginTrial {
  perSecond: number;
  /** The broker's CPU time per login: what a login costs the broker, whoever the client is. */
  brokerCpuMs: number;
}

/**
 * Logins per second: LOGIN_CONCURRENCY KafkaJS admins connecting and disconnecting for
 * LOGIN_SECONDS. A connect is a new TCP connection, ApiVersions and Metadata, plus, on
 * SASL_SSL, the TLS handshake, SaslHandshake and SCRAM-SHA-512's two round trips (KafkaJS
 * salts the password for each login, in this process, on the same cores).
 */
async function loginRate(kafka: Kafka, brokerPid: number): Promise<LoginTrial> {
  let logins = 0;
  const end = performance.now() + LOGIN_SECONDS * 1000;
  const t0 = performance.now();
  const cpu0 = processCpuSeconds(brokerPid);
  await Promise.all(
    Array.from({ length: LOGIN_CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const admin = kafka.admin();
        await admin.connect();
        await admin.disconnect();
        logins++;
      }
    }),
  );
  return { perSecond: logins / ((performance.now() - t0) / 1000), brokerCpuMs: ((processCpuSeconds(brokerPid) - cpu0) * 1000) / logins };
}

/** One latency run of the raw loop: its latencies (ms, sorted) and the client's GC. */
interface RawTrial {
  lat: number[];
  clientGc: ClientGc;
}

/** One produce latency run, with the broker's runtime window over it. */
interface LatencyTrial extends RawTrial {
  runtime: RuntimeWindow;
}

const clientGcText = (g: ClientGc) => `client GC ${g.count} pauses, max ${g.maxMs.toFixed(1)} ms`;

/**
 * Writes out what earlier rows left in the page cache (the throughput rows write gigabytes)
 * before each latency run, raw or broker, so that neither runs under that writeback: in
 * single-trial runs it made the broker's p99 at 10,000 msg/s 24-31 ms in 2 of 3 runs, against
 * 5-7 ms with the latency rows alone, while the raw loop before it was unaffected.
 */
function settleWriteback(): void {
  const r = spawnSync('sync', { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`sync (coreutils) failed: ${r.error?.message ?? `exit ${r.status}`}`);
}

/**
 * Produce latency at `rate` against the disk's own: alternating trials of the raw
 * write + fdatasync schedule (on the broker's disk) and the produce run, each from a fresh client
 * process (latency.ts `inChild`), the produce run bracketed by the broker's runtime window.
 */
async function latencyTrials(broker: BrokerProcess, dir: string, rate: number) {
  const topic = `latency-${rate}`;
  return alternate(
    TRIALS,
    async (t): Promise<RawTrial> => {
      settleWriteback();
      const { latencies: raw, clientGc } = await inChild({ subject: 'raw', dir, rate, seconds: LATENCY_SECONDS, messageBytes: MSG }, dir);
      console.log(`  latency trial ${t + 1}/${TRIALS} at ${rate} msg/s: raw fdatasync p50 ${percentile(raw, 50).toFixed(2)} ms, p99 ${percentile(raw, 99).toFixed(2)} ms, p99.9 ${percentile(raw, 99.9).toFixed(2)} ms; ${clientGcText(clientGc)}`);
      return { lat: raw, clientGc };
    },
    async (t): Promise<LatencyTrial> => {
      settleWriteback();
      await runtimeReset(broker.adminPort);
      const { latencies: lat, clientGc } = await inChild({ subject: 'produce', port: broker.port, topic, rate, seconds: LATENCY_SECONDS, messageBytes: MSG }, dir);
      const runtime = await runtimeReset(broker.adminPort);
      console.log(
        `  latency trial ${t + 1}/${TRIALS} at ${rate} msg/s: produce p50 ${percentile(lat, 50).toFixed(2)} ms, p99 ${percentile(lat, 99).toFixed(2)} ms, p99.9 ${percentile(lat, 99.9).toFixed(2)} ms, max ${lat[lat.length - 1].toFixed(1)} ms; ` +
          `broker loop delay p99 ${runtime.eventLoopDelayMs.p99.toFixed(1)} ms, max ${runtime.eventLoopDelayMs.max.toFixed(1)} ms; GC ${runtime.gc.count} pauses, max ${runtime.gc.maxMs.toFixed(1)} ms, total ${runtime.gc.totalMs.toFixed(0)} ms; ${clientGcText(clientGc)}`,
      );
      return { lat, runtime, clientGc };
    },
  );
}

/** The table rows of one rate: the raw baseline, produce latency against it, the broker's runtime. */
function latencyRows(rate: number, trials: Awaited<ReturnType<typeof latencyTrials>>, absoluteTargetMs?: number): Row[] {
  const pcts = (ls: number[][]) =>
    `p50 ${formatMedian(ls.map((l) => percentile(l, 50)), 'ms', 2)}; p99 ${formatMedian(ls.map((l) => percentile(l, 99)), 'ms', 2)}; p99.9 ${formatMedian(ls.map((l) => percentile(l, 99.9)), 'ms', 2)}`;
  const raws = trials.map((x) => x.baseline.lat);
  const lats = trials.map((x) => x.subject.lat);
  const ratios = trials.map((x) => percentile(x.subject.lat, 99) / percentile(x.baseline.lat, 99));
  const p99s = lats.map((l) => percentile(l, 99));
  const rt = trials.map((x) => x.subject.runtime);
  const targets = [formatTarget(ratios, '<=', 3, '3x the raw p99')];
  if (absoluteTargetMs !== undefined) targets.push(formatTarget(p99s, '<', absoluteTargetMs, `${absoluteTargetMs} ms (p99)`));
  return [
    [`raw write + fdatasync on the same disk, same cadence (${rate} msg/s of ${MSG} B, group commit)`, '', pcts(raws), 'baseline for the row below'],
    [
      `produce latency at ${rate} msg/s, acks=-1`,
      '',
      pcts(lats),
      `**p99 ${formatRatio(ratios, 'times')} the raw p99**; ${targets.map((x) => `**${x}**`).join('; ')}; max ${Math.max(...lats.map((l) => l[l.length - 1])).toFixed(1)} ms`,
    ],
    [
      `the broker during those runs (event loop, GC)`,
      '',
      `event-loop delay p99 ${formatMedian(rt.map((r) => r.eventLoopDelayMs.p99), 'ms', 2)}, max ${formatMedian(rt.map((r) => r.eventLoopDelayMs.max), 'ms', 1)}`,
      `GC: ${formatMedian(rt.map((r) => r.gc.count), 'pauses', 0)}, longest ${formatMedian(rt.map((r) => r.gc.maxMs), 'ms', 1)}, total ${formatMedian(rt.map((r) => r.gc.totalMs), 'ms', 0)} per ${LATENCY_SECONDS} s run`,
    ],
    [
      `the benchmark's own client during those runs (GC pauses of this process)`,
      '',
      `produce runs: ${formatMedian(trials.map((x) => x.subject.clientGc.count), 'pauses', 0)}, longest ${formatMedian(trials.map((x) => x.subject.clientGc.maxMs), 'ms', 1)}`,
      `raw runs: ${formatMedian(trials.map((x) => x.baseline.clientGc.count), 'pauses', 0)}, longest ${formatMedian(trials.map((x) => x.baseline.clientGc.maxMs), 'ms', 1)}; a pause here delays every message due meanwhile, in both subjects`,
    ],
  ];
}

async function main(): Promise<void> {
  requireKcat();
  const dir = benchDir('kafka');
  const bytes = MESSAGES * MSG;
  const baseBytes = Math.min(bytes, BASELINE_BYTES_CAP);
  const jsMessages = Math.min(MESSAGES, 200_000);
  console.log(`bench:kafka: ${TRIALS} trials of ${MESSAGES} messages of ${MSG} B (${(bytes / 2 ** 20).toFixed(0)} MiB) in ${dir}`);

  const msgFile = path.join(dir, 'messages.txt');
  writeMessageFile(msgFile, MESSAGES, MSG, 'm');

  const pkiDir = path.join(dir, 'pki');
  fs.mkdirSync(pkiDir);
  const pki = makePki(pkiDir);
  let broker = await startBrokerProcess(dir, pki);
  const bootstrap = `127.0.0.1:${broker.port}`;
  const saslBootstrap = `127.0.0.1:${broker.saslPort}`;
  const saslArgs = saslKcatArgs(pki);
  const consumeArgs = (topic: string, count: number, on = bootstrap, extra: string[] = []) => ['-C', '-b', on, ...extra, '-t', topic, '-o', 'beginning', '-c', String(count), '-q', '-f', '%S\n'];
  const lines = (stdout: string) => stdout.split('\n').filter(Boolean).length;
  const rows: Row[] = [];
  try {
    const kafka = new Kafka({ brokers: [bootstrap], clientId: 'bench', logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [
        ...Array.from({ length: TRIALS }, (_, t) => [{ topic: `kcat-${t}`, numPartitions: 3 }, { topic: `kjs-${t}`, numPartitions: 3 }]).flat(),
        ...Array.from({ length: TRIALS }, (_, t) => [{ topic: `plain-${t}`, numPartitions: 3 }, { topic: `sasl-ssl-${t}`, numPartitions: 3 }]).flat(),
        { topic: `latency-${LATENCY_RATE}`, numPartitions: 1 },
        { topic: `latency-${LATENCY_HIGH_RATE}`, numPartitions: 1 },
      ],
    });
    await admin.disconnect();
    if (ONLY === 'latency') {
      const only = [...latencyRows(LATENCY_RATE, await latencyTrials(broker, dir, LATENCY_RATE)), ...latencyRows(LATENCY_HIGH_RATE, await latencyTrials(broker, dir, LATENCY_HIGH_RATE), 10)];
      console.log(formatTable(['measurement', 'throughput', 'rate', 'vs'], only));
      console.log('(BENCH_KAFKA_ONLY=latency: no results file written)');
      return;
    }
    const producer = kafka.producer();
    await producer.connect();
    const value = Buffer.alloc(MSG, 0x6a);

    // Each trial: the log's durable appends (64 appenders, 16 KiB batches, same disk, the
    // broker idle) as the baseline, then kcat produce (acks=all) into a fresh topic, kcat
    // consume of that topic from the beginning (against that produce), and KafkaJS produce
    // (acks=-1, 1,000-message sends, 4 at a time) into another fresh topic.
    const trials = await alternate(
      TRIALS,
      async (t) => {
        const b = await logWrites(path.join(dir, `log-baseline-${t}`), 16 * 1024, baseBytes, 64);
        return baseBytes / b.seconds / 1e6;
      },
      async (t) => {
        const kp = await runTimed('kcat', ['-P', '-b', bootstrap, '-t', `kcat-${t}`, '-X', 'acks=all', '-l', msgFile]);
        const kc = await runTimed('kcat', consumeArgs(`kcat-${t}`, MESSAGES));
        const consumed = lines(kc.stdout);
        if (consumed !== MESSAGES) throw new Error(`consumed ${consumed} of ${MESSAGES}`);
        let next = 0;
        const cpu0 = process.cpuUsage();
        const t0 = process.hrtime.bigint();
        await Promise.all(
          Array.from({ length: 4 }, async () => {
            while (next < jsMessages) {
              const n = Math.min(1000, jsMessages - next);
              next += n;
              await producer.send({ topic: `kjs-${t}`, acks: -1, messages: Array.from({ length: n }, () => ({ value })) });
            }
          }),
        );
        const jsSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
        const cpu = process.cpuUsage(cpu0);
        return { produceSeconds: kp.seconds, consumeSeconds: kc.seconds, jsSeconds, jsCoreShare: (cpu.user + cpu.system) / 1e6 / jsSeconds };
      },
    );
    await producer.disconnect();
    trials.forEach(({ baseline, subject }, t) =>
      console.log(
        `  trial ${t + 1}/${TRIALS}: log ${baseline.toFixed(0)} MB/s, kcat produce ${(bytes / subject.produceSeconds / 1e6).toFixed(0)} MB/s, ` +
          `kcat consume ${(bytes / subject.consumeSeconds / 1e6).toFixed(0)} MB/s, KafkaJS produce ${((jsMessages * MSG) / subject.jsSeconds / 1e6).toFixed(0)} MB/s`,
      ),
    );

    // SASL_SSL against PLAINTEXT: kcat produce (acks=all) into a fresh topic, then kcat
    // consume of it, over each listener of the same broker, alternating.
    // Where a consume's CPU goes: the broker's and kcat's seconds per GB read.
    const kcatRound = async (on: string, extra: string[], topic: string) => {
      const p = await runTimed('kcat', ['-P', '-b', on, ...extra, '-t', topic, '-X', 'acks=all', '-l', msgFile]);
      const broker0 = processCpuSeconds(broker.child.pid!);
      const kcat0 = childrenCpuSeconds();
      const c = await runTimed('kcat', consumeArgs(topic, MESSAGES, on, extra));
      const gb = bytes / 1e9;
      const cpu = { broker: (processCpuSeconds(broker.child.pid!) - broker0) / gb, kcat: (childrenCpuSeconds() - kcat0) / gb };
      if (lines(c.stdout) !== MESSAGES) throw new Error(`consumed ${lines(c.stdout)} of ${MESSAGES} from ${topic}`);
      return { produce: bytes / p.seconds / 1e6, consume: bytes / c.seconds / 1e6, consumeCpu: cpu };
    };
    const tlsTrials = await alternate(
      TRIALS,
      (t) => kcatRound(bootstrap, [], `plain-${t}`),
      (t) => kcatRound(saslBootstrap, saslArgs, `sasl-ssl-${t}`),
    );
    const rawTrials = await alternate(TRIALS, () => rawStream(pki, false), () => rawStream(pki, true));
    rawTrials.forEach(({ baseline, subject }, t) => console.log(`  raw stream trial ${t + 1}/${TRIALS}: TLS ${subject.toFixed(0)} vs TCP ${baseline.toFixed(0)} MB/s`));
    tlsTrials.forEach(({ baseline, subject }, t) =>
      console.log(`  SASL_SSL trial ${t + 1}/${TRIALS}: produce ${subject.produce.toFixed(0)} vs ${baseline.produce.toFixed(0)} MB/s plaintext, consume ${subject.consume.toFixed(0)} vs ${baseline.consume.toFixed(0)} MB/s`),
    );
    const saslKafka = new Kafka({
      brokers: [saslBootstrap],
      clientId: 'bench-logins',
      ssl: { ca: [fs.readFileSync(pki.ca.cert)] },
      sasl: { mechanism: 'scram-sha-512', username: SASL_USER, password: SECRETS.benchSasl },
      logLevel: logLevel.NOTHING,
    });
    const brokerPid = broker.child.pid!;
    const logins = await alternate(TRIALS, () => loginRate(kafka, brokerPid), () => loginRate(saslKafka, brokerPid));
    logins.forEach(({ baseline, subject }, t) =>
      console.log(
        `  login trial ${t + 1}/${TRIALS}: SASL_SSL ${subject.perSecond.toFixed(0)}/s (broker CPU ${subject.brokerCpuMs.toFixed(2)} ms each), ` +
          `PLAINTEXT ${baseline.perSecond.toFixed(0)}/s (${baseline.brokerCpuMs.toFixed(2)} ms each)`,
      ),
    );

    // Latency at a fixed moderate rate and at a high one, each against the disk's own.
    const latLow = await latencyTrials(broker, dir, LATENCY_RATE);
    const latHigh = await latencyTrials(broker, dir, LATENCY_HIGH_RATE);

    const status = fs.readFileSync(`/proc/${broker.child.pid}/status`, 'utf8');
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;

    // Read integrity: a sealed segment's batches have their CRC-32C checked the first time a
    // process reads them, then the checked ranges are trusted. Each trial restarts the broker
    // (nothing checked yet), warms it up on another topic, and consumes twice: the first read
    // (the subject) pays the checks, the second (its baseline) is the same read path without
    // them. The page cache is warm for both.
    const consume = async () => {
      const r = await runTimed('kcat', consumeArgs('kcat-0', MESSAGES));
      if (lines(r.stdout) !== MESSAGES) throw new Error('short consume in the read-integrity trial');
      return bytes / r.seconds / 1e6;
    };
    const verify = await alternate(
      VERIFY_TRIALS,
      async (t) => {
        const warm = await consume();
        console.log(`  read integrity trial ${t + 1}/${VERIFY_TRIALS}: again (trusted) ${warm.toFixed(0)} MB/s`);
        return warm;
      },
      async (t) => {
        await broker.stop();
        broker = await startBrokerProcess(dir, pki, { plain: broker.port, sasl: broker.saslPort, admin: broker.adminPort });
        // A fresh process runs cold code: warm it up on the other topic first, so the first
        // read differs from the second by the checks alone.
        await runTimed('kcat', consumeArgs('kjs-0', Math.min(MESSAGES, 100_000)));
        const cold = await consume();
        console.log(`  read integrity trial ${t + 1}/${VERIFY_TRIALS}: first read (CRCs checked) ${cold.toFixed(0)} MB/s`);
        return cold;
      },
      { subjectFirst: true },
    );

    const base = trials.map((x) => x.baseline);
    const kcatMBs = trials.map((x) => bytes / x.subject.produceSeconds / 1e6);
    const jsMBs = trials.map((x) => (jsMessages * MSG) / x.subject.jsSeconds / 1e6);
    const consumeMBs = trials.map((x) => bytes / x.subject.consumeSeconds / 1e6);
    const kcatRatios = kcatMBs.map((x, i) => x / base[i]);
    const jsRatios = jsMBs.map((x, i) => x / base[i]);
    const consumeRatios = consumeMBs.map((x, i) => x / kcatMBs[i]);
    const verifyRatios = verify.map((v) => v.subject / v.baseline);
    const saslProduceRatios = tlsTrials.map((x) => x.subject.produce / x.baseline.produce);
    const saslConsumeRatios = tlsTrials.map((x) => x.subject.consume / x.baseline.consume);
    rows.push(
      ['log durable appends (baseline, 64 appenders × 16 KiB)', formatMedian(base, 'MB/s'), '', `${(baseBytes / 2 ** 20).toFixed(0)} MiB per trial`],
      [
        'kcat produce, acks=all, 1 KiB',
        formatMedian(kcatMBs, 'MB/s'),
        formatMedian(trials.map((x) => MESSAGES / x.subject.produceSeconds), 'msg/s', 0),
        `**${formatRatio(kcatRatios)}** of the log baseline; ${formatTarget(kcatRatios, '>=', 0.6, '60%')}`,
      ],
      [
        'KafkaJS produce, acks=-1, 1 KiB',
        formatMedian(jsMBs, 'MB/s'),
        formatMedian(trials.map((x) => jsMessages / x.subject.jsSeconds), 'msg/s', 0),
        `${formatRatio(jsRatios)} of the log baseline; the client's process used ${(median(trials.map((x) => x.subject.jsCoreShare)) * 100).toFixed(0)}% of a core (median)`,
      ],
      [
        'kcat consume from the beginning',
        formatMedian(consumeMBs, 'MB/s'),
        formatMedian(trials.map((x) => MESSAGES / x.subject.consumeSeconds), 'msg/s', 0),
        `**${formatRatio(consumeRatios, 'times')}** the same trial's kcat produce; ${formatTarget(consumeRatios, '>=', 3, '3x')}`,
      ],
      ...latencyRows(LATENCY_RATE, latLow),
      ...latencyRows(LATENCY_HIGH_RATE, latHigh, 10),
      [
        'kcat consume, first read after a restart (sealed-segment CRCs checked)',
        formatMedian(verify.map((v) => v.subject), 'MB/s'),
        '',
        `**${formatRatio(verifyRatios)}** of the same read without checks; ${formatTarget(verifyRatios, '>=', 0.8, '80%')}`,
      ],
      ['kcat consume, second read (checked ranges trusted)', formatMedian(verify.map((v) => v.baseline), 'MB/s'), '', 'baseline for the row above'],
      [
        'kcat produce over SASL_SSL (TLS + SCRAM-SHA-512), acks=all, 1 KiB',
        formatMedian(tlsTrials.map((x) => x.subject.produce), 'MB/s'),
        formatMedian(tlsTrials.map((x) => (x.subject.produce * 1e6) / MSG), 'msg/s', 0),
        `**${formatRatio(saslProduceRatios)}** of plaintext in the same trial; ${formatTarget(saslProduceRatios, '>=', 0.7, '70% (TLS costs at most 30%)')}`,
      ],
      ['kcat produce over PLAINTEXT (same run)', formatMedian(tlsTrials.map((x) => x.baseline.produce), 'MB/s'), formatMedian(tlsTrials.map((x) => (x.baseline.produce * 1e6) / MSG), 'msg/s', 0), 'baseline for the row above'],
      [
        'kcat consume over SASL_SSL from the beginning',
        formatMedian(tlsTrials.map((x) => x.subject.consume), 'MB/s'),
        formatMedian(tlsTrials.map((x) => (x.subject.consume * 1e6) / MSG), 'msg/s', 0),
        `**${formatRatio(saslConsumeRatios)}** of plaintext in the same trial; ${formatTarget(saslConsumeRatios, '>=', 0.7, '70%')}; CPU per GB read: broker ${formatMedian(tlsTrials.map((x) => x.subject.consumeCpu.broker), 's', 2)}, kcat ${formatMedian(tlsTrials.map((x) => x.subject.consumeCpu.kcat), 's', 2)}`,
      ],
      [
        'kcat consume over PLAINTEXT (same run)',
        formatMedian(tlsTrials.map((x) => x.baseline.consume), 'MB/s'),
        formatMedian(tlsTrials.map((x) => (x.baseline.consume * 1e6) / MSG), 'msg/s', 0),
        `baseline for the row above; CPU per GB read: broker ${formatMedian(tlsTrials.map((x) => x.baseline.consumeCpu.broker), 's', 2)}, kcat ${formatMedian(tlsTrials.map((x) => x.baseline.consumeCpu.kcat), 's', 2)}`,
      ],
      [
        'raw TLS stream, one Node process encrypting and decrypting over loopback (the machine\'s TLS ceiling)',
        formatMedian(rawTrials.map((x) => x.subject), 'MB/s'),
        '',
        `${formatRatio(rawTrials.map((x) => x.subject / x.baseline))} of the same stream over plain TCP (${formatMedian(rawTrials.map((x) => x.baseline), 'MB/s')}) in the same trial: what TLS costs a single core here, before any broker work`,
      ],
      [
        `logins over SASL_SSL: TCP + TLS + SCRAM-SHA-512 (KafkaJS admin connect/disconnect, ${LOGIN_CONCURRENCY} at once)`,
        '',
        formatMedian(logins.map((x) => x.subject.perSecond), 'logins/s', 0),
        `${formatRatio(logins.map((x) => x.subject.perSecond / x.baseline.perSecond))} of the PLAINTEXT connect rate (${formatMedian(logins.map((x) => x.baseline.perSecond), 'connects/s', 0)}: no TLS, no SASL); ` +
          `the broker's CPU per login ${formatMedian(logins.map((x) => x.subject.brokerCpuMs), 'ms', 2)} (per plaintext connect ${formatMedian(logins.map((x) => x.baseline.brokerCpuMs), 'ms', 2)})`,
      ],
      ['broker peak RSS', `${(hwm / 2 ** 20).toFixed(0)} MiB`, '', 'before the read-integrity restarts'],
    );
  } finally {
    await broker.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const table = formatTable(['measurement', 'throughput', 'rate', 'vs'], rows);
  console.log(table);
  writeResults('kafka', 'Kafka path: produce, consume and latency vs the log', table, [
    `${MESSAGES} messages of ${MSG} bytes per trial (KafkaJS: ${jsMessages}). The broker is a separate process in flush mode fsync (acks=all waits for fdatasync, group commit), with ${SEGMENT_BYTES} segments so that most reads come from sealed segments.`,
    `${TRIALS} alternating trials, each: the log baseline, kcat produce into a fresh topic, kcat consume of that topic, KafkaJS produce into another fresh topic. Ratios are taken within each trial and shown as the median with its range (min–max); other figures are the median and range of the trials.`,
    'Times include client start-up and metadata. kcat consume stops at the last message (-c), so the final long-poll for more data is not counted. KafkaJS runs in the benchmark\'s own process; its core share is that process\'s CPU time over the send\'s wall time.',
    `Latency: ${TRIALS} alternating trials of ${LATENCY_SECONDS} s per rate, each: the raw baseline, then the produce run, each after a \`sync\` (what the rows before left in the page cache written out first). A minimal Node producer (bench/latency.ts, in a fresh process for each run, its request frames copied into one preallocated buffer so that its own garbage collector stays out of the figures; its GC pauses are reported) sends the messages due each millisecond as one batch (linger ≈ 1 ms), acks=-1, up to 5 requests in flight on one connection, to a topic of one partition; latency runs from a message's due time to its acknowledgement. The raw baseline runs the same schedule, from the same kind of fresh process, against a file on the broker's disk: each millisecond's bytes in one write, fdatasync as a group commit (one at a time, covering everything written before it began), latency from due time to the end of the covering fdatasync. The broker's event-loop delay (sampled every ${LOOP_RESOLUTION_MS} ms) and GC pauses come from its GET /v1/runtime window, reset before and read after each produce run.`,
    `Read integrity: ${VERIFY_TRIALS} trials, each restarting the broker, warming it up on another topic, then reading the first trial's kcat topic twice (first read, then the re-read as its baseline).`,
    `SASL_SSL: the same broker's second listener (TLS 1.2+ with an EC P-256 certificate made by openssl for the run, SCRAM-SHA-512 as the bootstrap user); ${TRIALS} alternating trials, each: kcat produce and consume of ${MESSAGES} messages over PLAINTEXT, then the same over SASL_SSL, each into its own fresh topic; the ratio is taken within each trial. Logins: ${TRIALS} alternating trials of ${LOGIN_SECONDS} s each over PLAINTEXT then SASL_SSL; each login is a new connection (ApiVersions, Metadata, and on SASL_SSL the TLS handshake, SaslHandshake and SCRAM's two round trips); KafkaJS salts the password (4096 PBKDF2-SHA-512 iterations) for every login in the benchmark's process, on the same 2 cores.`,
    'Broker, clients and the benchmark share 2 cores.',
  ]);
}

await main();
