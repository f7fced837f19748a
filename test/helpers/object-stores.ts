/**
 * Object-store servers for tests, each started on 127.0.0.1 with a free port and a temp
 * directory, each returning a ready BlobStore plus what the conformance suite needs to
 * probe it (stop the server under it, a store with wrong credentials, the secrets that
 * must never leak). Every starter's `stop()` is idempotent and releases everything.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import readline from 'node:readline';
import { BlobServiceClient } from '@azure/storage-blob';
import { AzureBlobStore } from '../../src/tiered/blobstore/azure-blob-store.js';
import type { BlobStore } from '../../src/tiered/blobstore/blob-store.js';
import { FsBlobStore } from '../../src/tiered/blobstore/fs-blob-store.js';
import { GcsBlobStore } from '../../src/tiered/blobstore/gcs-blob-store.js';
import { S3BlobStore } from '../../src/tiered/blobstore/s3-blob-store.js';
import { createGcsTestServer } from './gcs-test-server.js';
import { registerSecret } from './secrets.js';
import { tmpDir } from './tmp-dir.js';

export interface StoreFixture {
  store: BlobStore;
  /** Closes the store, stops the server, removes temp files. Idempotent. */
  stop(): Promise<void>;
  /** Stops only the server, leaving `store` open: how does it fail when its server is down? */
  stopServer?: () => Promise<void>;
  /** A store on the same server with wrong credentials. */
  badCredentials?: () => BlobStore;
  /** Every credential the fixture handed out (good and bad): never in a name or an error. */
  secrets: string[];
  /** `true` when create-only puts are enforced; otherwise the reason the test is skipped. */
  ifNoneMatch: true | string;
  /** The store's multipart part size, so tests can read across part boundaries. */
  partSize: number;
  /** How many parts (blocks, chunks) the server stored `key` in, where it can tell. */
  partCount?: (key: string) => Promise<number>;
}

export const PART_SIZE = 5 * 1024 * 1024;
const BUCKET = 'meridian-test';
const PREFIX = 'conformance';
const require = createRequire(import.meta.url);

/** The embedded default: a FsBlobStore in a fresh temp directory. */
export async function fsStore(): Promise<StoreFixture> {
  const { dir, cleanup } = tmpDir('meridian-fs-store-');
  const store = new FsBlobStore({ dir });
  return {
    store,
    stop: once(async () => {
      await store.close();
      cleanup();
    }),
    secrets: [],
    ifNoneMatch: true,
    partSize: PART_SIZE,
  };
}

/**
 * s3rver 3.7.1 in a child process rather than in-process: its ListObjectsV2 continuation
 * token uses DES, which Node 20's OpenSSL 3 offers only with `--openssl-legacy-provider`,
 * a flag that can only be given at process start (NODE_OPTIONS); without it every listing
 * page cut by MaxKeys answers 500. A child also lets a test stop the server
 * for real (port refused) without touching the test process. The child script adds one
 * Koa middleware in front of s3rver's own that reports each object write, because nothing
 * else shows that a large put went up in parts: s3rver's multipart ETag is a plain MD5 and
 * its access log truncates paths.
 */
const S3RVER_CHILD = `
const [, lib, dir, bucket] = process.argv;
const S3rver = require(lib);
const srv = new S3rver({ address: '127.0.0.1', port: 0, directory: dir, silent: true,
  configureBuckets: [{ name: bucket, configs: [] }] });
srv.middleware.unshift(async (ctx, next) => {
  await next();
  if (ctx.status >= 300) return;
  if (ctx.method === 'POST' && ctx.query.uploads !== undefined) console.log('WRITE ' + JSON.stringify([ctx.path, -1]));
  if (ctx.method === 'PUT') console.log('WRITE ' + JSON.stringify([ctx.path, Number(ctx.query.partNumber || 0)]));
});
srv.run().then(({ port }) => console.log('S3rver listening on 127.0.0.1:' + port));
process.on('SIGTERM', () => srv.close().finally(() => process.exit(0)));
`;

