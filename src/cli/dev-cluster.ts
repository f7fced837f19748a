/**
 * `meridian dev --brokers N`: the local two-region mesh with each region a cluster of N
 * brokers on etcd (src/cluster/README.md, "Dev and deployment"). It starts:
 *
 * - one etcd (Debian's etcd-server, /usr/bin/etcd, or `etcd` on PATH) on 127.0.0.1:12379,
 *   data in ./meridian-data/cluster/etcd; the two regions share it under their own key
 *   prefixes (`/meridian-dev/us-east/`, `/meridian-dev/eu-west/`);
 * - N `meridian broker --config FILE` processes per region, node ids 1..N: us-east's Kafka
 *   listeners on 19092.., admin on 19644.., eu-west's on 29092.. and 29644.. (broker 1 of
 *   each region where the single-broker dev mesh listens, so the CLI's default address and
 *   the README's commands work); each broker's config is written to
 *   ./meridian-data/cluster/config/<region>-<id>.yaml and its log to .../logs/<region>-<id>.log;
 * - geo-replication: each config's registry names both regions with all their brokers'
 *   addresses and a mesh policy over every topic, as config/us-east.yaml does;
 * - tiered storage to ./meridian-data/cluster/tiered (the region name is appended to the key
 *   prefix, as in the dev mesh): every broker of a region shares its region's store, and only
 *   a partition's leader offloads (src/cluster/README.md).
 *
 * Brokers run as separate processes (not in this one) so a developer can kill -9 one and
 * watch its partitions fail over. They and etcd are started in their own process groups, so
 * the terminal's Ctrl-C reaches only this process, which stops them in order: every broker
 * first (SIGTERM: they resign, deregister and flush while etcd still answers), then etcd.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseRegions } from '../replication/policy.js';

/** Where Debian's etcd-server installs etcd; else `etcd` is looked up on PATH. */
export const DEV_ETCD_BINARY = '/usr/bin/etcd';
export const DEV_ETCD_CLIENT_PORT = 12379;
export const DEV_ETCD_PEER_PORT = 12380;
const PREFIX = '/meridian-dev';
const REGIONS = [
  { name: 'us-east', kafka: 19092, admin: 19644 },
  { name: 'eu-west', kafka: 29092, admin: 29644 },
] as const;
const MAX_BROKERS = 9;
const READY_TIMEOUT_MS = 120_000;

export interface DevClusterOptions {
  readonly brokers: number;
  /** The working directory: data goes to its ./meridian-data/cluster. */
  readonly cwd: string;
  /** How to run `meridian` again (this process's node, flags and entry script). */
  readonly command: readonly string[];
  /** How the user runs the CLI, for the banner (dev-banner.ts cliCommand). */
  readonly cli: string;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** The PATH to look for etcd on when the binary below is missing. */
  readonly searchPath?: string;
  /** Where etcd is expected first (default DEV_ETCD_BINARY, Debian's). */
  readonly etcdBinary?: string;
}

interface DevBroker {
  readonly region: string;
  readonly nodeId: number;
  readonly kafka: string;
  readonly admin: string;
  readonly configFile: string;
  readonly logFile: string;
  proc?: ChildProcess;
}

/** A problem the developer must fix before the dev cluster can start (exit 2, one message). */
export class DevClusterError extends Error {
  override readonly name = 'DevClusterError';
}

/** The brokers of the dev cluster: addresses, config and log files (pure, for the banner and the test). */
export function devClusterLayout(brokers: number, dataRoot: string): DevBroker[] {
  if (!Number.isInteger(brokers) || brokers < 1 || brokers > MAX_BROKERS) throw new DevClusterError(`--brokers: expected 1 to ${MAX_BROKERS} brokers per region, got ${brokers}`);
  return REGIONS.flatMap((r) =>
    Array.from({ length: brokers }, (_, i) => ({
      region: r.name,
      nodeId: i + 1,
      kafka: `127.0.0.1:${r.kafka + i}`,
      admin: `127.0.0.1:${r.admin + i}`,
      configFile: path.join(dataRoot, 'config', `${r.name}-${i + 1}.yaml`),
      logFile: path.join(dataRoot, 'logs', `${r.name}-${i + 1}.log`),
    })),
  );
}

/** The registry every broker gets: each region with all its brokers (several bootstrap addresses when the broker takes them). */
function registry(layout: readonly DevBroker[]): Array<{ name: string; address: string; admin: string }> {
  const entries = REGIONS.map((r) => {
    const own = layout.filter((b) => b.region === r.name);
    return { name: r.name, address: own.map((b) => b.kafka).join(','), admin: own[0]!.admin };
  });
  try {
    parseRegions(entries);
    return entries;
  } catch {
    // A broker whose registry takes one address per region: its first broker.
    return entries.map((e) => ({ ...e, address: e.address.split(',')[0]! }));
  }
}

