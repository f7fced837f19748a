/**
 * Scenario 8: a connection flood against one broker — 1,000 idle connections, 200
 * slowloris connections and a garbage fuzzer (bench/drill/flood-clients.ts, its own
 * process) — while a well-behaved KafkaJS pair keeps working: an idempotent acks=all
 * producer sends one record every 10 ms and a consumer group member reads them. Produce
 * latency is the send call; end-to-end latency runs from the start of the send to the
 * consumer receiving the record, so it covers the consumer's fetch (measured on its own it
 * would mostly be 0: the fetch often returns before the producer has read its
 * acknowledgement). Trials alternate unloaded
 * and loaded phases of the same client in the same run; the ratios loaded/unloaded are
 * reported as the median over trials with their spread. Target: within 2x. At the end kcat
 * reads the topic: every acknowledged record of the pair exactly once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort, Region, waitFor } from '../../test/helpers/regions.js';
import { createTopic, kafkaAt, KafkaJsWriter, readWithKcat, within } from './shared/clients.js';
import { sleep, type DrillContext, type Scenario } from './shared/context.js';
import { addVerdicts, Ledger } from './shared/ledger.js';

const TOPIC = 'drill-flood';
const FLOOD_CHILD = fileURLToPath(new URL('./flood-clients.ts', import.meta.url));
const IDLE = 1000;
const SLOWLORIS = 200;
const FUZZERS = 4;

interface Phase {
  produce: number[];
  /** End-to-end: send start to the consumer receiving the record. */
  endToEnd: number[];
}

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const median = (xs: number[]) => percentile(xs, 50);

