/**
 * Several regions, each a real broker in its own process on 127.0.0.1 (see
 * test/fixtures/region-broker.ts), for the geo-replication tests. Ports are picked before
 * anything starts, so every region's registry can name every other region, and a restarted
 * region comes back on the same port and data directory.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import type { WorkerStatus } from '../../src/replication/worker.js';
import { tmpDir } from './tmp-dir.js';
import { waitFor } from './wait.js';
import { BROKER_NODE_FLAGS } from '../../src/node-flags.js';

// bench/drill waits on regions with the tests' one wait helper, imported from here.
export { waitFor };

const CHILD = fileURLToPath(new URL('../fixtures/region-broker.ts', import.meta.url));

export interface RegionStatus {
  workers: WorkerStatus[];
  links: Array<{ remote: string; connected: boolean; inFlightBytes: number; workers: number; states: Record<string, number> }>;
  target: { appendedBatches: number; appendedBytes: number; duplicateBatches: number; loopDroppedBatches: number };
  /** The broker process's resident set size, bytes. */
  rss: number;
  tiered: Array<{ topic: string; partition: number; remoteEndOffset: string }>;
  topics: Array<{ name: string; partitions: Array<{ logStartOffset: string; highWatermark: string; durableOffset: string; segments: number }> }>;
}

/** The kernel's range for the local ports of outgoing connections (and listen(0)). */
function ephemeralRange(): [number, number] | undefined {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return Number.isInteger(lo) && Number.isInteger(hi) ? [lo!, hi!] : undefined;
  } catch {
    return undefined;
  }
}

