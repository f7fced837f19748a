/**
 * The context a drill scenario runs in: its scratch directory, seeded randomness, the tally
 * its row of the table is made of, clean-up that runs even when it fails, and brokers
 * watched for crashes.
 *
 * A crash is a broker process that exited without the drill asking it to: each watched
 * broker knows whether it is meant to be down, and a 50 ms poll notices any other exit.
 * Brokers run with Node's --report-uncaught-exception, so a crash leaves its JavaScript stack
 * in the scenario's directory for the report.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Region } from '../../../test/helpers/regions.js';
import { BROKER_NODE_FLAGS } from '../../../src/node-flags.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The figures of one row of the drill's table (crashes come from the watched brokers). */
export interface Tally {
  faults: number;
  acknowledged: number;
  lost: number;
  duplicates: number;
  corrupt: number;
  /** Short, for the table's notes column. */
  notes: string[];
  /** What went wrong, precisely, for the results file. */
  problems: string[];
  /** Markdown lines the results file shows under the scenario (e.g. per-trial figures). */
  details: string[];
}

/** One row of the drill: `name` is what DRILL_ONLY selects, `what` goes under the table. */
export interface Scenario {
  name: string;
  title: string;
  what: string;
  run(ctx: DrillContext): Promise<void>;
}

export interface CrashRecord {
  broker: string;
  detail: string;
}

/** A small seeded PRNG (xorshift32), so a failing run can be replayed with DRILL_SEED. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

/**
 * One scenario's run. Scenarios register every process, server and directory they start
 * with `defer` as soon as it exists, so `close()` releases all of it whatever happened.
 */
export class DrillContext {
  readonly name: string;
  readonly dir: string;
  readonly random: () => number;
  readonly tally: Tally = { faults: 0, acknowledged: 0, lost: 0, duplicates: 0, corrupt: 0, notes: [], problems: [], details: [] };
  readonly crashes: CrashRecord[] = [];
  readonly unmetRequirements: string[] = [];
  readonly #faultsOverride: number | undefined;
  readonly #deferred: Array<() => unknown> = [];
  readonly #log: (line: string) => void;

  constructor(o: { name: string; dir: string; seed: number; faultsOverride: number | undefined; log: (line: string) => void }) {
    this.name = o.name;
    this.dir = o.dir;
    this.random = seededRandom(o.seed);
    this.#faultsOverride = o.faultsOverride;
    this.#log = o.log;
    fs.mkdirSync(this.reportDir, { recursive: true });
  }

  /** Where crashing brokers leave their Node diagnostic reports. */
  get reportDir(): string {
    return path.join(this.dir, 'node-reports');
  }

  /** How many faults to inject: DRILL_FAULTS when set, else the scenario's default. */
  faults(byDefault: number): number {
    return this.#faultsOverride ?? byDefault;
  }

  between(min: number, max: number): number {
    return min + Math.floor(this.random() * (max - min + 1));
  }

  log(line: string): void {
    this.#log(`  [${this.name}] ${line}`);
  }

  defer(fn: () => unknown): void {
    this.#deferred.push(fn);
  }

  problem(text: string): void {
    this.tally.problems.push(text);
  }

  /** A scenario requirement outside the four counts failed (e.g. the offload never completed): the drill fails. */
  unmet(text: string): void {
    this.unmetRequirements.push(text);
    this.problem(text);
  }

  watch(region: Region): WatchedBroker {
    const w = new WatchedBroker(region, (detail) => this.#crashed(region.name, detail));
    this.defer(() => w.close());
    return w;
  }

  #crashed(broker: string, detail: string): void {
    const reports = fs.readdirSync(this.reportDir).filter((f) => f.endsWith('.json'));
    const stacks = reports.map((f) => {
      try {
        const r = JSON.parse(fs.readFileSync(path.join(this.reportDir, f), 'utf8')) as { javascriptStack?: { message?: string; stack?: string[] } };
        return `${r.javascriptStack?.message ?? '?'} ${(r.javascriptStack?.stack ?? []).slice(0, 4).join(' ')}`;
      } catch {
        return f;
      }
    });
    for (const f of reports) fs.renameSync(path.join(this.reportDir, f), path.join(this.reportDir, `${f}.seen`));
    const record = { broker, detail: [detail, ...stacks].join(' | ') };
    this.crashes.push(record);
    this.log(`CRASH of ${broker}: ${record.detail}`);
  }

  /** Runs every deferred clean-up, newest first; one failing does not stop the others. */
  async close(): Promise<void> {
    for (const fn of this.#deferred.splice(0).reverse()) {
      try {
        await Promise.race([fn(), sleep(30_000).then(() => Promise.reject(new Error('clean-up step took over 30 s')))]);
      } catch (err) {
        this.log(`clean-up: ${(err as Error).message}`);
      }
    }
  }
}

/**
 * A broker process whose unexpected exits are counted. Every stop the drill makes goes
 * through here, so "meant to be down" is always known; a failed start after a kill -9 is a
 * crash too (the broker could not recover its data directory).
 */
export class WatchedBroker {
  readonly region: Region;
  #meantDown = true;
  readonly #timer: NodeJS.Timeout;
  readonly #onCrash: (detail: string) => void;

  constructor(region: Region, onCrash: (detail: string) => void) {
    this.region = region;
    this.#onCrash = onCrash;
    this.#timer = setInterval(() => {
      if (!this.#meantDown && !region.running) {
        this.#meantDown = true;
        const errors = region.logLines.filter((l) => /"level":(50|60)/.test(l)).slice(-3);
        onCrash(`exited on its own; last error logs: ${errors.join(' ') || 'none'}`);
      }
    }, 50);
  }

  get bootstrap(): string {
    return this.region.bootstrap;
  }

  get running(): boolean {
    return this.region.running;
  }

  async start(): Promise<void> {
    try {
      await this.region.start();
    } catch (err) {
      this.#onCrash(`failed to start: ${(err as Error).message.slice(0, 600)}`);
      throw err;
    }
    this.#meantDown = false;
  }

  async kill9(): Promise<void> {
    this.#meantDown = true;
    await this.region.kill9();
  }

  async stop(): Promise<void> {
    this.#meantDown = true;
    await this.region.stop();
  }

  /** Brings back a broker that crashed, so the end-of-scenario checks can still read. */
  async ensureRunning(): Promise<void> {
    if (!this.region.running) await this.start();
  }

  close(): void {
    clearInterval(this.#timer);
  }
}

/** Node flags for every broker process (Region reads REGION_NODE_ARGS at start): the ones `meridian` passes, and crash reports. */
export function brokerNodeArgs(reportDir: string): string {
  return [...BROKER_NODE_FLAGS, '--report-uncaught-exception', '--report-on-fatalerror', `--report-directory=${reportDir}`].join(' ');
}