export const connectionFlood: Scenario = {
  name: 'flood',
  title: '8. Connection floods',
  what: `one broker (maxConnectionsPerIp 5000, requestReceiveTimeoutMs 5 s so slowloris connections are cut within a phase; other limits at their defaults); ${IDLE} idle + ${SLOWLORIS} slowloris connections (one byte per second) + ${FUZZERS} garbage fuzzers from another process, while an idempotent KafkaJS producer (one record / 10 ms, acks=all) and a KafkaJS consumer measure produce latency and end-to-end latency (send to consumer, which covers the fetch); unloaded and loaded phases alternate (DRILL_FLOOD_TRIALS, default 5, of DRILL_FLOOD_SECONDS, default 8, each); faults = floods started. Target: p50 and p99 within 2x of unloaded.`,
  async run(ctx: DrillContext): Promise<void> {
    const trials = Number(process.env.DRILL_FLOOD_TRIALS ?? 5);
    const seconds = Number(process.env.DRILL_FLOOD_SECONDS ?? 8);
    const region = new Region('drill-flood', await freePort(), `${ctx.dir}/data`, {
      logging: { level: 'warn' },
      topics: { autoCreate: false },
      groups: { initialRebalanceDelayMs: 0 },
      kafka: { maxConnectionsPerIp: 5000, requestReceiveTimeoutMs: 5000 },
    });
    const broker = ctx.watch(region);
    ctx.defer(() => broker.stop());
    await broker.start();
    await createTopic(broker.bootstrap, TOPIC, 1);

    const ledger = new Ledger();
    const stream = ledger.stream('good', 0, { keyed: true, bytes: 100 });
    const writer = new KafkaJsWriter(broker.bootstrap, TOPIC, stream, { batch: 1 });
    ctx.defer(() => writer.close());
    const sentAt = new Map<number, number>();
    const phaseOf = new Map<number, Phase>();
    let received = 0;
    const consumer = kafkaAt(broker.bootstrap, 'drill-flood-consumer').consumer({ groupId: 'drill-flood', maxWaitTimeInMs: 500 });
    ctx.defer(() => within(15_000, 'consumer disconnect', consumer.disconnect()).catch(() => {}));
    await consumer.connect();
    await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const seq = Number(/#(\d+)\|/.exec(message.value?.toString('latin1') ?? '')?.[1] ?? -1);
        const sent = sentAt.get(seq);
        received++;
        if (sent !== undefined) phaseOf.get(seq)?.endToEnd.push(performance.now() - sent);
        phaseOf.delete(seq);
      },
    });

    // Set and cleared by measure(); read by the producing loop.
    let phase = null as Phase | null;
    let stopped = false;
    const producing = (async () => {
      while (!stopped) {
        const t0 = performance.now();
        const seq = stream.status.length;
        const current = phase;
        sentAt.set(seq, t0);
        if (current) phaseOf.set(seq, current);
        if (await writer.sendNext()) current?.produce.push(performance.now() - t0);
        await sleep(Math.max(0, 10 - (performance.now() - t0)));
      }
    })();
    ctx.defer(async () => {
      stopped = true;
      await producing;
    });

    await waitFor('the consumer to receive the first record', () => (received > 0 ? true : undefined), 30_000, 50);
    const results: Array<{ unloaded: Phase; loaded: Phase; flood: string }> = [];
    for (let t = 0; t < trials; t++) {
      const unloaded = await measure(seconds, (p) => (phase = p));
      const flood = await startFlood(ctx, region.port, ctx.between(1, 2 ** 30));
      ctx.tally.faults++;
      const loaded = await measure(seconds, (p) => (phase = p));
      const floodStats = await flood.stats();
      await flood.stop();
      results.push({ unloaded, loaded, flood: floodStats });
      ctx.log(`trial ${t + 1}/${trials}: produce p99 ${percentile(unloaded.produce, 99).toFixed(1)} -> ${percentile(loaded.produce, 99).toFixed(1)} ms, end-to-end p99 ${percentile(unloaded.endToEnd, 99).toFixed(1)} -> ${percentile(loaded.endToEnd, 99).toFixed(1)} ms; flood ${floodStats}`);
      await sleep(1000);
    }
    phase = null;
    stopped = true;
    await producing;
    await writer.close();
    await sleep(1000);
    ctx.tally.acknowledged = ledger.acknowledged;

    const read = await readWithKcat(broker.bootstrap, TOPIC);
    if (read.failure) {
      ctx.tally.corrupt++;
      ctx.problem(`kcat did not read cleanly to the end: ${read.failure}`);
    }
    addVerdicts(ctx.tally, [ledger.check('kcat', read.records)]);

    const ratio = (f: (p: Phase) => number[], q: number) => results.map((r) => percentile(f(r.loaded), q) / percentile(f(r.unloaded), q));
    const summary = (name: string, xs: number[]) => `${name} x${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)})`;
    const ratios = { 'produce p50': ratio((p) => p.produce, 50), 'produce p99': ratio((p) => p.produce, 99), 'end-to-end p50': ratio((p) => p.endToEnd, 50), 'end-to-end p99': ratio((p) => p.endToEnd, 99) };
    const met = Object.values(ratios).every((xs) => median(xs) <= 2);
    ctx.tally.notes.push(`loaded/unloaded latency, median of ${trials} trials (min-max): ${Object.entries(ratios).map(([k, xs]) => summary(k, xs)).join(', ')}; target within 2x: ${met ? 'met' : '**missed**'}`);
    ctx.tally.details.push(
      '| trial | phase | produce p50 ms | produce p99 ms | end-to-end p50 ms | end-to-end p99 ms | samples | flood (from the flooding process) |',
      '|---|---|---|---|---|---|---|---|',
      ...results.flatMap((r, i) =>
        (['unloaded', 'loaded'] as const).map((k) => {
          const p = r[k];
          return `| ${i + 1} | ${k} | ${percentile(p.produce, 50).toFixed(2)} | ${percentile(p.produce, 99).toFixed(2)} | ${percentile(p.endToEnd, 50).toFixed(2)} | ${percentile(p.endToEnd, 99).toFixed(2)} | ${p.produce.length} | ${k === 'loaded' ? r.flood.replace(/\|/g, '/') : ''} |`;
        }),
      ),
    );
  },
};

async function measure(seconds: number, set: (p: Phase | null) => void): Promise<Phase> {
  const p: Phase = { produce: [], endToEnd: [] };
  set(p);
  await sleep(seconds * 1000);
  set(null);
  return p;
}

/** Starts the flooding process and waits until its idle and slowloris connections are open. */
async function startFlood(ctx: DrillContext, port: number, seed: number): Promise<{ stats: () => Promise<string>; stop: () => Promise<void> }> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', FLOOD_CHILD, String(port), String(IDLE), String(SLOWLORIS), String(FUZZERS), String(seed)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  ctx.defer(stop);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const waiters: Array<(line: string) => void> = [];
  let opened: (line: string) => void;
  const open = new Promise<string>((r) => (opened = r));
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.startsWith('OPEN ')) opened(line);
    else if (line.startsWith('STATS ')) waiters.shift()?.(line.slice(6));
  });
  const line = await within(60_000, 'the flood to open its connections', Promise.race([open, exited.then(() => Promise.reject(new Error(`the flooding process exited: ${stderr.slice(0, 500)}`)))]));
  ctx.log(`flood up: ${line}`);
  return {
    stop,
    stats: () =>
      within(5_000, 'flood stats', new Promise<string>((resolve) => {
        waiters.push(resolve);
        child.stdin!.write('stats\n');
      })).catch((err: Error) => err.message),
  };
}