export async function startS3rver(): Promise<StoreFixture> {
  const { dir, cleanup } = tmpDir('meridian-s3rver-');
  const child = spawn(process.execPath, ['-e', S3RVER_CHILD, require.resolve('s3rver'), dir, BUCKET], {
    env: { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Path → part numbers of its latest write (-1 starts a multipart upload, 0 is a plain put).
  const parts = new Map<string, Set<number>>();
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    if (!line.startsWith('WRITE ')) return;
    const [urlPath, part] = JSON.parse(line.slice(6)) as [string, number];
    const key = decodeURIComponent(urlPath);
    if (part <= 0) parts.set(key, new Set(part === 0 ? [1] : []));
    else parts.get(key)?.add(part);
  });
  const port = await waitForOutput(child, /listening on 127\.0\.0\.1:(\d+)/, 's3rver').catch((err: unknown) => {
    cleanup();
    throw err;
  });
  // s3rver does not check signatures, so the secret can be anything; a distinctive one lets
  // the leak test find it. The access key must be S3RVER (anything else is 403).
  const secret = `s3-secret-${randomBytes(12).toString('hex')}`;
  const badSecret = `s3-bad-secret-${randomBytes(12).toString('hex')}`;
  registerSecret('s3rver secret access keys', secret, badSecret);
  const make = (accessKeyId: string, secretAccessKey: string) =>
    new S3BlobStore({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      forcePathStyle: true,
      bucket: BUCKET,
      prefix: PREFIX,
      credentials: { accessKeyId, secretAccessKey },
      partSize: PART_SIZE,
      maxAttempts: 2,
      connectTimeoutMs: 2_000,
    });
  const store = make('S3RVER', secret);
  const stopServer = once(() => killChild(child));
  return {
    store,
    stopServer,
    stop: once(async () => {
      await store.close();
      await stopServer();
      cleanup();
    }),
    badCredentials: () => make('NOT-S3RVER', badSecret),
    secrets: [secret, badSecret],
    ifNoneMatch: 's3rver does not enforce If-None-Match; real S3 and MinIO do',
    partSize: PART_SIZE,
    partCount: async (key) => parts.get(`/${BUCKET}/${PREFIX}/${key}`)?.size ?? 0,
  };
}

/** Azurite's well-known development account (public, documented by Microsoft). */
const AZURITE_ACCOUNT = 'devstoreaccount1';
const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/**
 * Azurite 3.35.0 (the last release that runs on Node 20), blob service only, in memory.
 * This runs the bin script behind `npx azurite-blob ...` directly, with the same flags, so
 * `stop` signals Azurite itself rather than an npx wrapper.
 */
export async function startAzurite(): Promise<StoreFixture> {
  const { dir, cleanup } = tmpDir('meridian-azurite-');
  const pkgDir = path.dirname(require.resolve('azurite/package.json'));
  const bin = path.join(pkgDir, (require('azurite/package.json') as { bin: Record<string, string> }).bin['azurite-blob']);
  const child = spawn(
    process.execPath,
    [bin, '--blobHost', '127.0.0.1', '--blobPort', '0', '--inMemoryPersistence',
      '--extentMemoryLimit', '512', '--loose', '--skipApiVersionCheck', '--silent', '--disableTelemetry'],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const port = await waitForOutput(child, /listens on http:\/\/127\.0\.0\.1:(\d+)/, 'azurite').catch((err: unknown) => {
    cleanup();
    throw err;
  });
  const endpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  const connectionString = `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${endpoint};`;
  const container = BlobServiceClient.fromConnectionString(connectionString).getContainerClient(BUCKET);
  await container.createIfNotExists().catch(async (err: unknown) => {
    await killChild(child);
    cleanup();
    throw err;
  });
  const store = new AzureBlobStore({ connectionString, container: BUCKET, prefix: PREFIX, partSize: PART_SIZE, maxAttempts: 2 });
  const badKey = randomBytes(64).toString('base64');
  registerSecret('Azurite account keys', AZURITE_KEY, badKey);
  const stopServer = once(() => killChild(child));
  return {
    store,
    stopServer,
    stop: once(async () => {
      await store.close();
      await stopServer();
      cleanup();
    }),
    badCredentials: () =>
      new AzureBlobStore({ account: AZURITE_ACCOUNT, accountKey: badKey, endpoint, container: BUCKET, prefix: PREFIX, maxAttempts: 2 }),
    secrets: [AZURITE_KEY, badKey],
    ifNoneMatch: true,
    partSize: PART_SIZE,
    partCount: async (key) => {
      const list = await container.getBlockBlobClient(`${PREFIX}/${key}`).getBlockList('committed');
      return Math.max(1, list.committedBlocks?.length ?? 0);
    },
  };
}

/** GCS against the in-memory JSON-API test double (no GCS emulator runs here; see gcs-test-server.ts). */
export async function startGcsTestServer(): Promise<StoreFixture> {
  const server = await createGcsTestServer({ forbiddenBuckets: ['forbidden-bucket'] });
  server.createBucket(BUCKET);
  // With a custom apiEndpoint the SDK sends no credentials; these only prove they never leak.
  const privateKey = `-----BEGIN PRIVATE KEY-----\n${randomBytes(48).toString('base64')}\n-----END PRIVATE KEY-----\n`;
  registerSecret('GCS service account private key', privateKey.split('\n')[1]!);
  const make = (bucket: string) =>
    new GcsBlobStore({
      apiEndpoint: server.endpoint,
      projectId: 'meridian-test',
      bucket,
      prefix: PREFIX,
      credentials: { client_email: 'tests@meridian-test.iam.gserviceaccount.com', private_key: privateKey },
      partSize: PART_SIZE,
      maxAttempts: 2,
      timeoutMs: 5_000,
    });
  const store = make(BUCKET);
  return {
    store,
    stopServer: () => server.close(),
    stop: once(async () => {
      await store.close();
      await server.close();
    }),
    // The double answers 403 for this bucket, as GCS does for a credential without access.
    badCredentials: () => make('forbidden-bucket'),
    secrets: [privateKey, privateKey.split('\n')[1]],
    ifNoneMatch: true,
    partSize: PART_SIZE,
    partCount: async (key) => server.partsOf(BUCKET, `${PREFIX}/${key}`),
  };
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= fn());
}

/** Resolves with the first capture group of the first output line matching `pattern`. */
function waitForOutput(child: ChildProcess, pattern: RegExp, what: string, timeoutMs = 15_000): Promise<number> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => fail(new Error(`${what} did not start within ${timeoutMs} ms:\n${output}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const m = pattern.exec(output);
      if (m) {
        cleanup();
        resolve(Number(m[1]));
      }
    };
    const onExit = (code: number | null) => fail(new Error(`${what} exited with ${code} before listening:\n${output}`));
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      child.stdout?.resume(); // keep draining so the child never blocks on a full pipe
      child.stderr?.resume();
    };
    const fail = (err: Error) => {
      cleanup();
      child.kill('SIGKILL');
      reject(err);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  });
}

/** SIGTERM, then SIGKILL if it lingers; resolves once the process has exited. */
async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(timer);
}

/** An s3rver fixture whose server can be stopped and started again on the same port and data. */
export interface RestartableS3rverFixture extends StoreFixture {
  stopServer(): Promise<void>;
  /** Starts the server again: same port, same directory, so every object written before is back. */
  startServer(): Promise<void>;
  /** The port the server listens on in every incarnation. */
  port: number;
  /** Another store object on the same bucket (a broker closes the store it was given). */
  openStore(): BlobStore;
}

/** Like S3RVER_CHILD, minus the write reporting, plus a fixed port (0 the first time). */
const S3RVER_RESTARTABLE_CHILD = `
const [, lib, dir, bucket, port] = process.argv;
const S3rver = require(lib);
const srv = new S3rver({ address: '127.0.0.1', port: Number(port), directory: dir, silent: true,
  configureBuckets: [{ name: bucket, configs: [] }] });
srv.run().then(({ port }) => console.log('S3rver listening on 127.0.0.1:' + port));
process.on('SIGTERM', () => srv.close().finally(() => process.exit(0)));
`;

/**
 * s3rver (in a child, for the reasons given at `startS3rver`) that a test can take away and
 * bring back: `stopServer()` kills the process, the way an outage looks to a client (open
 * connections reset, requests in flight fail, new connections are refused); `startServer()`
 * starts a new one on the same port over the same directory, so every object written before
 * is back. An object whose PUT the kill interrupted may be left torn on s3rver's disk (real
 * stores never show one); its writer was told the PUT failed. The store object stays open
 * throughout, as a broker's would.
 */
export async function startRestartableS3rver(): Promise<RestartableS3rverFixture> {
  const { dir, cleanup } = tmpDir('meridian-s3rver-');
  let child: ChildProcess | undefined;
  const launch = async (port: number): Promise<number> => {
    const c = spawn(process.execPath, ['-e', S3RVER_RESTARTABLE_CHILD, require.resolve('s3rver'), dir, BUCKET, String(port)], {
      env: { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = c;
    return waitForOutput(c, /listening on 127\.0\.0\.1:(\d+)/, 's3rver');
  };
  const port = await launch(0).catch((err: unknown) => {
    cleanup();
    throw err;
  });
  const secret = `s3-secret-${randomBytes(12).toString('hex')}`;
  registerSecret('s3rver secret access key', secret);
  const openStore = () =>
    new S3BlobStore({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      forcePathStyle: true,
      bucket: BUCKET,
      prefix: PREFIX,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: secret },
      partSize: PART_SIZE,
      maxAttempts: 2,
      connectTimeoutMs: 2_000,
    });
  const store = openStore();
  // SIGKILL, not killChild's SIGTERM: s3rver's graceful close keeps serving requests on
  // open keep-alive connections until they go idle, so a busy client would not notice.
  const stopServer = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGKILL');
    await exited;
  };
  const startServer = async () => {
    if (child && child.exitCode === null && child.signalCode === null) return;
    await launch(port);
  };
  return {
    store,
    openStore,
    port,
    stopServer,
    startServer,
    stop: once(async () => {
      await store.close();
      await stopServer();
      cleanup();
    }),
    secrets: [secret],
    ifNoneMatch: 's3rver does not enforce If-None-Match; real S3 and MinIO do',
    partSize: PART_SIZE,
  };
}
