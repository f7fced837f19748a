/**
 * A real etcd for tests (Debian's etcd-server, /usr/bin/etcd): one member on 127.0.0.1 with
 * free client and peer ports and a temporary data directory, ready once its health
 * endpoint answers. `stop()` and `start()` again keep the ports and the data, so a test can
 * make etcd unavailable and bring it back; `close()` stops it and removes the directory.
 *
 * With `tls`, etcd serves https and requires client certificates (`ctl` runs etcdctl with
 * one). A missing binary is an error naming the package, never a skip.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Controller, type ControllerOptions } from '../../src/cluster/etcd-controller.js';
import { Membership } from '../../src/cluster/etcd-membership.js';
import { EtcdRegion } from '../../src/cluster/etcd-region.js';
import { TopicStore } from '../../src/cluster/etcd-topics.js';
import type { BrokerInfo } from '../../src/cluster/partition-state.js';
import { freePort } from './regions.js';
import { tmpDir } from './tmp-dir.js';
import { waitFor } from './wait.js';

export const ETCD_BINARY = process.env.ETCD_BINARY ?? '/usr/bin/etcd';
export const ETCDCTL_BINARY = '/usr/bin/etcdctl';

export interface EtcdTls {
  /** etcd's server certificate and key (SAN 127.0.0.1). */
  readonly cert: string;
  readonly key: string;
  /** The CA clients' certificates must be signed by (and etcd's is). */
  readonly ca: string;
  /** A client certificate etcdctl uses here. */
  readonly clientCert: string;
  readonly clientKey: string;
}

export class TestEtcd {
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  readonly #cleanup: () => void;
  #proc: ChildProcess | undefined;
  #stderr = '';

  readonly #binary: string;

  /** Client TLS: etcd serves https with `cert`/`key` and requires client certificates signed by `ca`. */
  readonly #tls: EtcdTls | undefined;

  private constructor(clientPort: number, peerPort: number, dir: { dir: string; cleanup: () => void }, binary: string, tls?: EtcdTls) {
    this.#binary = binary;
    this.#tls = tls;
    this.clientPort = clientPort;
    this.peerPort = peerPort;
    this.dataDir = dir.dir;
    this.#cleanup = dir.cleanup;
  }

  /** Starts a fresh etcd and waits until it is healthy. `binary` is for the test of a missing one. */
  static async start(o: { binary?: string; tls?: EtcdTls } = {}): Promise<TestEtcd> {
    const binary = o.binary ?? ETCD_BINARY;
    if (!existsSync(binary)) {
      throw new Error(`etcd is not installed (${binary} is missing): install the Debian package etcd-server (apt-get install -y etcd-server)`);
    }
    const client = await freePort();
    let peer = await freePort();
    while (peer === client) peer = await freePort();
    const e = new TestEtcd(client, peer, tmpDir('meridian-etcd-'), binary, o.tls);
    await e.start();
    return e;
  }

  /** Runs etcdctl against this etcd (with the TLS client certificate when it has TLS, and `user` as --user). */
  ctl(args: string[], user?: string): { code: number | null; out: string } {
    const tls = this.#tls;
    const r = spawnSync(ETCDCTL_BINARY, [
      '--endpoints', `${tls ? 'https' : 'http'}://127.0.0.1:${this.clientPort}`,
      '--dial-timeout', '1s', '--command-timeout', '2s',
      ...(tls ? ['--cacert', tls.ca, '--cert', tls.clientCert, '--key', tls.clientKey] : []),
      ...(user !== undefined ? ['--user', user] : []),
      ...args,
    ], { encoding: 'utf8' });
    if (r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`etcdctl is not installed (${ETCDCTL_BINARY}): install the Debian package etcd-client`);
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  }

  /** host:port for the etcd3 client and cluster.etcd.endpoints. */
  get endpoint(): string {
    return `127.0.0.1:${this.clientPort}`;
  }

  get running(): boolean {
    return this.#proc !== undefined;
  }

