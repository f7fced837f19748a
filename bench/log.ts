/**
 * bench:log — durable append throughput of the partition log against the raw disk, measured
 * in the same run on the same filesystem, in alternating trials.
 *
 *   npm run bench:log                 # 1 GiB of 16 KiB batches per trial, 3 trials
 *   BENCH_LOG_BYTES=256MiB BENCH_LOG_TRIALS=5 npm run bench:log
 *
 * Writes bench/results/log.md.
 */
import fs from 'node:fs';
import path from 'node:path';
import { logDurableRate, logWrites, rawDurableRate, rawWrites } from './log-measure.js';
import { alternate, benchDir, formatMedian, formatRatio, formatTable, formatTarget, median, MemorySampler, parseSize, trialCount, writeResults, type Row } from './harness.js';

const TOTAL = parseSize(process.env.BENCH_LOG_BYTES ?? '1GiB');
const BATCH = 16 * 1024;
const SMALL = 1024;
const GROUP_COMMIT_SECONDS = Number(process.env.BENCH_LOG_SECONDS ?? 4);
const TRIALS = trialCount('BENCH_LOG_TRIALS');

const mb = (bytes: number, s: number) => bytes / s / 1e6;

async function main(): Promise<void> {
  const dir = benchDir('log');
  const mem = new MemorySampler();
  const strictBytes = Math.min(TOTAL, 128 * 1024 * 1024);
  console.log(`bench:log: ${TRIALS} trials of ${(TOTAL / 2 ** 30).toFixed(2)} GiB of ${BATCH / 1024} KiB batches in ${dir}`);

  // 1. Throughput with 64 durable appenders against the raw disk doing the same writes with
  //    the same number of fdatasyncs (matched to the log run just before it, so the log goes
  //    first in each trial). Nothing is deleted until the end: deletes make this virtual
  //    disk TRIM, which slows whatever runs next.
  const log64: Array<Awaited<ReturnType<typeof logWrites>>> = [];
  const matched = await alternate(
    TRIALS,
    (t) => {
      const l = log64[t];
      const group = Math.max(1, Math.round(l.appends / l.fsyncs));
      const r = rawWrites(dir, BATCH, TOTAL, group);
      const ratio = mb(l.appends * BATCH, l.seconds) / mb(r.writes * BATCH, r.seconds);
      console.log(`  64 appenders, trial ${t + 1}/${TRIALS}: log ${mb(l.appends * BATCH, l.seconds).toFixed(0)} MB/s, raw (fdatasync every ${group}) ${mb(r.writes * BATCH, r.seconds).toFixed(0)} MB/s, ${(ratio * 100).toFixed(0)}%`);
      return { ...r, group };
    },
    async (t) => {
      const l = await logWrites(path.join(dir, `log64-${t}`), BATCH, TOTAL, 64);
      log64.push(l);
      return l;
    },
    { subjectFirst: true },
  );

  // 2. One durable appender against write + fdatasync of each batch.
  const single = await alternate(
    TRIALS,
    () => rawWrites(dir, BATCH, strictBytes, 1),
    async (t) => {
      const l = await logWrites(path.join(dir, `log1-${t}`), BATCH, strictBytes, 1);
      console.log(`  1 appender, trial ${t + 1}/${TRIALS}: log ${mb(l.appends * BATCH, l.seconds).toFixed(0)} MB/s`);
      return l;
    },
  );

  // 3. Group commit with 1 KiB batches, where one appender is bound by the fdatasync latency:
  //    raw write + fdatasync and 1 appender (the baselines), then 64 appenders.
  const small = await alternate(
    TRIALS,
    async (t) => ({ raw: rawDurableRate(dir, SMALL, GROUP_COMMIT_SECONDS), g1: await logDurableRate(path.join(dir, `g1s-${t}`), SMALL, 1, GROUP_COMMIT_SECONDS) }),
    async (t) => {
      const g64 = await logDurableRate(path.join(dir, `g64s-${t}`), SMALL, 64, GROUP_COMMIT_SECONDS);
      console.log(`  group commit 1 KiB, trial ${t + 1}/${TRIALS}: 64 appenders ${g64.rate.toFixed(0)}/s`);
      return g64;
    },
  );
  // 4. The same with 16 KiB batches.
  const big = await alternate(
    TRIALS,
    (t) => logDurableRate(path.join(dir, `g1b-${t}`), BATCH, 1, GROUP_COMMIT_SECONDS),
    (t) => logDurableRate(path.join(dir, `g64b-${t}`), BATCH, 64, GROUP_COMMIT_SECONDS),
  );
  mem.stop();
  fs.rmSync(dir, { recursive: true, force: true });

  const logMBs = matched.map((m) => mb(m.subject.appends * BATCH, m.subject.seconds));
  const rawMBs = matched.map((m) => mb(m.baseline.writes * BATCH, m.baseline.seconds));
  const matchedRatios = matched.map((_, i) => logMBs[i] / rawMBs[i]);
  const groups = matched.map((m) => m.baseline.group);
  const log1MBs = single.map((s) => mb(s.subject.appends * BATCH, s.subject.seconds));
  const strictMBs = single.map((s) => mb(s.baseline.writes * BATCH, s.baseline.seconds));
  const singleRatios = single.map((_, i) => log1MBs[i] / strictMBs[i]);
  const g1VsRaw = small.map((s) => s.baseline.g1.rate / s.baseline.raw);
  const g64Small = small.map((s) => s.subject.rate / s.baseline.g1.rate);
  const g64Big = big.map((b) => b.subject.rate / b.baseline.rate);
  const groupNote = Math.min(...groups) === Math.max(...groups) ? `${groups[0]}` : `${Math.min(...groups)}–${Math.max(...groups)}`;

  const rows: Row[] = [
    ['log, 64 durable appenders, 16 KiB batches', formatMedian(logMBs, 'MB/s'), formatMedian(matched.map((m) => m.subject.appends / m.subject.seconds), 'appends/s', 0), `${groupNote} batches per fdatasync`],
    [`raw pwrite 16 KiB + fdatasync every ${groupNote} batches (matched)`, formatMedian(rawMBs, 'MB/s'), formatMedian(matched.map((m) => m.baseline.writes / m.baseline.seconds), 'writes/s', 0), `${median(matched.map((m) => m.baseline.syncs)).toFixed(0)} fdatasyncs per trial`],
    ['**ratio log / raw (matched)**', `**${formatRatio(matchedRatios)}**`, '', formatTarget(matchedRatios, '>=', 0.7, '70%')],
    ['log, 1 durable appender, 16 KiB batches', formatMedian(log1MBs, 'MB/s'), formatMedian(single.map((s) => s.subject.appends / s.subject.seconds), 'appends/s', 0), `${(strictBytes / 2 ** 20).toFixed(0)} MiB per trial`],
    ['raw pwrite 16 KiB + fdatasync each', formatMedian(strictMBs, 'MB/s'), formatMedian(single.map((s) => s.baseline.writes / s.baseline.seconds), 'writes/s', 0), ''],
    ['**ratio log / raw (1 writer)**', `**${formatRatio(singleRatios)}**`, '', ''],
    ['raw write 1 KiB + fdatasync each', '', formatMedian(small.map((s) => s.baseline.raw), 'writes/s', 0), ''],
    ['group commit: 1 appender, 1 KiB', '', formatMedian(small.map((s) => s.baseline.g1.rate), 'appends/s', 0), `${formatRatio(g1VsRaw)} of raw write + fdatasync`],
    ['group commit: 64 appenders, 1 KiB', '', formatMedian(small.map((s) => s.subject.rate), 'appends/s', 0), `${median(small.map((s) => s.subject.perSync)).toFixed(1)} batches per fdatasync`],
    ['**64 vs 1 appenders, 1 KiB**', '', `**${formatRatio(g64Small, 'times')}**`, formatTarget(g64Small, '>=', 20, '20x')],
    ['group commit: 1 appender, 16 KiB', formatMedian(big.map((b) => (b.baseline.rate * BATCH) / 1e6), 'MB/s'), formatMedian(big.map((b) => b.baseline.rate), 'appends/s', 0), ''],
    ['group commit: 64 appenders, 16 KiB', formatMedian(big.map((b) => (b.subject.rate * BATCH) / 1e6), 'MB/s'), formatMedian(big.map((b) => b.subject.rate), 'appends/s', 0), `${median(big.map((b) => b.subject.perSync)).toFixed(1)} batches per fdatasync`],
    ['64 vs 1 appenders, 16 KiB', '', formatRatio(g64Big, 'times'), ''],
    ['**peak RSS**', `**${(mem.peakRss / 2 ** 20).toFixed(0)} MiB**`, '', `target < 200 MiB: ${mem.peakRss < 200 * 2 ** 20 ? 'met' : 'not met'}`],
  ];
  const table = formatTable(['measurement', 'throughput', 'rate', 'notes'], rows);
  console.log(table);
  writeResults('log', 'Partition log: durable appends vs the raw disk', table, [
    `Each comparison ran ${TRIALS} alternating trials (baseline, subject, baseline, subject, ...); a ratio is taken within each trial and shown as the median with its range (min–max) over the trials; other figures are the median and range of the trials.`,
    `${(TOTAL / 2 ** 30).toFixed(2)} GiB per trial written through the log with acks waiting for fdatasync (flush mode fsync), 64 appenders; in each trial the matched raw baseline runs next and does the same 16 KiB writes with the same number of fdatasyncs the log needed,`,
    'so the ratio is the cost of the log itself (validation, CRC-32C, offsets, index, queueing, Node async I/O).',
    `One appender: ${(strictBytes / 2 ** 20).toFixed(0)} MiB per trial. Group commit: ${GROUP_COMMIT_SECONDS} s per measurement, in each trial raw write + fdatasync, then 1 appender, then 64 appenders.`,
  ]);
}

await main();
