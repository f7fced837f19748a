/**
 * drill — a fault campaign against real broker processes (issue 9).
 *
 *   npm run drill                                  # the default campaign, under 10 minutes
 *   DRILL_FAULTS=20 npm run drill                  # 20 faults in each fault scenario
 *   DRILL_ONLY=kill-produce,poison npm run drill   # a subset (by scenario name)
 *   DRILL_SEED=1234 npm run drill                  # replay a run's random choices
 *
 * Each scenario starts its own brokers (separate processes, fresh data directories,
 * 127.0.0.1 only), injects its faults while real clients produce, then reads everything back
 * with kcat and/or KafkaJS and counts what a user would check: acknowledged records lost,
 * records present twice, reads that returned something never accepted or got stuck, and
 * broker processes that exited without being killed. The table goes to stdout and to
 * bench/results/drill.md; the exit status is 1 when any of those four counts is not 0, a
 * scenario could not finish, or one of its own requirements failed (the offload never
 * completed, replication never caught up, writes stayed refused after space was freed).
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import fs from 'node:fs';
import path from 'node:path';
import { benchDir, formatTable, loadLine, writeResults, type Row } from './harness.js';
import { connectionFlood } from './drill/connection-flood.js';
import { diskFull } from './drill/disk-full.js';
import { killOffload } from './drill/kill-offload.js';
import { killProduce, killProduceJournal } from './drill/kill-produce.js';
import { killReplication } from './drill/kill-replication.js';
import { linkFaults } from './drill/link-faults.js';
import { poisonBatches } from './drill/poison-batches.js';
import { powerLoss } from './drill/power-loss.js';
import { brokerNodeArgs, DrillContext, type Scenario } from './drill/shared/context.js';
import { storeOutage } from './drill/store-outage.js';

const SCENARIOS: Scenario[] = [killProduce, killProduceJournal, killReplication, powerLoss, killOffload, linkFaults, storeOutage, diskFull, poisonBatches, connectionFlood];

interface Result {
  scenario: Scenario;
  ctx: DrillContext;
  seconds: number;
  error: string | null;
}

function parseEnv(): { only: string[] | null; faults: number | undefined; seed: number } {
  const only = process.env.DRILL_ONLY ? process.env.DRILL_ONLY.split(',').map((s) => s.trim()).filter(Boolean) : null;
  const unknown = (only ?? []).filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (unknown.length > 0) throw new Error(`DRILL_ONLY names unknown scenarios: ${unknown.join(', ')} (known: ${SCENARIOS.map((s) => s.name).join(', ')})`);
  const faults = process.env.DRILL_FAULTS ? Number(process.env.DRILL_FAULTS) : undefined;
  if (faults !== undefined && !(Number.isInteger(faults) && faults > 0)) throw new Error(`DRILL_FAULTS must be a positive integer, got ${process.env.DRILL_FAULTS}`);
  const seed = process.env.DRILL_SEED ? Number(process.env.DRILL_SEED) : Math.floor(Math.random() * 2 ** 31);
  return { only, faults, seed };
}

async function runOne(scenario: Scenario, root: string, seed: number, faults: number | undefined): Promise<Result> {
  const dir = path.join(root, scenario.name);
  fs.mkdirSync(dir, { recursive: true });
  const ctx = new DrillContext({ name: scenario.name, dir, seed, faultsOverride: faults, log: (l) => console.log(l) });
  // Every broker a scenario starts inherits this (test/helpers/regions.ts reads it at start).
  process.env.REGION_NODE_ARGS = brokerNodeArgs(ctx.reportDir);
  const t0 = performance.now();
  let error: string | null = null;
  console.log(`\n${scenario.name}: ${scenario.title}`);
  try {
    await scenario.run(ctx);
  } catch (err) {
    error = (err as Error).message.split('\n')[0].slice(0, 400);
    ctx.log(`FAILED: ${(err as Error).stack ?? error}`);
  } finally {
    await ctx.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  const t = ctx.tally;
  ctx.log(`done in ${seconds.toFixed(0)} s: faults ${t.faults}, acknowledged ${t.acknowledged}, lost ${t.lost}, duplicates ${t.duplicates}, corrupt ${t.corrupt}, crashes ${ctx.crashes.length}`);
  return { scenario, ctx, seconds, error };
}

function failed(r: Result): boolean {
  const t = r.ctx.tally;
  return r.error !== null || r.ctx.unmetRequirements.length > 0 || t.lost > 0 || t.duplicates > 0 || t.corrupt > 0 || r.ctx.crashes.length > 0;
}

function tableOf(results: Result[]): string {
  const header = ['scenario', 'faults injected', 'records acknowledged', 'acknowledged lost', 'duplicates', 'corrupt reads', 'broker crashes', 'notes'];
  const cell = (n: number) => (n === 0 ? '0' : `**${n}**`);
  const rows: Row[] = results.map((r) => {
    const t = r.ctx.tally;
    const notes = [...(r.error ? [`**did not finish: ${r.error}**`] : []), ...r.ctx.unmetRequirements.map((u) => `**${u.slice(0, 200)}**`), ...t.notes, `${r.seconds.toFixed(0)} s`];
    return [r.scenario.title, String(t.faults), String(t.acknowledged), cell(t.lost), cell(t.duplicates), cell(t.corrupt), cell(r.ctx.crashes.length), notes.join('; ').replace(/\|/g, '/')];
  });
  return formatTable(header, rows);
}

function writeDrillResults(results: Result[], o: { seed: number; faults: number | undefined; only: string[] | null; seconds: number }): void {
  const bad = results.filter(failed);
  const section = (r: Result, lines: string[]) => (lines.length === 0 ? [] : [`### ${r.scenario.title}`, '', ...lines, '']);
  const problems = results.flatMap((r) => section(r, [...r.ctx.crashes.map((c) => `crash of ${c.broker}: ${c.detail}`), ...r.ctx.tally.problems].slice(0, 40).map((l) => `- ${l.replace(/\n/g, ' ')}`)));
  const details = results.flatMap((r) => section(r, r.ctx.tally.details));
  writeResults(
    'drill',
    'Fault drill',
    tableOf(results),
    [
      `Seed ${o.seed} (\`DRILL_SEED\` replays it); ${o.faults === undefined ? 'default fault counts' : `DRILL_FAULTS=${o.faults}`}${o.only ? `; only ${o.only.join(', ')}` : ''}; total run time ${(o.seconds / 60).toFixed(1)} min.`,
      '',
      bad.length === 0 ? '**Verdict: pass**: nothing acknowledged was lost, nothing duplicated, no corrupt read, no broker crash.' : `**Verdict: fail**: ${bad.map((r) => r.scenario.name).join(', ')}.`,
      '',
      'What each scenario does (a SIGKILL the drill sends is a fault, not a crash; a crash is a broker process that exited on its own or could not start again):',
      '',
      ...results.map((r) => `- **${r.scenario.title}** (\`${r.scenario.name}\`): ${r.scenario.what}`),
      '',
      'Brokers, clients, s3rver and the drill itself share the machine\'s 2 cores. The counts are exact; latency ratios are medians of alternating trials in the same run.',
      '',
      ...(problems.length > 0 ? ['## Problems found', '', ...problems] : []),
      ...(details.length > 0 ? ['## Details', '', ...details] : []),
    ],
    'npm run drill',
  );
}

async function main(): Promise<number> {
  const { only, faults, seed } = parseEnv();
  console.log(`drill: seed ${seed}, ${loadLine()}, ${faults === undefined ? 'default fault counts' : `DRILL_FAULTS=${faults}`}`);
  const root = benchDir('drill');
  const t0 = performance.now();
  const results: Result[] = [];
  try {
    for (const s of SCENARIOS.filter((x) => only === null || only.includes(x.name))) results.push(await runOne(s, root, seed, faults));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  const seconds = (performance.now() - t0) / 1000;
  console.log(`\n${loadLine()}; total ${(seconds / 60).toFixed(1)} min\n`);
  console.log(tableOf(results));
  writeDrillResults(results, { seed, faults, only, seconds });
  return results.some(failed) ? 1 : 0;
}

// KafkaJS and child-process handles may linger after their owners closed them.
process.exit(await main());
