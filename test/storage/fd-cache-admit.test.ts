/**
 * FdCache admission (log.maxOpenFiles under load): an open waits while every descriptor
 * under the limit is busy, gets room, in order, as soon as one goes idle and is closed, and
 * never waits for ever: with every descriptor held it opens after ADMIT_WAIT_MS, counted
 * as over the limit.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ADMIT_WAIT_MS, FdCache, type CachedFile } from '../../src/storage/fd-cache.js';

/** A descriptor holder whose idleness the test sets. */
class File implements CachedFile {
  state: 'closable' | 'syncable' | 'busy' = 'busy';
  evicted = false;
  idleState(): 'closable' | 'syncable' | 'busy' {
    return this.state;
  }
  evict(): void {
    this.evicted = true;
  }
  syncThenEvict(done: () => void): void {
    done();
  }
}

async function open(cache: FdCache): Promise<File> {
  await cache.admit();
  const f = new File();
  cache.opened(f);
  return f;
}

test('an open waits while every descriptor is busy, and gets the room of the first to go idle, in order', async () => {
  const cache = new FdCache(2);
  const a = await open(cache);
  await open(cache);
  const order: string[] = [];
  const third = cache.admit().then(() => order.push('third'));
  const fourth = cache.admit().then(() => order.push('fourth'));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [], 'both wait: the limit is full of busy descriptors');
  assert.equal(cache.waiting, 2);
  a.state = 'closable';
  cache.trim(); // what a segment does when its read or write ends and an open waits
  await third;
  assert.ok(a.evicted, 'the idle descriptor was closed for the waiting open');
  assert.deepEqual(order, ['third'], 'first come, first served; the fourth still waits');
  cache.opened(new File());
  assert.equal(cache.size, 2, 'never over the limit');
  await fourth; // no descriptor goes idle: it opens after ADMIT_WAIT_MS anyway
  assert.equal(cache.overLimitOpens, 1, 'the soft limit was passed once, and counted');
});

test('with every descriptor held, an open still proceeds after ADMIT_WAIT_MS (no deadlock)', async () => {
  const cache = new FdCache(1);
  await open(cache);
  const started = Date.now();
  await cache.admit();
  assert.ok(Date.now() - started >= ADMIT_WAIT_MS - 50, 'it waited for room first');
  assert.equal(cache.overLimitOpens, 1);
});
