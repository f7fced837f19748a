/**
 * The directory store's kept file handles (issue 15): ranged GETs of one object reuse one
 * open descriptor, the descriptors stay bounded and close once idle, and a write or delete
 * through the store is never hidden by a kept handle. Descriptors are counted the way an
 * operator would, in /proc/self/fd, not only through the store's own counters.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { FsBlobStore } from '../../../src/tiered/blobstore/fs-blob-store.js';
import { BlobStoreError } from '../../../src/tiered/blobstore/blob-store.js';
import { tmpDir } from '../../helpers/tmp-dir.js';
import { waitFor } from '../../helpers/wait.js';

const signal = new AbortController().signal;
const t = tmpDir('meridian-fs-handles-');
after(() => t.cleanup());

/** Descriptors of this process open on files under `dir`. */
function fdsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir + path.sep)) out.push(target);
    } catch {
      // closed between readdir and readlink (the readdir's own descriptor)
    }
  }
  return out;
}

/**
 * Keeps three of libuv's four pool threads hashing, as a broker's other disk work keeps them
 * busy, so a descriptor's close queues behind them; resolves, once stopped, when they are done.
 */
function busyThreadPool(): () => Promise<void> {
  let busy = true;
  const hashing = async (): Promise<void> => {
    while (busy) await new Promise<void>((resolve) => crypto.pbkdf2('k', 's', 2000, 32, 'sha256', () => resolve()));
  };
  const threads = [hashing(), hashing(), hashing()];
  return async () => {
    busy = false;
    await Promise.all(threads);
  };
}

