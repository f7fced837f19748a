/** The fetch path's read buffers (storage/buffer-pool.ts): classes, reuse, small reads. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BufferPool } from '../../src/storage/buffer-pool.js';

test('a read of 64 KiB or more takes a power-of-two class buffer, which comes back for reuse', () => {
  const pool = new BufferPool();
  const a = pool.acquire(100 * 1024);
  assert.equal(a.length, 128 * 1024);
  pool.release(a);
  assert.equal(pool.pooledBytes, 128 * 1024);
  const b = pool.acquire(70 * 1024);
  assert.equal(b.buffer, a.buffer, 'the same memory again');
  assert.equal(pool.pooledBytes, 0);
  assert.equal(pool.acquire(16 * 1024).length, 64 * 1024, 'from 16 KiB up: the smallest class');
});

test('a small read (under 16 KiB: one batch of a partition a consumer follows) takes a buffer of its own size, never pooled', () => {
  const pool = new BufferPool();
  for (const size of [1, 150, 4096, 16 * 1024 - 1]) {
    const b = pool.acquire(size);
    assert.equal(b.length, size);
    b.fill(7);
    pool.release(b);
    assert.equal(pool.pooledBytes, 0, `${size} B: left to the garbage collector`);
  }
});

test('the pool keeps at most maxPooledBytes; beyond, buffers are left to the garbage collector', () => {
  const pool = new BufferPool({ maxPooledBytes: 128 * 1024 });
  const bufs = [pool.acquire(64 * 1024), pool.acquire(64 * 1024), pool.acquire(64 * 1024)];
  for (const b of bufs) pool.release(b);
  assert.equal(pool.pooledBytes, 128 * 1024);
});
