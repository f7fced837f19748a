/**
 * `meridian dev` (what `npm start` runs) as a developer meets it: a real process in a fresh
 * directory, the banner's commands pasted into a shell, kcat (librdkafka) as the client,
 * Ctrl-C, and a second start on the same data.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { kcat } from '../helpers/kcat.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

const BIN = fileURLToPath(new URL('../../bin/meridian.js', import.meta.url));
const BANNER = 'Meridian dev mesh is running';
const t = tmpDir('meridian-dev-');
after(t.cleanup);

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

interface Dev {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

/** Starts `meridian dev` in `cwd` with stdout a pipe (not a terminal) and waits for the banner. */
async function startDev(cwd: string): Promise<Dev> {
  const child = spawn(process.execPath, [BIN, 'dev'], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: withoutMeridianVars() });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  let gone: number | null | undefined;
  void exited.then((code) => (gone = code));
  await waitFor(
    'the dev banner',
    () => {
      if (gone !== undefined) throw new Error(`meridian dev exited ${gone}: ${err}${out}`);
      return out.includes(BANNER) && out.includes('status\n');
    },
    90_000,
    50,
    () => `stdout so far: ${out} stderr: ${err}`,
  );
  return { child, output: () => out, exited };
}

/** The developer's own MERIDIAN_* settings would change the mesh under test. */
function withoutMeridianVars(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MERIDIAN_')));
}

async function stop(dev: Dev): Promise<void> {
  dev.child.kill('SIGINT');
  assert.equal(await dev.exited, 0, 'Ctrl-C exits 0');
}

/** The banner's commands, in order: the lines indented by two spaces that start with a command. */
function bannerCommands(out: string): string[] {
  const banner = out.slice(out.indexOf(BANNER));
  return banner
    .split('\n')
    .filter((line) => /^ {2}(printf|kcat|meridian|node) /.test(line))
    .map((line) => line.trim());
}

function sh(command: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Every record of `topic` in the region on `port`, as "key:value" lines, sorted. */
async function records(port: number, topic: string): Promise<string[]> {
  const r = await kcat(['-C', '-b', `127.0.0.1:${port}`, '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%k:%s\\n']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.toString().split('\n').filter(Boolean).sort();
}

test('npm start (meridian dev): banner, kcat produce in us-east and consume in eu-west, Ctrl-C, and a restart on the same data', async () => {
  for (const port of [19092, 29092, 19644, 29644]) {
    // Fails rather than skips: a skipped test would let a green run hide that it never ran.
    assert.equal(await listening(port), false, `port ${port} is in use (a dev mesh already running?); stop it and run again`);
  }
  const work = path.join(t.dir, 'clone-cwd');
  fs.mkdirSync(work);

  const first = await startDev(work);
  try {
    const out = first.output();
    // Logs on a pipe are JSON lines; the banner follows the line saying the mesh runs.
    const beforeBanner = out.slice(0, out.indexOf(BANNER)).split('\n').filter((l) => l.trim() !== '');
    assert.ok(beforeBanner.length > 0);
    for (const line of beforeBanner) assert.doesNotThrow(() => JSON.parse(line), `not a JSON log line: ${line}`);
    assert.match(out, /us-east +Kafka bootstrap 127\.0\.0\.1:19092/);
    assert.match(out, /eu-west +Kafka bootstrap 127\.0\.0\.1:29092/);
    // Each region's admin API and dashboard, as the banner gives them, answer.
    for (const [region, port] of [['us-east', 19644], ['eu-west', 29644]] as const) {
      assert.match(out, new RegExp(`${region} .*admin and dashboard http://127\\.0\\.0\\.1:${port}/`));
      const health = await fetch(`http://127.0.0.1:${port}/v1/health`);
      assert.equal(health.status, 200, `${region} admin /v1/health`);
    }
    const commands = bannerCommands(out);
    assert.equal(commands.length, 3, `three commands in the banner: ${commands.join(' | ')}`);
    const [produce, consume, status] = commands as [string, string, string];
    assert.match(produce, /kcat -b 127\.0\.0\.1:19092 .*-P/);
    assert.match(consume, /kcat -b 127\.0\.0\.1:29092 .*-C/);
    assert.match(status, /meridian(\.js)? status$/);

    assert.ok(await listening(19092), 'us-east listens on 19092');
    assert.ok(await listening(29092), 'eu-west listens on 29092');
    for (const region of ['us-east', 'eu-west']) {
      assert.ok(fs.existsSync(path.join(work, 'meridian-data', region, 'meridian.lock')), `${region} keeps its data in ./meridian-data/${region}`);
      assert.ok(fs.existsSync(path.join(work, 'meridian-data', 'tiered', region)), `${region} tiers to ./meridian-data/tiered/${region}`);
    }

    // The banner's produce command, pasted as is, writes to us-east...
    const produced = await sh(produce);
    assert.equal(produced.code, 0, produced.stderr);
    // ...and its consume command, pasted as is, reads the same records in eu-west.
    const expected = ['k1:hello', 'k2:world'];
    const inEuWest = await waitFor(
      'the produced records in eu-west',
      async () => {
        const r = await sh(consume);
        assert.equal(r.code, 0, r.stderr);
        const lines = r.stdout.split('\n').filter(Boolean).sort();
        return lines.length >= expected.length ? lines : undefined;
      },
      30_000,
      200,
    );
    assert.deepEqual(inEuWest, expected, 'eu-west holds each record once');

    // And the other way: produced in eu-west, read in us-east.
    const back = await kcat(['-P', '-b', '127.0.0.1:29092', '-t', 'demo', '-K:'], 'k3:from eu-west\n');
    assert.equal(back.code, 0, back.stderr);
    const all = ['k1:hello', 'k2:world', 'k3:from eu-west'];
    for (const port of [19092, 29092]) {
      const seen = await waitFor(`three records in the region on ${port}`, async () => {
        const r = await records(port, 'demo');
        return r.length >= all.length ? r : undefined;
      }, 30_000, 200);
      assert.deepEqual(seen, all, `region on ${port} holds every record once`);
    }
  } finally {
    if (first.child.exitCode === null) await stop(first);
  }
  // Everything stopped: ports closed, locks released.
  for (const port of [19092, 29092, 19644, 29644]) assert.equal(await listening(port), false, `port ${port} closed after Ctrl-C`);
  assert.equal(fs.existsSync(path.join(work, 'meridian-data', 'us-east', 'meridian.lock')), false);
  assert.equal(fs.existsSync(path.join(work, 'meridian-data', 'eu-west', 'meridian.lock')), false);

  // A second start in the same directory resumes the same data: every record still there,
  // once, in both regions (replication does not send them again).
  const second = await startDev(work);
  try {
    for (const port of [19092, 29092]) {
      assert.deepEqual(await records(port, 'demo'), ['k1:hello', 'k2:world', 'k3:from eu-west'], `region on ${port} after the restart`);
    }
    const more = await kcat(['-P', '-b', '127.0.0.1:19092', '-t', 'demo', '-K:'], 'k4:after restart\n');
    assert.equal(more.code, 0, more.stderr);
    const seen = await waitFor('the new record in eu-west', async () => {
      const r = await records(29092, 'demo');
      return r.length >= 4 ? r : undefined;
    }, 30_000, 200);
    assert.deepEqual(seen, ['k1:hello', 'k2:world', 'k3:from eu-west', 'k4:after restart']);
  } finally {
    if (second.child.exitCode === null) await stop(second);
  }
  for (const port of [19092, 29092, 19644, 29644]) assert.equal(await listening(port), false, `port ${port} closed after the second Ctrl-C`);
});
