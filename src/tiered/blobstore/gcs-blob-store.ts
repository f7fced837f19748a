/**
 * Google Cloud Storage through `@google-cloud/storage`. Buffers up to `partSize` go in one
 * multipart upload; larger Buffers and every stream use a resumable upload sent in
 * `partSize` chunks (each acknowledged by the server before the next). Create-only puts
 * use `ifGenerationMatch: 0`. Credentials: `keyFilename` or inline `credentials`, else
 * Application Default Credentials; with a custom `apiEndpoint` (emulators, tests) the
 * client sends no credentials at all. The SDK takes no AbortSignal: uploads and downloads
 * are cancelled by destroying their streams; metadata calls (head, list, delete) release
 * the caller at once and finish in the background within `timeoutMs`. Retries are bounded
 * (`maxAttempts`). Stateless besides `closed`.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Storage, type File, type StorageOptions } from '@google-cloud/storage';
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
import { abortBodyOnSignal, collectStream, raceAbort } from './stream-util.js';

export interface GcsBlobStoreOptions {
  bucket: string;
  prefix?: string;
  projectId?: string;
  /** e.g. 'http://127.0.0.1:4443' for an emulator; default the real service. */
  apiEndpoint?: string;
  keyFilename?: string;
  credentials?: { client_email: string; private_key: string };
  /** Single-request upload limit and resumable chunk size (a multiple of 256 KiB). Default 8 MiB. */
  partSize?: number;
  /** Attempts per request inside the SDK, including the first. Default 3. */
  maxAttempts?: number;
  /** Per-request timeout. Default 60 s. */
  timeoutMs?: number;
}

const KiB = 1024;
const CHUNK_GRANULE = 256 * KiB; // GCS rule for resumable chunk sizes

export class GcsBlobStore implements BlobStore {
  readonly name: string;
  readonly #storage: Storage;
  readonly #bucketName: string;
  readonly #prefix: string;
  readonly #partSize: number;
  readonly #timeoutMs: number;
  readonly #secrets: string[];
  #closed = false;

