/**
 * Azure Blob Storage (and Azurite in tests) through `@azure/storage-blob`, as block blobs.
 * Buffers up to `partSize` go in one Put Blob; larger Buffers are staged in `partSize`
 * blocks and committed; streams always go through `uploadStream` (staged blocks, at most
 * `uploadConcurrency` buffers in memory). Credentials: a connection string, or an account
 * with a shared key or a SAS token. (Entra ID / managed identity needs `@azure/identity`,
 * which is not a dependency yet.) The SDK's retry policy is bounded (`maxAttempts`, short
 * delays) and every call has an idle deadline, so a dead or silent endpoint fails in
 * seconds. Stateless besides `closed`.
 */
import type { Readable } from 'node:stream';
import {
  AnonymousCredential,
  BlobServiceClient,
  RestError,
  StorageSharedKeyCredential,
  type ContainerClient,
  type StoragePipelineOptions,
} from '@azure/storage-blob';
import {
  BlobErrorCode,
  BlobStoreError,
  abortedError,
  normalizePrefix,
  throwIfAborted,
  validateBody,
  validateKey,
  validatePageSize,
  validateRange,
  type BlobErrorContext,
  type BlobOp,
  type BlobStore,
  type GetOptions,
  type ListOptions,
  type ListPage,
  type PutOptions,
} from './blob-store.js';
import { classify, type SdkFailure } from './classify.js';
import { IdleDeadline, abortBodyOnSignal, collectStream } from './stream-util.js';

export interface AzureBlobStoreOptions {
  container: string;
  prefix?: string;
  /** Either a connection string ... */
  connectionString?: string;
  /** ... or an account with `accountKey` or `sasToken`. */
  account?: string;
  accountKey?: string;
  sasToken?: string;
  /** Blob service URL; default `https://<account>.blob.core.windows.net`. */
  endpoint?: string;
  /** Block size and the largest single-shot upload, bytes. Default 8 MiB. */
  partSize?: number;
  /** Blocks uploaded in parallel per put. Default 4. */
  uploadConcurrency?: number;
  /** Tries per request, including the first. Default 3. */
  maxAttempts?: number;
  /**
   * A call that moves no bytes for this long is aborted and fails retriable. Enforced here:
   * the SDK's `tryTimeoutInMs` is only a server-side hint the client never enforces, so a
   * server that accepts and never answers would hang a call forever. Default 30 s.
   */
  idleTimeoutMs?: number;
}

const MiB = 1024 * 1024;
const MAX_BLOCK = 4000 * MiB;

export class AzureBlobStore implements BlobStore {
  readonly name: string;
  readonly #container: ContainerClient;
  readonly #prefix: string;
  readonly #partSize: number;
  readonly #concurrency: number;
  readonly #secrets: string[];
  readonly #idleMs: number;
  #closed = false;

