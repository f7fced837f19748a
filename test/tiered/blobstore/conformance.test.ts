/**
 * The BlobStore contract, one suite run unchanged against every backend: the directory,
 * S3 on s3rver, Azure on Azurite, and GCS on the JSON-API test double (the only stand-in:
 * no GCS emulator runs here). A backend passes when a caller cannot tell them apart except
 * by `name`: same bytes, same listing order and paging, same error kinds.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { inspect } from 'node:util';
import { BlobStoreError, isBlobAbort, type BlobStore } from '../../../src/tiered/blobstore/index.js';
import { fsStore, startAzurite, startGcsTestServer, startS3rver, type StoreFixture } from '../../helpers/object-stores.js';

const MiB = 1024 * 1024;
const live = () => new AbortController().signal;

/** Awaits `work`, which must reject with a BlobStoreError; returns it. */
async function failure(work: Promise<unknown>): Promise<BlobStoreError> {
  try {
    await work;
  } catch (err) {
    assert.ok(err instanceof BlobStoreError, `expected a BlobStoreError, got ${inspect(err)}`);
    return err;
  }
  assert.fail('the call succeeded');
}

async function listAll(store: BlobStore, prefix: string, pageSize?: number): Promise<{ pages: number[]; keys: string[] }> {
  const pages: number[] = [];
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await store.list(prefix, { signal: live(), pageSize, continuationToken: token });
    pages.push(page.keys.length);
    keys.push(...page.keys.map((k) => k.key));
    token = page.nextToken;
  } while (token !== undefined && pages.length < 100);
  return { pages, keys };
}

/** A stream that yields `data` in uneven chunks, like a file or socket would. */
function chunked(data: Buffer): Readable {
  const sizes = [1, 4096, 65_537, 1 * MiB + 3];
  let pos = 0;
  let i = 0;
  return Readable.from(
    (function* () {
      while (pos < data.length) {
        const n = sizes[i++ % sizes.length];
        yield data.subarray(pos, pos + n);
        pos += n;
      }
    })(),
  );
}

/**
 * What a backend can be probed for here, known before it starts so that a case that cannot
 * apply is never registered (rather than registered and skipped): a directory has no server
 * to stop and no credentials; s3rver does not enforce If-None-Match (real S3 and MinIO do,
 * and the S3 backend sends it, but nothing here can show it being enforced).
 */
interface Probes {
  serverToStop: boolean;
  credentials: boolean;
  createOnlyEnforced: boolean;
}