const PORT_SLICES = 6;
/** Ports this process's freePort returned (or found taken): never returned again. */
const handedOut = new Set<number>();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A port nothing listens on, for a server started later (a region's address must be known
 * before the region starts). Picked below the kernel's ephemeral range when there is room:
 * a port handed out by listen(0) lies in that range, and another process's outgoing
 * connection could take it as its local port before the server binds it, which failed a CI
 * run (EADDRINUSE on a region's admin port). Random in the 12,000 ports below the range,
 * checked by binding it; listen(0) where the range leaves no room.
 */
export async function freePort(): Promise<number> {
  const range = ephemeralRange();
  if (range !== undefined && range[0] > 13_024) {
    // Each test process draws from its own sixth of those ports (by pid), so two test files
    // running side by side rarely draw the same port between the check and the bind; and
    // never hands out one port twice (several drawn at once, then bound later, once failed a
    // CI run with EADDRINUSE on a region's admin port).
    const slice = 12_000 / PORT_SLICES;
    const lo = range[0] - 12_000 + (process.pid % PORT_SLICES) * slice;
    for (let attempt = 0; attempt < 100; attempt++) {
      const port = lo + Math.floor(Math.random() * slice);
      if (handedOut.has(port)) continue;
      handedOut.add(port);
      if (await bindable(port)) return port;
    }
  }
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** One region: a broker process that can be stopped, killed and restarted in place. */
export class Region {
  readonly name: string;
  readonly port: number;
  readonly dataDir: string;
  overrides: BrokerConfigInput;
  /**
   * The boot id the region's partition logs see from its next start (undefined: the
   * machine's): a new one plays a restart after a power loss (storage/ship-fence.ts).
   */
  bootId: string | undefined;
  /** The admin API's port while running, when the region serves one (MeshOptions.admin). */
  adminPort: number | undefined;
  #proc: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #waiters: Array<(line: string) => void> = [];
  #logLines: string[] = [];

  constructor(name: string, port: number, dataDir: string, overrides: BrokerConfigInput) {
    this.name = name;
    this.port = port;
    this.dataDir = dataDir;
    this.overrides = overrides;
  }

  get bootstrap(): string {
    return `127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#proc !== undefined && this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /** Log lines (JSON) this region printed, across restarts. */
  get logLines(): readonly string[] {
    return this.#logLines;
  }

  async start(): Promise<void> {
    assert.ok(!this.running, `${this.name} is already running`);
    const overrides = { ...this.overrides, region: this.name, dataDir: this.dataDir, kafka: { host: '127.0.0.1', port: this.port, ...(this.overrides.kafka ?? {}) } };
    // Every region runs with the node flags `meridian` passes (src/node-flags.ts). REGION_NODE_ARGS
    // replaces them (e.g. "--cpu-prof" when profiling; "" for node's defaults).
    const nodeArgs = (process.env.REGION_NODE_ARGS ?? BROKER_NODE_FLAGS.join(' ')).split(/\s+/).filter((x) => x !== '');
    const proc = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', CHILD, JSON.stringify(overrides), ...(this.bootId !== undefined ? [this.bootId] : [])], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#proc = proc;
    this.#exited = new Promise((r) => proc.once('exit', () => r()));
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    await new Promise<void>((resolve, reject) => {
      let up = false;
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`region ${this.name} did not start within 30 s:\n${stderr}`));
      }, 30_000);
      proc.once('exit', (code, sig) => {
        if (up) return;
        clearTimeout(timer);
        reject(new Error(`region ${this.name} exited (${code ?? sig}) before listening:\n${stderr}`));
      });
      readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
        if (line.startsWith('ADMIN ')) {
          this.adminPort = Number(line.slice(6));
        } else if (line.startsWith('LISTENING ')) {
          up = true;
          clearTimeout(timer);
          resolve();
        } else if (line.startsWith('STATUS ') || line.startsWith('POLICIES ')) {
          this.#waiters.shift()?.(line);
        } else if (line.startsWith('{')) {
          this.#logLines.push(line);
        }
      });
    });
  }

  #ask(command: string): Promise<string> {
    assert.ok(this.running, `${this.name} is not running`);
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      this.#proc!.stdin!.write(`${command}\n`);
    });
  }

  async status(): Promise<RegionStatus> {
    return JSON.parse((await this.#ask('status')).slice(7)) as RegionStatus;
  }

  /** Replaces the replication policies at run time; rejects with the broker's message. */
  async setPolicies(policies: unknown): Promise<void> {
    const answer = await this.#ask(`policies ${JSON.stringify(policies)}`);
    if (answer !== 'POLICIES OK') throw new Error(answer.slice('POLICIES ERR '.length));
  }

  async kill9(): Promise<void> {
    this.#proc?.kill('SIGKILL');
    await this.#exited;
    this.#waiters = [];
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.#proc!.kill('SIGTERM');
    const timer = setTimeout(() => this.#proc?.kill('SIGKILL'), 15_000);
    await this.#exited;
    clearTimeout(timer);
    this.#waiters = [];
  }
}

export interface MeshOptions {
  /** Region names, in order. */
  names: string[];
  /** Replication policies every region gets. */
  policies: unknown[];
  /** Extra config for every region (or per region by name). */
  overrides?: BrokerConfigInput | ((name: string) => BrokerConfigInput);
  /** The address region B uses for region A, when a test puts a proxy in between. */
  addressOf?: (from: string, to: string, port: number) => string;
  /** Serve the admin API on a port picked here, named as `admin` in every registry entry. */
  admin?: boolean;
}

/** Regions that know each other; `start()` starts them all, `close()` stops them and removes their data. */
export class Regions {
  readonly list: Region[];
  #dirs: Array<() => void> = [];

  private constructor(list: Region[], dirs: Array<() => void>) {
    this.list = list;
    this.#dirs = dirs;
  }

  static async create(o: MeshOptions): Promise<Regions> {
    const ports = await Promise.all(o.names.map(() => freePort()));
    const adminPorts = o.admin ? await Promise.all(o.names.map(() => freePort())) : undefined;
    const dirs = o.names.map(() => tmpDir('meridian-region-'));
    const list = o.names.map((name, i) => {
      const extra = typeof o.overrides === 'function' ? o.overrides(name) : o.overrides ?? {};
      const regions = o.names.map((n, j) => ({
        name: n,
        address: o.addressOf ? o.addressOf(name, n, ports[j]) : `127.0.0.1:${ports[j]}`,
        ...(adminPorts ? { admin: `127.0.0.1:${adminPorts[j]}` } : {}),
      }));
      const overrides: BrokerConfigInput = {
        logging: { level: (process.env.MERIDIAN_TEST_LOG_LEVEL as 'info' | undefined) ?? 'info' },
        // Every check reads each region with a fresh KafkaJS group: no 3 s wait for more members.
        groups: { initialRebalanceDelayMs: 0 },
        ...(adminPorts ? { admin: { host: '127.0.0.1', port: adminPorts[i] } } : {}),
        ...extra,
        replication: { regions, policies: o.policies, retry: { initialMs: 50, maxMs: 1000 }, requestTimeoutMs: 5000, ...(extra.replication ?? {}) } as BrokerConfigInput['replication'],
      };
      return new Region(name, ports[i], dirs[i].dir, overrides);
    });
    return new Regions(list, dirs.map((d) => d.cleanup));
  }

  get(name: string): Region {
    const r = this.list.find((x) => x.name === name);
    assert.ok(r, `no region ${name}`);
    return r;
  }

  async start(): Promise<void> {
    await Promise.all(this.list.map((r) => r.start()));
  }

  async close(): Promise<void> {
    await Promise.all(this.list.map((r) => r.stop()));
    for (const d of this.#dirs) d();
  }
}

/** Waits until every worker in every given running region is idle with nothing left to send. */
export async function waitCaughtUp(regions: readonly Region[], timeoutMs = 60_000): Promise<void> {
  await waitFor(
    'replication to catch up',
    async () => {
      for (const r of regions) {
        if (!r.running) continue;
        const s = await r.status();
        if (s.workers.some((w) => w.backlogRecords > 0 || w.state !== 'idle')) return undefined;
      }
      return true;
    },
    timeoutMs,
    200,
  );
}
