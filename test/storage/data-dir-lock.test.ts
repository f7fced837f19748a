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

function holdLock(dir: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', HOLDER, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`lock holder exited ${code}`)));
  });
}

test('a second process opening the same data directory gets the lock error, not corruption', async () => {
  const dir = path.join(t.dir, 'shared');
  const tm = await TopicManager.open(dir, defaultLogOptions);
  await tm.createTopic('orders', 2);
  await tm.close();
  const child = await holdLock(dir);
  try {
    assert.throws(
      () => DataDirLock.acquire(dir),
      (err: any) => err.code === 'DATA_DIR_LOCKED' && err.message.includes(`pid ${child.pid}`) && err.message.includes(path.resolve(dir)),
    );
    // The data the holder owns is untouched.
    assert.ok(JSON.parse(fs.readFileSync(path.join(dir, 'topics.json'), 'utf8')).topics.some((x: any) => x.name === 'orders'));
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
  // The holder died without releasing: its lock is stale and is taken over.
  const lock = DataDirLock.acquire(dir);
  assert.equal(JSON.parse(fs.readFileSync(lock.file, 'utf8')).pid, process.pid);
  lock.release();
  assert.equal(fs.existsSync(lock.file), false);
});

test('the same process cannot take a held lock twice', () => {
  const dir = path.join(t.dir, 'self');
  const lock = DataDirLock.acquire(dir);
  assert.throws(() => DataDirLock.acquire(dir), { code: 'DATA_DIR_LOCKED' });
  lock.release();
  lock.release();
  DataDirLock.acquire(dir).release();
});

test('a lock file naming a dead pid or holding garbage is stale', () => {
  const dir = path.join(t.dir, 'stale');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'meridian.lock'), JSON.stringify({ pid: 2 ** 22 + 12345, startTime: '1' }));
  DataDirLock.acquire(dir).release();
  fs.writeFileSync(path.join(dir, 'meridian.lock'), '{"pid":');
  DataDirLock.acquire(dir).release();
});