function object(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

test('ranged GETs of one object share one descriptor, bytes exact, and it closes once idle', async () => {
  const dir = path.join(t.dir, 'reuse');
  const store = new FsBlobStore({ dir, handleIdleMs: 50, handleMaxAgeMs: 60_000 });
  try {
    const body = object(256 * 1024, 1);
    await store.put('seg/0-a.log', body, { signal });
    const B = 4096;
    for (let n = 0; n < body.length / B; n++) {
      const got = await store.get('seg/0-a.log', { signal, range: { start: n * B, end: n * B + B - 1 } });
      assert.deepEqual(got, body.subarray(n * B, n * B + B), `block ${n}`);
      assert.equal(fdsUnder(dir).length, 1, `one descriptor while reading block ${n}`);
    }
    const s = store.stats();
    assert.equal(s.handleOpens, 1);
    assert.equal(s.handleReuses, body.length / B - 1);
    // Into a caller's buffer: the bytes land there and a view of it comes back.
    const into = Buffer.alloc(B);
    const got = await store.get('seg/0-a.log', { signal, range: { start: 100, end: 100 + B - 1 }, into });
    assert.equal(got.buffer, into.buffer);
    assert.deepEqual(got, body.subarray(100, 100 + B));
    // Past the end: still HTTP's 416, from the size the open found.
    await assert.rejects(store.get('seg/0-a.log', { signal, range: { start: body.length, end: body.length + 10 } }), (e: unknown) => e instanceof BlobStoreError && e.status === 416);
    await waitFor('the idle descriptor to close', () => store.stats().openHandles === 0 && fdsUnder(dir).length === 0, 10_000, 20, () => `open: ${fdsUnder(dir).join(', ')}`);
  } finally {
    await store.close();
  }
});

test('kept descriptors are bounded: many objects read in turn hold at most maxOpenHandles', async () => {
  const dir = path.join(t.dir, 'bounded');
  const store = new FsBlobStore({ dir, maxOpenHandles: 2, handleIdleMs: 60_000 });
  // A descriptor's close then finishes after the GET that evicted it, unless the store waits for it.
  const stopBusy = busyThreadPool();
  try {
    const bodies = Array.from({ length: 6 }, (_, i) => object(8192 + i, i));
    for (const [i, b] of bodies.entries()) await store.put(`seg/${i}.log`, b, { signal });
    for (let round = 0; round < 30; round++) {
      for (const [i, b] of bodies.entries()) {
        // Concurrent GETs of the same object and of others: still within the bound after.
        const got = await Promise.all([0, 4096].map((start) => store.get(`seg/${i}.log`, { signal, range: { start, end: start + 4095 } })));
        assert.deepEqual(Buffer.concat(got), b.subarray(0, 8192));
        assert.ok(fdsUnder(dir).length <= 2, `round ${round} object ${i}: ${fdsUnder(dir).length} descriptors`);
      }
    }
    assert.ok(store.stats().openHandles <= 2);
  } finally {
    await stopBusy();
    await store.close();
  }
  assert.equal(store.stats().openHandles, 0, 'close() closes every kept descriptor');
  assert.deepEqual(fdsUnder(dir), []);
});

test('close() while ranged GETs open and evict: nothing opens after it resolves, no descriptor is left', async () => {
  for (let round = 0; round < 20; round++) {
    const dir = path.join(t.dir, `closing-${round}`);
    const store = new FsBlobStore({ dir, maxOpenHandles: 2, handleIdleMs: 60_000 });
    const stopBusy = busyThreadPool();
    try {
      for (const k of ['a', 'b', 'c', 'd']) await store.put(`${k}.log`, object(8192, k.charCodeAt(0)), { signal });
      for (const k of ['a', 'b']) await store.get(`${k}.log`, { signal, range: { start: 0, end: 99 } });
      // Two more objects at once: each open evicts a kept handle and waits for its close.
      const gets = ['c', 'd'].map((k) => store.get(`${k}.log`, { signal, range: { start: 0, end: 4095 } }));
      while (store.stats().handleOpens < 3 + (round % 2)) await new Promise((r) => setImmediate(r));
      await store.close();
      const opensAtClose = store.stats().handleOpens;
      for (const r of await Promise.allSettled(gets)) {
        // Served, or refused because the store closed: never anything else.
        if (r.status === 'rejected') assert.match(String(r.reason), /closed/, `round ${round}`);
        else assert.equal(r.value.length, 4096);
      }
      assert.equal(store.stats().handleOpens, opensAtClose, `round ${round}: a descriptor was opened after close() resolved`);
      assert.equal(store.stats().openHandles, 0);
      await waitFor('every descriptor closed', () => fdsUnder(dir).length === 0, 5_000, 5, () => fdsUnder(dir).join(', '));
    } finally {
      await stopBusy();
    }
  }
});

test('a put or delete through the store is seen by the next ranged GET despite a kept descriptor', async () => {
  const dir = path.join(t.dir, 'writes');
  const store = new FsBlobStore({ dir, handleIdleMs: 60_000, handleMaxAgeMs: 60_000 });
  try {
    const first = object(8192, 1);
    const second = object(4096, 2);
    await store.put('k.log', first, { signal });
    assert.deepEqual(await store.get('k.log', { signal, range: { start: 0, end: 4095 } }), first.subarray(0, 4096));
    await store.put('k.log', second, { signal });
    assert.deepEqual(await store.get('k.log', { signal, range: { start: 0, end: 8191 } }), second, 'the replaced object, clamped to its size');
    await store.delete('k.log', { signal });
    await assert.rejects(store.get('k.log', { signal, range: { start: 0, end: 10 } }), (e: unknown) => e instanceof BlobStoreError && e.kind === 'not-found');
    assert.deepEqual(fdsUnder(dir), [], 'no descriptor left on the deleted object');
  } finally {
    await store.close();
  }
});

test('a delete or put while a ranged GET is still opening the file: later GETs never get that descriptor', async () => {
  const dir = path.join(t.dir, 'racing');
  const store = new FsBlobStore({ dir, handleIdleMs: 60_000, handleMaxAgeMs: 60_000 });
  try {
    const first = object(8192, 3);
    const second = object(8192, 4);
    await store.put('d.log', first, { signal });
    // The GET's open is under way (get() reaches fsp.open without waiting) when the delete
    // begins: it may still read the old object, being concurrent with the delete, but the
    // descriptor must not be kept for GETs that come after the delete.
    const racing = store.get('d.log', { signal, range: { start: 0, end: 1023 } }).then(
      (b) => b,
      (e: unknown) => e,
    );
    await store.delete('d.log', { signal });
    const r = await racing;
    assert.ok(r instanceof BlobStoreError ? r.kind === 'not-found' : Buffer.compare(r as Buffer, first.subarray(0, 1024)) === 0, 'the racing GET sees the old object or none');
    await assert.rejects(store.get('d.log', { signal, range: { start: 0, end: 10 } }), (e: unknown) => e instanceof BlobStoreError && e.kind === 'not-found', 'a GET after the delete: not found');
    assert.deepEqual(fdsUnder(dir), [], 'no descriptor left on the deleted object');

    await store.put('p.log', first, { signal });
    const racingPut = store.get('p.log', { signal, range: { start: 0, end: 1023 } });
    await store.put('p.log', second, { signal });
    await racingPut;
    assert.deepEqual(await store.get('p.log', { signal, range: { start: 0, end: 1023 } }), second.subarray(0, 1024), 'a GET after the put: the new object');
  } finally {
    await store.close();
  }
});

test('a descriptor is not reused past handleMaxAgeMs: a replacement by another process is seen', async () => {
  const dir = path.join(t.dir, 'age');
  const store = new FsBlobStore({ dir, handleIdleMs: 60_000, handleMaxAgeMs: 30 });
  try {
    await store.put('k.log', object(4096, 1), { signal });
    await store.get('k.log', { signal, range: { start: 0, end: 4095 } });
    // Another writer (a second broker sharing the directory) replaces the file under us.
    const other = object(4096, 9);
    const file = path.join(dir, 'objects', 'k.log');
    fs.writeFileSync(`${file}.new`, other);
    fs.renameSync(`${file}.new`, file);
    await waitFor('the replacement to be read', async () => (await store.get('k.log', { signal, range: { start: 0, end: 4095 } })).equals(other), 10_000, 10);
    assert.ok(store.stats().handleOpens >= 2);
  } finally {
    await store.close();
  }
});
