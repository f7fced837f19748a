/**
 * One region's broker for bench:scale, run as production runs it: `meridian broker --config
 * FILE` in its own process. Besides start, SIGTERM and SIGKILL, it reads what an operator
 * would read of the process from /proc: resident memory, open file descriptors and CPU time.
 *
 * Readiness is judged from outside, as a client sees it: the Kafka port answers a Metadata
 * request for every topic and every expected topic is in it with all its partitions led.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScaleClient } from './scale-client.js';
import { BROKER_NODE_FLAGS } from '../src/node-flags.js';
import { processCpuSeconds, procCpu } from './harness.js';

const BIN = fileURLToPath(new URL('../bin/meridian.js', import.meta.url));
/** Lines of the broker's output kept for the error message of a failed start. */
const TAIL_LINES = 40;

/** One window of the broker's own stalls (admin GET /v1/runtime). */
export interface RuntimeWindow {
  seconds: number;
  loopP99Ms: number;
  loopMaxMs: number;
  /** Time spent in GC pauses over the window. */
  gcMs: number;
  gcMaxMs: number;
}

export interface BrokerSpec {
  region: string;
  dir: string;
  port: number;
  adminPort: number;
  /** The YAML config's body after region, dataDir, kafka and admin. */
  extraYaml: string[];
}

export class BrokerProcess {
  readonly spec: BrokerSpec;
  readonly configFile: string;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #tail: string[] = [];

  constructor(spec: BrokerSpec) {
    this.spec = spec;
    fs.mkdirSync(spec.dir, { recursive: true });
    this.configFile = path.join(spec.dir, 'broker.yaml');
    fs.writeFileSync(
      this.configFile,
      [
        `region: ${spec.region}`,
        `dataDir: ${path.join(spec.dir, 'data')}`,
        'logging:',
        '  level: warn',
        `kafka: { host: 127.0.0.1, port: ${spec.port} }`,
        `admin: { host: 127.0.0.1, port: ${spec.adminPort} }`,
        ...spec.extraYaml,
        '',
      ].join('\n'),
    );
  }

  get bootstrap(): string {
    return `127.0.0.1:${this.spec.port}`;
  }

