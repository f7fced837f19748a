/**
 * One process owns a data directory. What an operator sees: the lock file names the owner's
 * pid; a second process is refused with an error naming the directory and that pid, and
 * leaves the owner's data and lock alone; once the owner is gone (released, or killed), the
 * next process takes the lock and the file names it instead.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DataDirLock } from '../../src/storage/data-dir-lock.js';
import { TopicManager } from '../../src/storage/topic-manager.js';
import { defaultLogOptions } from '../../src/storage/partition-log.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const HOLDER = fileURLToPath(new URL('../fixtures/hold-lock.ts', import.meta.url));
const t = tmpDir();
after(t.cleanup);

interface LockFile {
  pid: number;
  startTime: string | null;
  acquiredAt?: string;
}

const lockFileOf = (dir: string) => path.join(dir, 'meridian.lock');
const readLock = (dir: string) => JSON.parse(fs.readFileSync(lockFileOf(dir), 'utf8')) as LockFile;

/** The kernel's start time of `pid` (field 22 of /proc/PID/stat), which the lock records. */
function startTimeOf(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

/** Runs the hold-lock fixture on `dir`: resolves with the child once it holds the lock. */
function holdLock(dir: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', HOLDER, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`lock holder exited ${code}: ${stderr}`)));
  });
}

/** Runs the hold-lock fixture on `dir` expecting a refusal: resolves with its exit code and stderr. */
function refusedLock(dir: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', HOLDER, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout!.once('data', () => {
      child.kill('SIGKILL');
      reject(new Error('a second process took a held lock'));
    });
    child.once('close', (code) => resolve({ code, stderr }));
  });
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

test('a second process is refused, naming the directory and the owner pid the lock file names; a killed owner\'s lock is taken over', async () => {
  const dir = path.join(t.dir, 'shared');
  const tm = await TopicManager.open(dir, defaultLogOptions);
  await tm.createTopic('orders', 2);
  await tm.close();
  const topicsBefore = fs.readFileSync(path.join(dir, 'topics.json'));
  const child = await holdLock(dir);
  try {
    const owner = readLock(dir);
    assert.equal(owner.pid, child.pid, 'the lock file names the owner');
    assert.equal(owner.startTime, startTimeOf(child.pid!), 'and its start time, so a reused pid is not taken for it');
    const lockBefore = fs.readFileSync(lockFileOf(dir));

    // Another process: refused, exit status and message as a second broker would print them.
    const second = await refusedLock(dir);
    assert.equal(second.code, 2);
    assert.match(second.stderr, /^refused DATA_DIR_LOCKED /);
    assert.ok(second.stderr.includes(path.resolve(dir)), `names the directory: ${second.stderr}`);
    assert.ok(second.stderr.includes(`pid ${child.pid}`), `names the owner pid: ${second.stderr}`);
    // This process too.
    assert.throws(
      () => DataDirLock.acquire(dir),
      (err: Error & { code?: string }) => err.code === 'DATA_DIR_LOCKED' && err.message.includes(`pid ${child.pid}`) && err.message.includes(path.resolve(dir)),
    );
    // The refused attempts changed nothing: the lock and the data are the owner's.
    assert.deepEqual(fs.readFileSync(lockFileOf(dir)), lockBefore);
    assert.deepEqual(fs.readFileSync(path.join(dir, 'topics.json')), topicsBefore);
  } finally {
    await kill(child);
  }
  // The holder died without releasing: its lock is stale and is taken over.
  assert.equal(readLock(dir).pid, child.pid, 'a kill -9 leaves the lock file behind');
  const lock = DataDirLock.acquire(dir);
  assert.equal(lock.file, lockFileOf(dir));
  assert.equal(readLock(dir).pid, process.pid, 'the new owner is named');
  lock.release();
  assert.equal(fs.existsSync(lock.file), false, 'release removes the lock file');
  // After a release, another process takes it at once.
  const next = await holdLock(dir);
  try {
    assert.equal(readLock(dir).pid, next.pid);
  } finally {
    await kill(next);
  }
});

test('the same process cannot take a held lock twice; a release frees it, and releasing again leaves the next owner\'s lock alone', () => {
  const dir = path.join(t.dir, 'self');
  const lock = DataDirLock.acquire(dir);
  assert.equal(readLock(dir).pid, process.pid);
  assert.throws(() => DataDirLock.acquire(dir), (err: Error & { code?: string }) => err.code === 'DATA_DIR_LOCKED' && err.message.includes(`pid ${process.pid}`) && err.message.includes(path.resolve(dir)));
  lock.release();
  assert.equal(fs.existsSync(lockFileOf(dir)), false);
  const again = DataDirLock.acquire(dir);
  assert.equal(readLock(dir).pid, process.pid);
  lock.release(); // the old handle: already released, must not remove the new owner's lock
  assert.equal(fs.existsSync(lockFileOf(dir)), true, 'a second release of an old handle leaves the current lock in place');
  assert.throws(() => DataDirLock.acquire(dir), { code: 'DATA_DIR_LOCKED' });
  again.release();
  assert.equal(fs.existsSync(lockFileOf(dir)), false);
});

test('a lock file naming a dead pid or holding garbage is stale: it is taken over and then names this process', () => {
  const dir = path.join(t.dir, 'stale');
  fs.mkdirSync(dir, { recursive: true });
  for (const stale of [JSON.stringify({ pid: 2 ** 22 + 12345, startTime: '1' }), '{"pid":', JSON.stringify({ pid: process.pid, startTime: 'not-my-start-time' })]) {
    fs.writeFileSync(lockFileOf(dir), stale);
    const lock = DataDirLock.acquire(dir);
    const owner = readLock(dir);
    assert.deepEqual([owner.pid, owner.startTime], [process.pid, startTimeOf(process.pid)], `taken over from ${stale}`);
    lock.release();
    assert.equal(fs.existsSync(lockFileOf(dir)), false);
  }
});