  constructor(options: AzureBlobStoreOptions) {
    this.#prefix = normalizePrefix(options.prefix);
    this.#partSize = options.partSize ?? 8 * MiB;
    if (!Number.isSafeInteger(this.#partSize) || this.#partSize < 1 || this.#partSize > MAX_BLOCK) {
      throw new RangeError(`azure partSize must be an integer in 1..${MAX_BLOCK}, got ${options.partSize}`);
    }
    this.#concurrency = Math.max(1, options.uploadConcurrency ?? 4);
    this.#secrets = azureSecrets(options);
    this.#idleMs = options.idleTimeoutMs ?? 30_000;
    const pipeline: StoragePipelineOptions = {
      retryOptions: { maxTries: options.maxAttempts ?? 3, retryDelayInMs: 100, maxRetryDelayInMs: 2_000 },
    };
    let service: BlobServiceClient;
    if (options.connectionString !== undefined) {
      service = BlobServiceClient.fromConnectionString(options.connectionString, pipeline);
    } else if (options.account !== undefined && (options.accountKey ?? options.sasToken) !== undefined) {
      const url = options.endpoint ?? `https://${options.account}.blob.core.windows.net`;
      service =
        options.accountKey !== undefined
          ? new BlobServiceClient(url, new StorageSharedKeyCredential(options.account, options.accountKey), pipeline)
          : new BlobServiceClient(`${url}?${options.sasToken!.replace(/^\?/, '')}`, new AnonymousCredential(), pipeline);
    } else {
      throw new TypeError('azure blob store needs connectionString, or account with accountKey or sasToken');
    }
    this.#container = service.getContainerClient(options.container);
    const origin = new URL(this.#container.url).origin; // origin: never the SAS query
    const where = origin.endsWith('.blob.core.windows.net') ? '' : ` at ${origin}`;
    this.name = `azure://${this.#container.accountName}/${options.container}/${this.#prefix}${where}`;
  }

  async put(key: string, body: Buffer | Readable, opts: PutOptions): Promise<{ etag?: string }> {
    const ctx = this.#ctx('put', key);
    this.#check(ctx, opts.signal, key);
    validateBody(ctx, body, opts.contentLength);
    abortBodyOnSignal(body, opts.signal);
    const blob = this.#container.getBlockBlobClient(this.#prefix + key);
    const conditions = opts.ifNoneMatch ? { ifNoneMatch: '*' } : undefined;
    const idle = new IdleDeadline(opts.signal, this.#idleMs);
    const common = { abortSignal: idle.signal, onProgress: idle.progress, conditions };
    try {
      const out = Buffer.isBuffer(body)
        ? await blob.uploadData(body, {
            ...common,
            blockSize: this.#partSize,
            maxSingleShotSize: this.#partSize,
            concurrency: this.#concurrency,
          })
        : await blob.uploadStream(body, this.#partSize, this.#concurrency, common);
      return { etag: out.etag };
    } catch (err) {
      if (!Buffer.isBuffer(body)) body.destroy();
      throw this.#fail(ctx, err, opts.signal, idle);
    } finally {
      idle.dispose();
    }
  }

  async get(key: string, opts: GetOptions): Promise<Buffer> {
    const ctx = this.#ctx('get', key);
    this.#check(ctx, opts.signal, key);
    validateRange(ctx, opts.range);
    const blob = this.#container.getBlobClient(this.#prefix + key);
    const offset = opts.range?.start ?? 0;
    const count = opts.range ? opts.range.end - opts.range.start + 1 : undefined;
    const idle = new IdleDeadline(opts.signal, this.#idleMs);
    try {
      const out = await blob.download(offset, count, { abortSignal: idle.signal, maxRetryRequests: 2 });
      if (out.readableStreamBody === undefined) return Buffer.alloc(0);
      return await collectStream(out.readableStreamBody, idle.signal, ctx, Infinity, idle.progress);
    } catch (err) {
      throw this.#fail(ctx, err, opts.signal, idle);
    } finally {
      idle.dispose();
    }
  }

  async head(key: string, opts: { signal: AbortSignal }): Promise<{ size: number; etag?: string } | null> {
    const ctx = this.#ctx('head', key);
    this.#check(ctx, opts.signal, key);
    const idle = new IdleDeadline(opts.signal, this.#idleMs);
    try {
      const out = await this.#container.getBlobClient(this.#prefix + key).getProperties({ abortSignal: idle.signal });
      return { size: out.contentLength ?? 0, etag: out.etag };
    } catch (err) {
      const e = this.#fail(ctx, err, opts.signal, idle);
      if (e.kind === 'not-found') return null;
      throw e;
    } finally {
      idle.dispose();
    }
  }

  async list(prefix: string, opts: ListOptions): Promise<ListPage> {
    const ctx = this.#ctx('list', prefix);
    this.#check(ctx, opts.signal);
    validatePageSize(ctx, opts.pageSize);
    const idle = new IdleDeadline(opts.signal, this.#idleMs);
    try {
      const pages = this.#container
        .listBlobsFlat({ prefix: this.#prefix + prefix, abortSignal: idle.signal })
        .byPage({ continuationToken: opts.continuationToken, maxPageSize: opts.pageSize ?? 1000 });
      const next = await pages.next();
      const value = next.done ? undefined : next.value;
      const page: ListPage = {
        keys: (value?.segment.blobItems ?? []).map((b) => ({
          key: b.name.slice(this.#prefix.length),
          size: b.properties.contentLength ?? 0,
        })),
      };
      if (value?.continuationToken) page.nextToken = value.continuationToken;
      return page;
    } catch (err) {
      throw this.#fail(ctx, err, opts.signal, idle);
    } finally {
      idle.dispose();
    }
  }

  async delete(key: string, opts: { signal: AbortSignal }): Promise<void> {
    const ctx = this.#ctx('delete', key);
    this.#check(ctx, opts.signal, key);
    const idle = new IdleDeadline(opts.signal, this.#idleMs);
    try {
      await this.#container.getBlobClient(this.#prefix + key).delete({ abortSignal: idle.signal });
    } catch (err) {
      const e = this.#fail(ctx, err, opts.signal, idle);
      if (e.kind !== 'not-found') throw e;
    } finally {
      idle.dispose();
    }
  }

  async close(): Promise<void> {
    this.#closed = true; // the SDK's HTTP agent is shared and unref'd: nothing to release
  }

  #ctx(op: BlobOp, key: string): BlobErrorContext {
    return { store: this.name, op, key };
  }

  #check(ctx: BlobErrorContext, signal: AbortSignal, key?: string): void {
    throwIfAborted(ctx, signal);
    if (this.#closed) throw new BlobStoreError('fatal', ctx, 'the store is closed');
    if (key !== undefined) validateKey(ctx, key);
  }

  #fail(ctx: BlobErrorContext, err: unknown, signal: AbortSignal, idle: IdleDeadline): BlobStoreError {
    if (signal.aborted) return abortedError(ctx, signal);
    const failure: SdkFailure = {};
    if (idle.timedOut) {
      failure.kind = 'retriable';
      err = new Error(`no progress for ${this.#idleMs} ms`, { cause: err });
    } else if (err instanceof RestError || (err as { name?: unknown })?.name === 'RestError') {
      const rest = err as RestError;
      failure.status = rest.statusCode;
      // HEAD answers carry the service code only in a header (the RestError's code is undefined).
      failure.serviceCode = rest.code ?? rest.response?.headers.get('x-ms-error-code') ?? undefined;
      const code = failure.serviceCode;
      if (rest.statusCode === 404 && code !== undefined && code !== 'BlobNotFound') {
        failure.kind = 'fatal'; // ContainerNotFound and friends: configuration
      } else if (ctx.op === 'put' && (code === 'BlobAlreadyExists' || rest.statusCode === 412)) {
        failure.kind = 'fatal';
        failure.code = BlobErrorCode.Exists;
      } else if (code === 'OperationTimedOut' || code === 'ServerBusy') {
        failure.kind = 'retriable';
      }
    }
    return classify(ctx, err, signal, failure, this.#secrets);
  }
}

/** Every credential the options hold, so error text can be scrubbed of them. */
function azureSecrets(options: AzureBlobStoreOptions): string[] {
  const out = [options.accountKey, options.sasToken?.replace(/^\?/, '')];
  for (const part of (options.connectionString ?? '').split(';')) {
    const eq = part.indexOf('=');
    const name = part.slice(0, eq).trim().toLowerCase();
    if (name === 'accountkey' || name === 'sharedaccesssignature') out.push(part.slice(eq + 1));
  }
  for (const sas of [...out]) {
    const sig = sas && /(?:^|&)sig=([^&]+)/.exec(sas)?.[1];
    if (sig) out.push(sig, decodeURIComponent(sig));
  }
  return out.filter((s): s is string => !!s && s.length >= 4);
}