  /** (Re)starts etcd on the same ports and data directory; resolves when healthy. */
  async start(): Promise<void> {
    if (this.#proc !== undefined) return;
    const tls = this.#tls;
    const c = `${tls ? 'https' : 'http'}://127.0.0.1:${this.clientPort}`;
    const p = `http://127.0.0.1:${this.peerPort}`;
    this.#stderr = '';
    const proc = spawn(
      this.#binary,
      [
        '--name', 'n1',
        '--data-dir', this.dataDir,
        '--listen-client-urls', c,
        '--advertise-client-urls', c,
        '--listen-peer-urls', p,
        '--initial-advertise-peer-urls', p,
        '--initial-cluster', `n1=${p}`,
        '--initial-cluster-state', 'new',
        '--log-level', 'warn',
        '--logger', 'zap',
        ...(tls ? ['--cert-file', tls.cert, '--key-file', tls.key, '--trusted-ca-file', tls.ca, '--client-cert-auth'] : []),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    proc.stderr!.on('data', (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-4000);
    });
    this.#proc = proc;
    let exited: string | undefined;
    proc.once('exit', (code, signal) => {
      exited = `etcd exited (code ${code}, signal ${signal})`;
      if (this.#proc === proc) this.#proc = undefined;
    });
    await waitFor(
      `etcd healthy on ${c}`,
      async () => {
        if (exited !== undefined) throw new Error(`${exited}: ${this.#stderr}`);
        if (tls) return this.ctl(['endpoint', 'health']).code === 0;
        const res = await fetch(`${c}/health`, { signal: AbortSignal.timeout(1000) });
        const body = (await res.json()) as { health?: string };
        return body.health === 'true';
      },
      20_000,
      25,
      () => `stderr: ${this.#stderr}`,
    );
  }

  /** Stops etcd (SIGKILL: etcd's data is fsync'd, as after a crash) and waits for the exit. */
  async stop(): Promise<void> {
    const proc = this.#proc;
    if (proc === undefined) return;
    this.#proc = undefined;
    if (proc.exitCode === null && proc.signalCode === null) {
      await new Promise<void>((resolve) => {
        proc.once('exit', () => resolve());
        proc.kill('SIGKILL');
      });
    }
  }

  /** Stops etcd and removes its data directory. */
  async close(): Promise<void> {
    await this.stop();
    this.#cleanup();
  }
}

/** One broker's etcd side, as the broker will wire it: region client, membership, controller, topic store. */
export interface TestNode {
  readonly nodeId: number;
  readonly region: EtcdRegion;
  readonly membership: Membership;
  readonly controller: Controller;
  readonly topics: TopicStore;
  /** Leaves cleanly: the lease is revoked, the key goes at once. */
  close(): Promise<void>;
  /** Dies as on SIGKILL: keepalives stop, nothing is revoked, the client closes. */
  kill(): Promise<void>;
}

export interface TestNodeOptions {
  readonly region?: string;
  readonly leaseTtlMs?: number;
  /** Defaults to the etcd's endpoint; a proxy's to cut the node off. */
  readonly endpoint?: string;
  readonly controller?: Partial<ControllerOptions>;
  readonly opTimeoutMs?: number;
  readonly registerWaitMs?: number;
}

export function brokerInfo(nodeId: number): BrokerInfo {
  return { nodeId, kafka: { host: '127.0.0.1', port: 19000 + nodeId }, admin: null, rack: null, startedAt: Date.now() };
}

/** Registers a node (and starts its controller) against `etcd`. */
export async function startNode(etcd: TestEtcd, nodeId: number, o: TestNodeOptions = {}): Promise<TestNode> {
  const region = new EtcdRegion({
    region: o.region ?? 'us-east',
    etcd: { endpoints: [o.endpoint ?? etcd.endpoint], prefix: '/meridian-test' },
    callTimeoutMs: 1000,
    ...(o.opTimeoutMs !== undefined ? { opTimeoutMs: o.opTimeoutMs } : {}),
  });
  const membership = new Membership(region, brokerInfo(nodeId), { leaseTtlMs: o.leaseTtlMs ?? 2000, ...(o.registerWaitMs !== undefined ? { registerWaitMs: o.registerWaitMs } : {}) });
  try {
    await membership.start();
  } catch (err) {
    region.close();
    throw err;
  }
  const controller = new Controller(region, membership, { uncleanLeaderElection: false, defaultReplicationFactor: null, ...o.controller });
  await controller.start();
  const topics = new TopicStore(region, membership);
  let done = false;
  return {
    nodeId,
    region,
    membership,
    controller,
    topics,
    async close() {
      if (done) return;
      done = true;
      await controller.close();
      await membership.close();
      region.close();
    },
    async kill() {
      if (done) return;
      done = true;
      await membership.abandon();
      await controller.close();
      region.close();
    },
  };
}
