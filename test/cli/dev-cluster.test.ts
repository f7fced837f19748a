/**
 * `meridian dev --brokers 3` as a developer meets it: a real process in a fresh directory,
 * which starts etcd (Debian's etcd-server) and two regions of three broker processes each;
 * the banner's addresses answer, every broker sees its region's three members, kcat
 * produces and consumes a topic in each region through the bootstrap lists the banner
 * gives (and what us-east got arrives in eu-west), and Ctrl-C stops every process it started (brokers and etcd: no pid alive, no port
 * listening) with exit 0.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runDevCluster } from '../../src/cli/dev-cluster.js';
import { ETCD_BINARY } from '../helpers/etcd.js';
import { kcat } from '../helpers/kcat.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

const BIN = fileURLToPath(new URL('../../bin/meridian.js', import.meta.url));
const BANNER = 'Meridian dev cluster is running';
const t = tmpDir('meridian-dev-cluster-');
after(t.cleanup);

const PORTS = [12379, 12380, 19092, 19093, 19094, 29092, 29093, 29094, 19644, 19645, 19646, 29644, 29645, 29646];

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('meridian dev --brokers 3: etcd and six brokers, kcat in each region, Ctrl-C stops everything', async (t2) => {
  assert.ok(fs.existsSync(ETCD_BINARY), `etcd is not installed (${ETCD_BINARY}): install the Debian package etcd-server`);
  for (const port of PORTS) assert.equal(await listening(port), false, `port ${port} is in use (a dev mesh or dev cluster already running?); stop it and run again`);
  const work = path.join(t.dir, 'cwd');
  fs.mkdirSync(work);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MERIDIAN_')));
  const child = spawn(process.execPath, [BIN, 'dev', '--brokers', '3'], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  let pids: number[] = [];
  try {
    await waitFor(
      'the dev cluster banner',
      () => {
        if (child.exitCode !== null) throw new Error(`meridian dev --brokers 3 exited ${child.exitCode}: ${err}${out}`);
        return out.includes(BANNER) && out.includes('reassign moves replicas');
      },
      120_000,
      100,
      () => `stdout: ${out} stderr: ${err}`,
    );
    const t0 = Date.now();
    pids = [...out.matchAll(/\(pid (\d+)\)/g)].map((m) => Number(m[1]));
    assert.equal(pids.length, 7, `six broker pids and etcd's in the banner:\n${out}`);
    for (const [region, kafka, admin] of [['us-east', 19092, 19644], ['eu-west', 29092, 29644]] as const) {
      for (let i = 0; i < 3; i++) assert.match(out, new RegExp(`broker ${i + 1}  Kafka 127\\.0\\.0\\.1:${kafka + i}  admin http://127\\.0\\.0\\.1:${admin + i}/`), `${region} broker ${i + 1} in the banner`);
      for (let i = 0; i < 3; i++) {
        const c = (await (await fetch(`http://127.0.0.1:${admin + i}/v1/cluster`)).json()) as { region: string; regionCluster: { members: Array<{ nodeId: number }>; controllerId: number } };
        assert.equal(c.region, region);
        assert.deepEqual(c.regionCluster.members.map((m) => m.nodeId), [1, 2, 3], `${region} broker ${i + 1} sees the region's three brokers`);
      }
    }
    const health = (await (await fetch('http://127.0.0.1:12379/health')).json()) as { health: string };
    assert.equal(health.health, 'true', 'etcd answers');
    assert.ok(fs.existsSync(path.join(work, 'meridian-data', 'cluster', 'us-east', 'broker-2')), 'data under ./meridian-data/cluster');

    // The banner's bootstrap lists, in each region: a topic auto-created, produced, read back.
    for (const region of ['us-east', 'eu-west']) {
      const bootstrap = new RegExp(`kcat -b (\\S+) -t demo -C`, 'g');
      const lists = [...out.matchAll(bootstrap)].map((m) => m[1]!);
      const list = lists[region === 'us-east' ? 0 : 1]!;
      const topic = `dev-${region}`;
      const values = ['a', 'b', 'c'].map((v) => `${region}-${v}`);
      const p = await kcat(['-P', '-b', list, '-t', topic, '-p', '0', '-X', 'acks=all'], values.join('\n') + '\n', 60_000);
      assert.equal(p.code, 0, `kcat -P in ${region}: ${p.stderr}`);
      const read = await waitFor(
        `${topic} read back in ${region}`,
        async () => {
          const r = await kcat(['-C', '-b', list, '-t', topic, '-p', '0', '-o', 'beginning', '-e', '-q', '-f', '%s\\n'], undefined, 30_000);
          const got = r.stdout.toString().split('\n').filter(Boolean);
          return got.length >= values.length ? got : false;
        },
        30_000,
        200,
      );
      assert.deepEqual(read, values, `${region}: the values once, in order`);
    }
    // The regions replicate to each other (mesh): us-east's topic arrives in eu-west.
    const westList = [...out.matchAll(/kcat -b (\S+) -t demo -C/g)].map((m) => m[1]!)[1]!;
    const arrived = await waitFor(
      'dev-us-east replicated to eu-west',
      async () => {
        const r = await kcat(['-C', '-b', westList, '-t', 'dev-us-east', '-p', '0', '-o', 'beginning', '-e', '-q', '-f', '%s\\n'], undefined, 30_000);
        const got = r.stdout.toString().split('\n').filter(Boolean);
        return got.length >= 3 ? got : false;
      },
      60_000,
      500,
    );
    assert.deepEqual(arrived, ['us-east-a', 'us-east-b', 'us-east-c'], 'us-east\'s values once, in order, in eu-west');
    assert.ok(fs.existsSync(path.join(work, 'meridian-data', 'cluster', 'tiered')), 'tiered storage under ./meridian-data/cluster/tiered');
    t2.diagnostic(`checks took ${Date.now() - t0} ms`);
  } finally {
    child.kill('SIGINT');
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 40_000).unref())]);
    if (code === 'timeout') {
      child.kill('SIGKILL');
      for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
    assert.equal(code, 0, `Ctrl-C exits 0 (stderr: ${err})`);
  }
  assert.ok(out.includes('stopped\n'));
  assert.match(out, /stopping 6 brokers, then etcd/);
  for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} (a broker or etcd) is gone after Ctrl-C`);
  for (const port of PORTS) assert.equal(await listening(port), false, `nothing listens on ${port} after Ctrl-C`);
});

test('meridian dev --brokers without etcd: a message naming the package, nothing started', async () => {
  const work = path.join(t.dir, 'no-etcd');
  fs.mkdirSync(work);
  const sink = { write: () => true } as unknown as NodeJS.WritableStream;
  await assert.rejects(
    runDevCluster({ brokers: 3, cwd: work, command: [process.execPath, BIN], cli: 'meridian', stdout: sink, stderr: sink, etcdBinary: path.join(work, 'no-such-etcd'), searchPath: '' }),
    (err: Error) => err.name === 'DevClusterError' && /needs etcd/.test(err.message) && /apt-get install etcd-server/.test(err.message),
  );
  assert.deepEqual(fs.readdirSync(work), [], 'nothing written');
});