export function conformance(name: string, factory: () => Promise<StoreFixture>, probes: Probes): void {
  describe(`BlobStore conformance: ${name}`, () => {
    let fx: StoreFixture;
    let store: BlobStore;
    const run = `run-${randomBytes(4).toString('hex')}`; // isolates this run's keys
    const large = randomBytes(12 * MiB + 12_345); // three parts of 5 MiB and a bit
    const k = (s: string) => `${run}/${s}`;

    before(async () => {
      fx = await factory();
      store = fx.store;
    });
    after(async () => fx?.stop());

    test('put then get returns identical bytes, including an empty object', async () => {
      for (const size of [0, 1, 1000, 65_537, 1 * MiB + 3]) {
        const body = randomBytes(size);
        await store.put(k(`bytes/${size}`), body, { signal: live() });
        const got = await store.get(k(`bytes/${size}`), { signal: live() });
        assert.equal(got.length, size);
        assert.ok(got.equals(body), `bytes differ for a ${size}-byte object`);
      }
    });

    test('a stream body is stored byte-identical, with or without contentLength', async () => {
      const body = randomBytes(3 * MiB + 17);
      await store.put(k('stream/sized'), chunked(body), { signal: live(), contentLength: body.length });
      await store.put(k('stream/unsized'), chunked(body), { signal: live() });
      for (const key of ['stream/sized', 'stream/unsized']) assert.ok((await store.get(k(key), { signal: live() })).equals(body));
    });

    test('put overwrites an existing object', async () => {
      await store.put(k('overwrite'), Buffer.from('first version, longer'), { signal: live() });
      await store.put(k('overwrite'), Buffer.from('second'), { signal: live() });
      assert.equal((await store.get(k('overwrite'), { signal: live() })).toString(), 'second');
      assert.equal((await store.head(k('overwrite'), { signal: live() }))?.size, 6);
    });

    test('a large object goes up in parts and reads back whole and by ranges across part boundaries', async () => {
      await store.put(k('large/buffer'), large, { signal: live() });
      await store.put(k('large/stream'), chunked(large), { signal: live() });
      const P = fx.partSize;
      for (const key of [k('large/buffer'), k('large/stream')]) {
        if (fx.partCount) assert.equal(await fx.partCount(key), Math.ceil(large.length / P), `part count of ${key}`);
        assert.ok((await store.get(key, { signal: live() })).equals(large), `whole ${key}`);
        const last = large.length - 1;
        const ranges: Array<[number, number]> = [
          [0, 0], // first byte
          [last, last], // last byte
          [1000, 1999], // middle of part 1
          [P - 100, P + 99], // across the first boundary
          [P - 1, 2 * P], // from part 1's last byte to part 3's first byte
          [2 * P + 7, last], // through the end
        ];
        for (const [start, end] of ranges) {
          const got = await store.get(key, { signal: live(), range: { start, end } });
          assert.ok(got.equals(large.subarray(start, end + 1)), `range ${start}-${end} of ${key}`);
        }
        const tail = await store.get(key, { signal: live(), range: { start: last - 9, end: last + 1000 } });
        assert.ok(tail.equals(large.subarray(last - 9)), 'an end past the object is clamped');
        // With a buffer to read into (the block cache's recycled block buffers): the same
        // bytes, whether the backend fills it or answers with its own buffer.
        for (const [start, end] of ranges) {
          const into = Buffer.alloc(end - start + 1 + 13, 0xee);
          const got = await store.get(key, { signal: live(), range: { start, end }, into });
          assert.ok(got.equals(large.subarray(start, end + 1)), `range ${start}-${end} of ${key} into a buffer`);
        }
      }
    });

    test('head gives the size, and null for a missing key', async () => {
      await store.put(k('head/x'), randomBytes(4321), { signal: live() });
      const meta = await store.head(k('head/x'), { signal: live() });
      assert.equal(meta?.size, 4321);
      assert.equal(await store.head(k('head/missing'), { signal: live() }), null);
    });

    test('get of a missing key fails with kind not-found', async () => {
      for (const range of [undefined, { start: 0, end: 9 }]) {
        const err = await failure(store.get(k('nope/missing'), { signal: live(), range }));
        assert.equal(err.kind, 'not-found');
        assert.equal(err.code, 'BLOB_NOT_FOUND');
        assert.equal(err.retriable, false);
        assert.match(err.message, /nope\/missing/);
      }
    });

    test('list pages through a prefix: every key exactly once, sorted, prefix-isolated', async () => {
      const keys = Array.from({ length: 25 }, (_, i) => `list/k-${String(i).padStart(2, '0')}`);
      await Promise.all(keys.map((key, i) => store.put(k(key), randomBytes(i), { signal: live() })));
      await store.put(k('list-other/k-00'), Buffer.from('x'), { signal: live() });
      await store.put(k('lis'), Buffer.from('x'), { signal: live() });

      const { pages, keys: listed } = await listAll(store, k('list/'), 10);
      assert.deepEqual(pages, [10, 10, 5]);
      assert.deepEqual(listed, keys.map(k));
      const first = await store.list(k('list/'), { signal: live(), pageSize: 25 });
      assert.deepEqual(first.keys, keys.map((key, i) => ({ key: k(key), size: i })));
      assert.equal(first.nextToken, undefined);

      // A prefix need not end at a '/': 'list/k-1' is k-10..k-19 and nothing else.
      const partial = await listAll(store, k('list/k-1'));
      assert.deepEqual(partial.keys, keys.slice(10, 20).map(k));
      assert.deepEqual((await listAll(store, k('nothing-here/'))).keys, []);
    });

    test('delete removes an object; deleting a missing key is not an error', async () => {
      await store.put(k('del/x'), Buffer.from('bye'), { signal: live() });
      await store.delete(k('del/x'), { signal: live() });
      assert.equal(await store.head(k('del/x'), { signal: live() }), null);
      assert.equal((await failure(store.get(k('del/x'), { signal: live() }))).kind, 'not-found');
      await store.delete(k('del/x'), { signal: live() });
      await store.delete(k('del/never-existed'), { signal: live() });
      assert.deepEqual((await store.list(k('del/'), { signal: live() })).keys, []);
    });

    if (probes.createOnlyEnforced) test('ifNoneMatch creates but never overwrites', async () => {
      assert.equal(fx.ifNoneMatch, true, 'the fixture enforces create-only puts');
      for (const [key, size] of [['small', 100], ['multipart', fx.partSize + 1000]] as const) {
        const original = randomBytes(size);
        await store.put(k(`create-only/${key}`), original, { signal: live(), ifNoneMatch: true });
        const err = await failure(store.put(k(`create-only/${key}`), randomBytes(size), { signal: live(), ifNoneMatch: true }));
        assert.equal(err.code, 'BLOB_EXISTS');
        assert.equal(err.kind, 'fatal');
        assert.ok((await store.get(k(`create-only/${key}`), { signal: live() })).equals(original), `${key} kept its bytes`);
      }
      // Racing creators (an offload retried while the first attempt still runs): one wins.
      const bodies = Array.from({ length: 8 }, () => randomBytes(1000));
      const results = await Promise.allSettled(bodies.map((b) => store.put(k('create-only/race'), b, { signal: live(), ifNoneMatch: true })));
      const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      assert.equal(winners.length, 1, 'exactly one create-only put succeeds');
      for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as BlobStoreError).code, 'BLOB_EXISTS');
      assert.ok((await store.get(k('create-only/race'), { signal: live() })).equals(bodies[winners[0]]), "the winner's bytes are stored");
    });

    test('keys with empty, "." or ".." segments are refused before any I/O', async () => {
      for (const key of ['../escape', 'a/../b', 'a//b', '/abs', 'a/./b', '']) {
        const err = await failure(store.put(key, Buffer.from('x'), { signal: live() }));
        assert.equal(err.code, 'BLOB_BAD_REQUEST', `key ${JSON.stringify(key)}`);
      }
    });

    test('an aborted signal rejects every call with an abort error', async () => {
      const signal = AbortSignal.abort();
      const calls: Array<() => Promise<unknown>> = [
        () => store.put(k('abort/x'), Buffer.from('x'), { signal }),
        () => store.get(k('large/buffer'), { signal }),
        () => store.head(k('large/buffer'), { signal }),
        () => store.list(k(''), { signal }),
        () => store.delete(k('large/buffer'), { signal }),
      ];
      for (const call of calls) assert.ok(isBlobAbort(await failure(call())));
      assert.ok(await store.head(k('large/buffer'), { signal: live() }), 'the aborted delete deleted nothing');

      // Aborting mid-upload: the body stalls after its first chunk, as a dead producer would.
      const controller = new AbortController();
      const stalled = new Readable({ read() {} });
      stalled.push(randomBytes(64 * 1024));
      const started = Date.now();
      setTimeout(() => controller.abort(), 100);
      const err = await failure(store.put(k('abort/stalled'), stalled, { signal: controller.signal }));
      assert.ok(isBlobAbort(err), `expected an abort, got ${err.code}: ${err.message}`);
      assert.ok(Date.now() - started < 5_000, 'the abort took effect promptly');
      assert.equal(await store.head(k('abort/stalled'), { signal: live() }), null, 'no partial object');
    });

    if (probes.credentials) test('bad credentials fail with kind fatal', async () => {
      assert.ok(fx.badCredentials, 'the fixture hands out a store with wrong credentials');
      const bad = fx.badCredentials();
      try {
        const calls = [() => bad.get(k('bytes/1'), { signal: live() }), () => bad.put(k('x'), Buffer.from('x'), { signal: live() })];
        for (const call of calls) {
          const err = await failure(call());
          assert.equal(err.kind, 'fatal', err.message);
          assert.equal(err.retriable, false);
        }
      } finally {
        await bad.close();
      }
    });

    test('credentials never appear in the name or in errors', async () => {
      const errors: unknown[] = [await failure(store.get(k('nope/missing'), { signal: live() }))];
      if (fx.badCredentials) {
        const bad = fx.badCredentials();
        errors.push(await failure(bad.get(k('bytes/1'), { signal: live() })), bad.name);
        await bad.close();
      }
      const text = [store.name, ...errors.map((e) => `${inspect(e, { depth: 8 })}\n${JSON.stringify(e)}`)].join('\n');
      for (const secret of fx.secrets) assert.ok(!text.includes(secret), `a credential leaked:\n${text}`);
    });

    // Last: it stops the server under the store.
    if (probes.serverToStop) test('a store whose server is down fails with kind retriable within seconds', async () => {
      assert.ok(fx.stopServer, 'the fixture can stop its server');
      await fx.stopServer();
      const calls: Array<() => Promise<unknown>> = [
        () => store.get(k('bytes/1'), { signal: live() }),
        () => store.put(k('down'), Buffer.from('x'), { signal: live() }),
        () => store.head(k('bytes/1'), { signal: live() }),
        () => store.list(k(''), { signal: live() }),
        () => store.delete(k('bytes/1'), { signal: live() }),
      ];
      for (const call of calls) {
        const started = Date.now();
        const err = await failure(call());
        assert.equal(err.kind, 'retriable', err.message);
        assert.equal(err.retriable, true);
        assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
        for (const secret of fx.secrets) assert.ok(!inspect(err, { depth: 8 }).includes(secret), 'a credential leaked');
      }
    });
  });
}

conformance('directory', fsStore, { serverToStop: false, credentials: false, createOnlyEnforced: true });
conformance('S3 on s3rver', startS3rver, { serverToStop: true, credentials: true, createOnlyEnforced: false });
conformance('Azure on Azurite', startAzurite, { serverToStop: true, credentials: true, createOnlyEnforced: true });
conformance('GCS on the JSON-API test double', startGcsTestServer, { serverToStop: true, credentials: true, createOnlyEnforced: true });
