/**
 * The pieces under the conformance suite: the error type, key rules, classification
 * helpers, credential scrubbing, the factory and its names, and what only the directory
 * store promises (atomic writes, no temp files left, crash leftovers swept).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { MeridianError } from '../../../src/errors.js';
import { BlobStoreError, validateKey } from '../../../src/tiered/blobstore/blob-store.js';
import { isTransientTransportError, kindForStatus, redact, safeCause } from '../../../src/tiered/blobstore/classify.js';
import { AzureBlobStore } from '../../../src/tiered/blobstore/azure-blob-store.js';
import { GcsBlobStore } from '../../../src/tiered/blobstore/gcs-blob-store.js';
import { FsBlobStore, createBlobStore, type BlobStoreConfig } from '../../../src/tiered/blobstore/index.js';
import { S3BlobStore } from '../../../src/tiered/blobstore/s3-blob-store.js';
import { tmpDir } from '../../helpers/tmp-dir.js';

const live = () => new AbortController().signal;
const ctx = { store: 'file:///x', op: 'get' as const, key: 'k' };

describe('BlobStoreError', () => {
  test('is a MeridianError whose retriable flag and default code follow its kind', () => {
    for (const [kind, code, retriable] of [
      ['retriable', 'BLOB_RETRIABLE', true],
      ['fatal', 'BLOB_FATAL', false],
      ['not-found', 'BLOB_NOT_FOUND', false],
    ] as const) {
      const err = new BlobStoreError(kind, ctx, 'why');
      assert.ok(err instanceof MeridianError);
      assert.equal(err.code, code);
      assert.equal(err.retriable, retriable);
      assert.equal(err.message, "get 'k' on file:///x: why");
    }
  });
});

describe('key rules', () => {
  test('accept layout keys, refuse empty, dot and dot-dot segments, NUL and backslash', () => {
    for (const ok of ['a', 'topic/0/00000000000000000000.log', 'a.b/c-d_e', '.hidden/x']) validateKey(ctx, ok);
    for (const bad of ['', '/a', 'a/', 'a//b', '.', '..', 'a/../b', 'a/./b', 'a\0b', 'a\\b', 'x'.repeat(1025)]) {
      assert.throws(() => validateKey(ctx, bad), (e: unknown) => e instanceof BlobStoreError && e.code === 'BLOB_BAD_REQUEST', JSON.stringify(bad));
    }
  });
});

describe('classification helpers', () => {
  test('HTTP status → kind', () => {
    const table: Array<[number, string]> = [
      [400, 'fatal'], [401, 'fatal'], [403, 'fatal'], [404, 'not-found'], [408, 'retriable'], [409, 'fatal'],
      [412, 'fatal'], [416, 'fatal'], [429, 'retriable'], [500, 'retriable'], [501, 'fatal'], [502, 'retriable'],
      [503, 'retriable'], [504, 'retriable'],
    ];
    for (const [status, kind] of table) assert.equal(kindForStatus(status), kind, String(status));
  });

  test('transport failures are found through cause chains and AggregateErrors', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
    assert.ok(isTransientTransportError(refused));
    assert.ok(isTransientTransportError(new Error('wrapper', { cause: refused })));
    assert.ok(isTransientTransportError(new AggregateError([new Error('x'), refused])));
    assert.ok(!isTransientTransportError(new Error('Access Denied')));
  });

  test('redact removes known secrets, their URL-encoded forms and secret-looking parameters', () => {
    const secret = 'abc/def+ghi==';
    const text = `key ${secret} url ?x=${encodeURIComponent(secret)}&sig=SIGVALUE&se=2030 AccountKey=KEYVALUE; X-Amz-Signature=deadbeef`;
    const out = redact(text, [secret]);
    for (const leaked of [secret, encodeURIComponent(secret), 'SIGVALUE', 'KEYVALUE', 'deadbeef']) assert.ok(!out.includes(leaked), out);
    assert.match(out, /se=2030/);
  });

  test('safeCause keeps name, code, status and nested causes, scrubbed', () => {
    const inner = Object.assign(new Error('inner with s3cr3t-value'), { code: 'ECONNRESET' });
    const outer = Object.assign(new Error('outer s3cr3t-value', { cause: inner }), { name: 'RestError', statusCode: 503, request: { url: '?sig=s3cr3t-value' } });
    const copy = safeCause(outer, ['s3cr3t-value']);
    assert.equal(copy.name, 'RestError');
    assert.equal((copy as unknown as { statusCode: number }).statusCode, 503);
    assert.equal(((copy.cause as Error & { code: string }).code), 'ECONNRESET');
    assert.ok(!JSON.stringify({ ...copy, m: copy.message, s: copy.stack, c: (copy.cause as Error).message }).includes('s3cr3t-value'));
    assert.equal((copy as unknown as { request?: unknown }).request, undefined, 'request objects are not copied');
  });
});

describe('createBlobStore', () => {
  const azureKey = Buffer.alloc(64, 7).toString('base64');
  const sas = 'sv=2022-11-02&ss=b&srt=co&sp=rwdl&se=2030-01-01T00:00:00Z&sig=SAS%2FSIGNATURE%3D';
  const cases: Array<[BlobStoreConfig, Function, string, string[]]> = [
    [{ type: 'fs', dir: '/tmp/meridian-never-created-by-name-test' }, FsBlobStore, 'file:///tmp/meridian-never-created-by-name-test', []],
    [
      { type: 's3', bucket: 'bkt', prefix: '/pre/', endpoint: 'http://user:pw-secret@minio.local:9000/', credentials: { accessKeyId: 'AK', secretAccessKey: 'S3-SECRET' } },
      S3BlobStore,
      's3://bkt/pre/ at http://minio.local:9000',
      ['S3-SECRET', 'pw-secret'],
    ],
    [{ type: 's3', bucket: 'bkt', region: 'eu-west-1' }, S3BlobStore, 's3://bkt/', []],
    [{ type: 'gcs', bucket: 'gb', prefix: 'a/b' }, GcsBlobStore, 'gs://gb/a/b/', []],
    [
      { type: 'azure', container: 'c', prefix: 'p', connectionString: `DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=${azureKey};EndpointSuffix=core.windows.net` },
      AzureBlobStore,
      'azure://acct/c/p/',
      [azureKey],
    ],
    [{ type: 'azure', container: 'c', account: 'acct', sasToken: `?${sas}` }, AzureBlobStore, 'azure://acct/c/', ['SAS%2FSIGNATURE%3D', 'sig=']],
  ];
  for (const [config, cls, name, secrets] of cases) {
    test(`${config.type} → ${name}`, async () => {
      const store = await createBlobStore(config);
      try {
        assert.ok(store instanceof cls);
        assert.equal(store.name, name);
        for (const secret of secrets) assert.ok(!store.name.includes(secret));
      } finally {
        await store.close();
        if (config.type === 'fs') fs.rmSync(config.dir, { recursive: true, force: true });
      }
    });
  }

  test('bad options are refused with a message naming the option', async () => {
    await assert.rejects(createBlobStore({ type: 's3', bucket: 'b', partSize: 1024 * 1024 }), /partSize/);
    await assert.rejects(createBlobStore({ type: 'gcs', bucket: 'b', partSize: 1000 }), /partSize/);
    await assert.rejects(createBlobStore({ type: 'azure', container: 'c', account: 'a' }), /connectionString|accountKey/);
    await assert.rejects(createBlobStore({ type: 'nope' } as unknown as BlobStoreConfig), /unknown blob store type/);
  });
});

describe('directory store specifics', () => {
  test('writes leave no temp files, also when a stream body fails or the call is aborted', async () => {
    const { dir, cleanup } = tmpDir('meridian-fs-unit-');
    const store = new FsBlobStore({ dir });
    try {
      await store.put('a/b', Buffer.from('x'), { signal: live() });
      const broken = new Readable({ read() { this.destroy(new Error('producer died')); } });
      await assert.rejects(store.put('a/c', broken, { signal: live() }), BlobStoreError);
      await assert.rejects(store.put('a/d', Buffer.from('x'), { signal: AbortSignal.abort() }), BlobStoreError);
      await assert.rejects(store.put('a/e', Buffer.from('xy'), { signal: live(), contentLength: 3 }), /contentLength/);
      assert.deepEqual(fs.readdirSync(path.join(dir, 'tmp')), []);
      assert.deepEqual(fs.readdirSync(path.join(dir, 'objects', 'a')), ['b']);
    } finally {
      cleanup();
    }
  });

  test('a key used as a directory cannot also be an object, until the directory empties', async () => {
    const { dir, cleanup } = tmpDir('meridian-fs-unit-');
    const store = new FsBlobStore({ dir });
    try {
      await store.put('seg/0/data', Buffer.from('x'), { signal: live() });
      const err = await store.put('seg/0', Buffer.from('y'), { signal: live() }).catch((e: unknown) => e);
      assert.ok(err instanceof BlobStoreError && err.code === 'BLOB_BAD_REQUEST', String(err));
      await store.delete('seg/0/data', { signal: live() });
      assert.ok(!fs.existsSync(path.join(dir, 'objects', 'seg')), 'empty parent directories are pruned');
      await store.put('seg/0', Buffer.from('y'), { signal: live() });
      assert.equal((await store.get('seg/0', { signal: live() })).toString(), 'y');
    } finally {
      cleanup();
    }
  });

  test('temp files a crash left behind are swept at start-up; a live writer’s are not', () => {
    const { dir, cleanup } = tmpDir('meridian-fs-unit-');
    try {
      fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
      const stale = path.join(dir, 'tmp', 'stale');
      const fresh = path.join(dir, 'tmp', 'fresh');
      fs.writeFileSync(stale, 'x');
      fs.writeFileSync(fresh, 'x');
      const old = new Date(Date.now() - 2 * 3600_000);
      fs.utimesSync(stale, old, old);
      new FsBlobStore({ dir });
      assert.deepEqual(fs.readdirSync(path.join(dir, 'tmp')), ['fresh']);
    } finally {
      cleanup();
    }
  });
});