function brokerConfig(b: DevBroker, dataRoot: string, layout: readonly DevBroker[]): Record<string, unknown> {
  const [kafkaHost, kafkaPort] = b.kafka.split(':');
  const [adminHost, adminPort] = b.admin.split(':');
  return {
    region: b.region,
    nodeId: b.nodeId,
    dataDir: path.join(dataRoot, b.region, `broker-${b.nodeId}`),
    kafka: { host: kafkaHost, port: Number(kafkaPort) },
    admin: { host: adminHost, port: Number(adminPort) },
    cluster: { etcd: { endpoints: [`127.0.0.1:${DEV_ETCD_CLIENT_PORT}`], prefix: PREFIX } },
    tiered: { enabled: true, store: { type: 'fs', dir: path.join(dataRoot, 'tiered') } },
    replication: {
      regions: registry(layout),
      policies: [{ name: 'dev-mesh', topics: '*', topology: 'mesh', regions: REGIONS.map((r) => r.name) }],
    },
  };
}

function listening(hostPort: string): Promise<boolean> {
  const [host, port] = hostPort.split(':');
  return new Promise((resolve) => {
    const s = net.connect(Number(port), host);
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

function etcdBinary(first: string, searchPath: string): string {
  if (fs.existsSync(first)) return first;
  for (const dir of searchPath.split(path.delimiter)) {
    const candidate = path.join(dir, 'etcd');
    if (dir !== '' && fs.existsSync(candidate)) return candidate;
  }
  throw new DevClusterError(
    `meridian dev --brokers needs etcd, which is not installed (${first} is missing and no etcd is on PATH): install Debian's etcd-server (sudo apt-get install etcd-server; bash scripts/install-tools.sh installs it too), or etcd from https://etcd.io/docs/latest/install/ (brew install etcd on macOS). Plain \`meridian dev\` needs no etcd.`,
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs the dev cluster until SIGINT or SIGTERM, then stops every broker and etcd and
 * resolves with the exit code. Throws DevClusterError (nothing left running) when it cannot start.
 */
export async function runDevCluster(o: DevClusterOptions): Promise<number> {
  const dataRoot = path.join(o.cwd, 'meridian-data', 'cluster');
  const layout = devClusterLayout(o.brokers, dataRoot);
  const binary = etcdBinary(o.etcdBinary ?? DEV_ETCD_BINARY, o.searchPath ?? '');
  const etcdAddress = `127.0.0.1:${DEV_ETCD_CLIENT_PORT}`;
  for (const hp of [etcdAddress, `127.0.0.1:${DEV_ETCD_PEER_PORT}`, ...layout.flatMap((b) => [b.kafka, b.admin])]) {
    if (await listening(hp)) throw new DevClusterError(`${hp} is in use (a dev mesh or dev cluster already running?); stop it and start again`);
  }
  for (const dir of ['config', 'logs', 'etcd']) fs.mkdirSync(path.join(dataRoot, dir), { recursive: true });
  for (const b of layout) fs.writeFileSync(b.configFile, `# Written by meridian dev --brokers ${o.brokers} at each start; edits are overwritten.\n${JSON.stringify(brokerConfig(b, dataRoot, layout), null, 2)}\n`);

  const children: ChildProcess[] = [];
  let stopping = false;
  let etcd: ChildProcess | undefined;
  const stopAll = async (): Promise<void> => {
    stopping = true;
    // Brokers first, while etcd still answers their resignations and lease revocations.
    await Promise.all(layout.map((b) => stopChild(b.proc, 15_000)));
    await stopChild(etcd, 10_000);
  };

  try {
    const etcdLog = fs.openSync(path.join(dataRoot, 'logs', 'etcd.log'), 'a');
    const c = `http://${etcdAddress}`;
    const p = `http://127.0.0.1:${DEV_ETCD_PEER_PORT}`;
    etcd = spawn(
      binary,
      ['--name', 'meridian-dev', '--data-dir', path.join(dataRoot, 'etcd'), '--listen-client-urls', c, '--advertise-client-urls', c, '--listen-peer-urls', p, '--initial-advertise-peer-urls', p, '--initial-cluster', `meridian-dev=${p}`, '--initial-cluster-state', 'new', '--log-level', 'warn', '--logger', 'zap'],
      { stdio: ['ignore', etcdLog, etcdLog], detached: true },
    );
    fs.closeSync(etcdLog);
    children.push(etcd);
    await waitReady('etcd', READY_TIMEOUT_MS, async () => {
      if (etcd!.exitCode !== null) throw new DevClusterError(`etcd exited (code ${etcd!.exitCode}); see ${path.join(dataRoot, 'logs', 'etcd.log')}`);
      const res = await fetch(`${c}/health`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined);
      return res !== undefined && ((await res.json()) as { health?: string }).health === 'true';
    });

    for (const b of layout) {
      const log = fs.openSync(b.logFile, 'a');
      b.proc = spawn(o.command[0]!, [...o.command.slice(1), 'broker', '--config', b.configFile], { cwd: o.cwd, stdio: ['ignore', log, log], detached: true });
      fs.closeSync(log);
      children.push(b.proc);
      b.proc.once('exit', (code, signal) => {
        if (!stopping) o.stderr.write(`meridian dev: ${b.region} broker ${b.nodeId} exited (${signal ?? `code ${code}`}); its log: ${path.relative(o.cwd, b.logFile)}\n`);
      });
    }
    // Ready: every broker's admin API lists the region's N brokers and an elected controller.
    await waitReady(`${layout.length} brokers`, READY_TIMEOUT_MS, async () => {
      const dead = layout.find((b) => b.proc!.exitCode !== null || b.proc!.signalCode !== null);
      if (dead !== undefined) throw new DevClusterError(`${dead.region} broker ${dead.nodeId} exited during start-up; its log ${dead.logFile} ends with:\n${tail(dead.logFile)}`);
      const ready = await Promise.all(layout.map((b) => regionReady(b, o.brokers)));
      return ready.every(Boolean);
    });
  } catch (err) {
    await stopAll();
    throw err instanceof DevClusterError ? err : new DevClusterError(err instanceof Error ? err.message : String(err));
  }

  o.stdout.write(devClusterBanner(layout, `${etcdAddress} (pid ${etcd!.pid})`, o.cwd, o.cli));
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  o.stdout.write(`\nmeridian dev: ${signal}: stopping ${layout.length} brokers, then etcd\n`);
  // A second signal while stopping: kill what is left and go.
  const force = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    process.exit(130);
  };
  process.once('SIGINT', force);
  process.once('SIGTERM', force);
  await stopAll();
  o.stdout.write('meridian dev: stopped\n');
  return 0;
}

async function regionReady(b: DevBroker, n: number): Promise<boolean> {
  try {
    const res = await fetch(`http://${b.admin}/v1/cluster`, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) return false;
    const body = (await res.json()) as { regionCluster: { controllerId: number; members: unknown[] } | null };
    return body.regionCluster !== null && body.regionCluster.members.length === n && body.regionCluster.controllerId >= 0;
  } catch {
    return false;
  }
}

async function waitReady(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new DevClusterError(`${what} not ready within ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
function stopChild(proc: ChildProcess | undefined, graceMs: number): Promise<void> {
  if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
}

/** The banner: every broker's Kafka and admin address, etcd, where data and logs are, commands to paste. */
export function devClusterBanner(layout: readonly DevBroker[], etcd: string, cwd: string, cli: string): string {
  const rel = (p: string) => `./${path.relative(cwd, p).split(path.sep).join('/')}`;
  const byRegion = REGIONS.map((r) => layout.filter((b) => b.region === r.name));
  const bootstrap = (list: readonly DevBroker[]) => list.map((b) => b.kafka).join(',');
  const [east, west] = byRegion as [DevBroker[], DevBroker[]];
  const n = east.length;
  return [
    '',
    `Meridian dev cluster is running: ${REGIONS.map((r) => r.name).join(' <-> ')}, ${n} broker${n === 1 ? '' : 's'} each on etcd, replicating every topic both ways. Ctrl-C stops it.`,
    '',
    ...byRegion.flatMap((list) =>
      list.map((b, i) => `  ${(i === 0 ? b.region : '').padEnd(7)}  broker ${b.nodeId}  Kafka ${b.kafka}  admin http://${b.admin}/  (pid ${b.proc?.pid ?? '-'})`),
    ),
    `  ${'etcd'.padEnd(7)}  ${etcd}, keys under ${PREFIX}/<region>/`,
    `  ${'data'.padEnd(7)}  ${rel(path.dirname(path.dirname(east[0]!.configFile)))} (each broker's config in config/, its log in logs/)`,
    '',
    'Produce in us-east, consume in us-east and eu-west, see where the replicas are:',
    '',
    `  printf 'k1:hello\\nk2:world\\n' | kcat -b ${bootstrap(east)} -t demo -P -K:`,
    `  kcat -b ${bootstrap(east)} -t demo -C -o beginning -e -f '%k:%s\\n'`,
    `  kcat -b ${bootstrap(west)} -t demo -C -o beginning -e -f '%k:%s\\n'`,
    `  ${cli} partitions describe --topic demo --partition 0`,
    '',
    `kill -9 a broker's pid to watch its partitions fail over; ${cli} partitions reassign moves replicas.`,
    '',
  ].join('\n');
}