  constructor(options: GcsBlobStoreOptions) {
    this.#bucketName = options.bucket;
    this.#prefix = normalizePrefix(options.prefix);
    this.#partSize = options.partSize ?? 8 * 1024 * KiB;
    if (!Number.isSafeInteger(this.#partSize) || this.#partSize < CHUNK_GRANULE || this.#partSize % CHUNK_GRANULE !== 0) {
      throw new RangeError(`gcs partSize must be a positive multiple of 256 KiB, got ${options.partSize}`);
    }
    this.#timeoutMs = options.timeoutMs ?? 60_000;
    this.#secrets = options.credentials?.private_key ? [options.credentials.private_key] : [];
    const attempts = Math.max(1, options.maxAttempts ?? 3);
    const maxRetryDelaySec = 2; // this SDK's retry options are in seconds
    const config: StorageOptions = {
      projectId: options.projectId,
      apiEndpoint: options.apiEndpoint,
      keyFilename: options.keyFilename,
      credentials: options.credentials,
      timeout: this.#timeoutMs,
      retryOptions: {
        // `maxRetries: 0` is read as "unset" (default 3): turn retries off instead.
        autoRetry: attempts > 1,
        maxRetries: attempts - 1,
        maxRetryDelay: maxRetryDelaySec,
        // retry-request (under this SDK) never settles a request whose totalTimeout runs
        // out: its retry path just returns. Keep totalTimeout beyond the whole retry
        // schedule so that maxRetries always ends the cycle, with an error.
        totalTimeout: attempts * (Math.ceil(this.#timeoutMs / 1000) + maxRetryDelaySec) + 60,
      },
    };
    this.#storage = new Storage(config);
    const where = options.apiEndpoint ? ` at ${safeOrigin(options.apiEndpoint)}` : '';
    this.name = `gs://${this.#bucketName}/${this.#prefix}${where}`;
  }

  async put(key: string, body: Buffer | Readable, opts: PutOptions): Promise<{ etag?: string }> {
    const ctx = this.#ctx('put', key);
    this.#check(ctx, opts.signal, key);
    validateBody(ctx, body, opts.contentLength);
    abortBodyOnSignal(body, opts.signal);
    const file = this.#file(key);
    const single = Buffer.isBuffer(body) && body.length <= this.#partSize;
    const writer = file.createWriteStream({
      resumable: !single,
      chunkSize: single ? undefined : this.#partSize,
      contentType: 'application/octet-stream',
      preconditionOpts: opts.ifNoneMatch ? { ifGenerationMatch: 0 } : undefined,
      timeout: this.#timeoutMs,
    });
    try {
      // pipeline() destroys both streams on abort, which cancels the HTTP request.
      await pipeline(Buffer.isBuffer(body) ? Readable.from([body]) : body, writer, { signal: opts.signal });
      return { etag: typeof file.metadata.etag === 'string' ? file.metadata.etag : undefined };
    } catch (err) {
      throw this.#fail(ctx, err, opts.signal);
    }
  }

  async get(key: string, opts: GetOptions): Promise<Buffer> {
    const ctx = this.#ctx('get', key);
    this.#check(ctx, opts.signal, key);
    validateRange(ctx, opts.range);
    try {
      // Whole-object reads are checked against the server's CRC32C by the SDK; ranged reads
      // cannot be (the SDK refuses validation with start/end).
      const reader = this.#file(key).createReadStream(opts.range ? { start: opts.range.start, end: opts.range.end } : {});
      return await collectStream(reader, opts.signal, ctx);
    } catch (err) {
      throw this.#fail(ctx, err, opts.signal);
    }
  }

  async head(key: string, opts: { signal: AbortSignal }): Promise<{ size: number; etag?: string } | null> {
    const ctx = this.#ctx('head', key);
    this.#check(ctx, opts.signal, key);
    try {
      const [meta] = await raceAbort(this.#file(key).getMetadata(), opts.signal, ctx);
      return { size: Number(meta.size ?? 0), etag: meta.etag };
    } catch (err) {
      const e = this.#fail(ctx, err, opts.signal);
      if (e.kind === 'not-found') return null;
      throw e;
    }
  }

  async list(prefix: string, opts: ListOptions): Promise<ListPage> {
    const ctx = this.#ctx('list', prefix);
    this.#check(ctx, opts.signal);
    validatePageSize(ctx, opts.pageSize);
    try {
      const [files, nextQuery] = await raceAbort(
        this.#storage.bucket(this.#bucketName).getFiles({
          prefix: this.#prefix + prefix,
          maxResults: opts.pageSize ?? 1000,
          pageToken: opts.continuationToken,
          autoPaginate: false,
        }),
        opts.signal,
        ctx,
      );
      const page: ListPage = {
        keys: files.map((f) => ({ key: f.name.slice(this.#prefix.length), size: Number(f.metadata.size ?? 0) })),
      };
      const token = (nextQuery as { pageToken?: string } | null | undefined)?.pageToken;
      if (token) page.nextToken = token;
      return page;
    } catch (err) {
      throw this.#fail(ctx, err, opts.signal);
    }
  }

  async delete(key: string, opts: { signal: AbortSignal }): Promise<void> {
    const ctx = this.#ctx('delete', key);
    this.#check(ctx, opts.signal, key);
    try {
      await raceAbort(this.#file(key).delete(), opts.signal, ctx);
    } catch (err) {
      const e = this.#fail(ctx, err, opts.signal);
      if (e.kind !== 'not-found') throw e;
    }
  }

  async close(): Promise<void> {
    this.#closed = true; // the SDK holds no sockets open between requests we must release
  }

  #file(key: string): File {
    return this.#storage.bucket(this.#bucketName).file(this.#prefix + key);
  }

  #ctx(op: BlobOp, key: string): BlobErrorContext {
    return { store: this.name, op, key };
  }

  #check(ctx: BlobErrorContext, signal: AbortSignal, key?: string): void {
    throwIfAborted(ctx, signal);
    if (this.#closed) throw new BlobStoreError('fatal', ctx, 'the store is closed');
    if (key !== undefined) validateKey(ctx, key);
  }

  #fail(ctx: BlobErrorContext, err: unknown, signal: AbortSignal): BlobStoreError {
    if (signal.aborted) return abortedError(ctx, signal);
    const e = (err ?? {}) as {
      code?: unknown;
      status?: unknown;
      response?: { status?: unknown };
      message?: string;
      errors?: Array<{ reason?: string }>;
    };
    const failure: SdkFailure = {};
    // ApiError carries the HTTP status in `code` (a number, sometimes a numeric string);
    // GaxiosError (resumable-upload session calls) in `status`/`response.status`;
    // transport errors carry an errno string in `code` instead.
    const status = [e.code, e.status, e.response?.status].map(Number).find((n) => Number.isInteger(n) && n >= 100 && n < 600);
    failure.status = status;
    failure.serviceCode = e.errors?.[0]?.reason ?? (typeof e.code === 'string' && status === undefined ? e.code : undefined);
    if (status === 404 && /bucket does not exist/i.test(e.message ?? '')) {
      failure.kind = 'fatal'; // a missing bucket is configuration, not a missing object
    } else if (status === 412 && ctx.op === 'put') {
      failure.kind = 'fatal';
      failure.code = BlobErrorCode.Exists;
    } else if (e.code === 'CONTENT_DOWNLOAD_MISMATCH' || e.code === 'FILE_NO_UPLOAD') {
      failure.kind = 'retriable'; // checksum mismatch in transit: a fresh attempt may pass
    }
    return classify(ctx, err, signal, failure, this.#secrets);
  }
}

function safeOrigin(endpoint: string): string {
  try {
    return new URL(endpoint).origin;
  } catch {
    return '(invalid endpoint)';
  }
}