  get pid(): number {
    if (this.#child?.pid === undefined) throw new Error(`${this.spec.region} is not running`);
    return this.#child.pid;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** The last lines the broker printed (for an error message). */
  get tail(): string {
    return this.#tail.join('\n');
  }

  /** Spawns the process; `ready()` says when it serves. */
  spawn(): void {
    if (this.running) throw new Error(`${this.spec.region} is already running`);
    // The brokers run with the node flags `meridian` passes (src/node-flags.ts). BENCH_SCALE_NODE_ARGS
    // replaces them, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" ("" for node's defaults; a profile
    // is written when a broker exits on SIGTERM, not after a SIGKILL).
    const nodeArgs = (process.env.BENCH_SCALE_NODE_ARGS ?? BROKER_NODE_FLAGS.join(' ')).split(/\s+/).filter((x) => x !== '');
    const child = spawn(process.execPath, [...nodeArgs, BIN, 'broker', '--config', this.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    this.#exited = new Promise((r) => child.once('exit', () => r()));
    const keep = (d: Buffer) => {
      this.#tail.push(...d.toString().split('\n').filter((l) => l !== ''));
      if (this.#tail.length > TAIL_LINES) this.#tail.splice(0, this.#tail.length - TAIL_LINES);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
  }

  /**
   * Resolves once a Metadata request for all topics lists every topic in `expect` (name →
   * partition count) with each partition led, polling every `everyMs`; rejects when the
   * process exits or `timeoutMs` passes.
   */
  async ready(expect: ReadonlyMap<string, number> = new Map(), timeoutMs = 120_000, everyMs = 20): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (!this.running) throw new Error(`${this.spec.region} exited while starting:\n${this.tail}`);
      if (performance.now() > deadline) throw new Error(`${this.spec.region} did not serve Metadata for ${expect.size} topics within ${timeoutMs} ms:\n${this.tail}`);
      let client: ScaleClient | undefined;
      try {
        client = await ScaleClient.connect(this.spec.port);
        const { response } = await client.metadata();
        const seen = new Map(response.topics.map((t) => [t.name ?? '', t.errorCode === 0 ? t.partitions.filter((p) => p.errorCode === 0 && p.leaderId >= 0).length : -1]));
        if ([...expect].every(([name, n]) => seen.get(name) === n)) return;
      } catch {
        // Not listening yet, or closed while starting: try again.
      } finally {
        client?.close();
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }

  async start(expect?: ReadonlyMap<string, number>): Promise<void> {
    this.spawn();
    await this.ready(expect);
  }

  async kill9(): Promise<void> {
    this.#child?.kill('SIGKILL');
    await this.#exited;
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.#child!.kill('SIGTERM');
    const timer = setTimeout(() => this.#child?.kill('SIGKILL'), 60_000);
    await this.#exited;
    clearTimeout(timer);
  }

  /** Resident set size, bytes (VmRSS). */
  rss(): number {
    const line = fs.readFileSync(`/proc/${this.pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
    return Number(line?.split(/\s+/)[1] ?? 0) * 1024;
  }

  /** Open file descriptors (sockets, pipes and files alike). */
  fds(): number {
    return fs.readdirSync(`/proc/${this.pid}/fd`).length;
  }

  /** CPU seconds (user + system) used so far, from /proc/<pid>/stat (clock ticks of 10 ms). */
  cpuSeconds(): number {
    return processCpuSeconds(this.pid);
  }

  /** CPU seconds of the main thread (the event loop's: JS and the writes it makes in place), user and kernel. */
  mainThreadCpu(): { user: number; system: number } {
    return procCpu(this.pid, this.pid);
  }

  /**
   * The broker's event-loop delay and GC pauses since the last call (GET /v1/runtime's
   * window, then POST /v1/runtime/reset to begin the next): what the process itself added
   * to every request's latency meanwhile.
   */
  async runtimeWindow(): Promise<RuntimeWindow> {
    const res = await fetch(`http://127.0.0.1:${this.spec.adminPort}/v1/runtime/reset`, { method: 'POST' });
    if (res.status !== 200) throw new Error(`POST /v1/runtime/reset answered ${res.status}: ${await res.text()}`);
    const w = (await res.json()) as { windowSeconds: number; eventLoopDelayMs: { p99: number; max: number }; gc: { totalMs: number; maxMs: number } };
    return { seconds: w.windowSeconds, loopP99Ms: w.eventLoopDelayMs.p99, loopMaxMs: w.eventLoopDelayMs.max, gcMs: w.gc.totalMs, gcMaxMs: w.gc.maxMs };
  }

  /** GET on the admin API: status, body size in bytes, and milliseconds to the last byte. */
  async admin(route: string, init?: RequestInit): Promise<{ status: number; bytes: number; ms: number; body: string }> {
    const t0 = performance.now();
    const res = await fetch(`http://127.0.0.1:${this.spec.adminPort}${route}`, init);
    const body = await res.text();
    return { status: res.status, bytes: Buffer.byteLength(body), ms: performance.now() - t0, body };
  }
}

/** Samples the peak RSS and fd count of running brokers every `everyMs` until stopped. */
export class PeakSampler {
  readonly peakRss = new Map<string, number>();
  readonly peakFds = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;

  constructor(brokers: readonly BrokerProcess[], everyMs = 250) {
    this.#timer = setInterval(() => {
      for (const b of brokers) {
        if (!b.running) continue;
        try {
          const r = b.spec.region;
          this.peakRss.set(r, Math.max(this.peakRss.get(r) ?? 0, b.rss()));
          this.peakFds.set(r, Math.max(this.peakFds.get(r) ?? 0, b.fds()));
        } catch {
          // The process exited between the check and the read.
        }
      }
    }, everyMs);
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

