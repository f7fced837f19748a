/**
 * Amazon S3 and S3-compatible stores (MinIO, s3rver in tests) through `@aws-sdk/client-s3`.
 * Bodies up to `partSize` go in one PutObject; larger Buffers and every stream go through
 * `@aws-sdk/lib-storage`'s Upload, which switches to multipart above one part and buffers at
 * most `uploadConcurrency` parts. The SDK's own retries are bounded (`maxAttempts`,
 * connect and socket timeouts) so a dead endpoint fails in seconds; the caller's retry
 * budget (offloader) does the patient retrying. One S3Client per store; `close()` destroys
 * it and is idempotent.
 */
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
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
import { abortBodyOnSignal, collectStream } from './stream-util.js';

export interface S3BlobStoreOptions {
  bucket: string;
  /** Key prefix inside the bucket, e.g. 'meridian/us-east'. */
  prefix?: string;
  /** Defaults to the SDK's chain (AWS_REGION, profile); 'us-east-1' with a custom endpoint. */
  region?: string;
  /** For MinIO and other S3-compatible stores, e.g. 'http://127.0.0.1:9000'. */
  endpoint?: string;
  forcePathStyle?: boolean;
  /** Static credentials; absent means the SDK's standard chain (env, profile, IMDS, ...). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Multipart part size in bytes (S3 minimum 5 MiB). Default 8 MiB. */
  partSize?: number;
  /** Parts uploaded in parallel per put (memory: this × partSize). Default 4. */
  uploadConcurrency?: number;
  /** Attempts per request inside the SDK, including the first. Default 3. */
  maxAttempts?: number;
  connectTimeoutMs?: number;
  /** Socket idle timeout per request. Default 30 s. */
  socketTimeoutMs?: number;
}

const MiB = 1024 * 1024;
const MIN_PART = 5 * MiB;

export class S3BlobStore implements BlobStore {
  readonly name: string;
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #partSize: number;
  readonly #queueSize: number;
  readonly #secrets: string[];
  #closed = false;

  constructor(options: S3BlobStoreOptions) {
    this.#bucket = options.bucket;
    this.#prefix = normalizePrefix(options.prefix);
    this.#partSize = options.partSize ?? 8 * MiB;
    if (!Number.isSafeInteger(this.#partSize) || this.#partSize < MIN_PART) {
      throw new RangeError(`s3 partSize must be an integer >= ${MIN_PART} (5 MiB), got ${options.partSize}`);
    }
    this.#queueSize = Math.max(1, options.uploadConcurrency ?? 4);
    const creds = options.credentials;
    this.#secrets = [creds?.secretAccessKey, creds?.sessionToken].filter((s): s is string => !!s);
    const custom = options.endpoint !== undefined;
    this.name = `s3://${this.#bucket}/${this.#prefix}${custom ? ` at ${endpointOrigin(options.endpoint!)}` : ''}`;
    const config: S3ClientConfig = {
      region: options.region ?? (custom ? 'us-east-1' : undefined),
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle,
      credentials: creds,
      maxAttempts: options.maxAttempts ?? 3,
      requestHandler: {
        connectionTimeout: options.connectTimeoutMs ?? 5_000,
        socketTimeout: options.socketTimeoutMs ?? 30_000,
      },
    };
    if (custom) {
      // S3-compatible stores: with the SDK default a stream body is sent aws-chunked, which
      // s3rver (and some others) store verbatim, framing included.
      config.requestChecksumCalculation = 'WHEN_REQUIRED';
      config.responseChecksumValidation = 'WHEN_REQUIRED';
    }
    this.#client = new S3Client(config);
  }

  async put(key: string, body: Buffer | Readable, opts: PutOptions): Promise<{ etag?: string }> {
    const ctx = this.#ctx('put', key);
    this.#check(ctx, opts.signal, key);
    validateBody(ctx, body, opts.contentLength);
    abortBodyOnSignal(body, opts.signal);
    // Real S3 and MinIO enforce If-None-Match: '*' (412 when the key exists, also on
    // CompleteMultipartUpload); s3rver ignores it and overwrites.
    const params = {
      Bucket: this.#bucket,
      Key: this.#prefix + key,
      Body: body,
      ContentLength: opts.contentLength,
      IfNoneMatch: opts.ifNoneMatch ? '*' : undefined,
    };
    try {
      if (Buffer.isBuffer(body) && body.length <= this.#partSize) {
        const out = await this.#client.send(new PutObjectCommand(params), { abortSignal: opts.signal });
        return { etag: out.ETag };
      }
      // lib-storage takes an AbortController, not a signal: bridge the caller's signal.
      // Its in-flight part requests finish on their own; done() rejects at once.
      const controller = new AbortController();
      const onAbort = () => controller.abort();
      opts.signal.addEventListener('abort', onAbort, { once: true });
      try {
        const upload = new Upload({
          client: this.#client,
          params,
          partSize: this.#partSize,
          queueSize: this.#queueSize,
          abortController: controller,
        });
        const out = await upload.done();
        return { etag: out.ETag };
      } finally {
        opts.signal.removeEventListener('abort', onAbort);
      }
    } catch (err) {
      if (!Buffer.isBuffer(body)) body.destroy();
      throw this.#fail(ctx, err, opts.signal);
    }
  }

  async get(key: string, opts: GetOptions): Promise<Buffer> {
    const ctx = this.#ctx('get', key);
    this.#check(ctx, opts.signal, key);
    validateRange(ctx, opts.range);
    // Never a suffix range (bytes=-N): s3rver answers those wrongly.
    const range = opts.range ? `bytes=${opts.range.start}-${opts.range.end}` : undefined;
    try {
      const out = await this.#client.send(
        new GetObjectCommand({ Bucket: this.#bucket, Key: this.#prefix + key, Range: range }),
        { abortSignal: opts.signal },
      );
      if (out.Body === undefined) return Buffer.alloc(0);
      if (opts.range === undefined) return await collectStream(out.Body as Readable, opts.signal, ctx);
      // Locate the body by the answer's Content-Range, not by what was asked: RFC 9110
      // lets a server ignore Range (200, whole object) and S3-compatible stores differ
      // (s3rver 3.7.1 answers bytes=0-0 with everything from byte 0).
      const offset = contentRangeStart(out.ContentRange) ?? 0;
      if (offset > opts.range.start) {
        throw new BlobStoreError('fatal', ctx, `asked for bytes ${opts.range.start}-, got ${out.ContentRange}`);
      }
      const body = await collectStream(out.Body as Readable, opts.signal, ctx, opts.range.end - offset + 1, undefined, opts.into);
      return body.subarray(opts.range.start - offset);
    } catch (err) {
      throw this.#fail(ctx, err, opts.signal);
    }
  }

  async head(key: string, opts: { signal: AbortSignal }): Promise<{ size: number; etag?: string } | null> {
    const ctx = this.#ctx('head', key);
    this.#check(ctx, opts.signal, key);
    try {
      const out = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#prefix + key }), {
        abortSignal: opts.signal,
      });
      return { size: out.ContentLength ?? 0, etag: out.ETag };
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
      const out = await this.#client.send(
        new ListObjectsV2Command({
          Bucket: this.#bucket,
          Prefix: this.#prefix + prefix,
          MaxKeys: opts.pageSize ?? 1000,
          ContinuationToken: opts.continuationToken,
        }),
        { abortSignal: opts.signal },
      );
      const page: ListPage = {
        keys: (out.Contents ?? []).map((o) => ({ key: (o.Key ?? '').slice(this.#prefix.length), size: o.Size ?? 0 })),
      };
      if (out.IsTruncated && out.NextContinuationToken) page.nextToken = out.NextContinuationToken;
      return page;
    } catch (err) {
      throw this.#fail(ctx, err, opts.signal);
    }
  }

  async delete(key: string, opts: { signal: AbortSignal }): Promise<void> {
    const ctx = this.#ctx('delete', key);
    this.#check(ctx, opts.signal, key);
    try {
      // S3 answers 204 for a missing key too.
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#prefix + key }), {
        abortSignal: opts.signal,
      });
    } catch (err) {
      const e = this.#fail(ctx, err, opts.signal);
      if (e.kind !== 'not-found') throw e;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.destroy();
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
    const e = (err ?? {}) as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown };
    const status = e.$metadata?.httpStatusCode;
    const serviceCode = e.Code ?? (e.name && e.name !== 'Error' ? e.name : undefined);
    const failure: SdkFailure = { status, serviceCode };
    if (status === 404 && serviceCode !== 'NoSuchKey' && serviceCode !== 'NotFound') {
      failure.kind = 'fatal'; // NoSuchBucket and friends: configuration, not a missing object
    } else if (status === 412 && ctx.op === 'put') {
      failure.kind = 'fatal';
      failure.code = BlobErrorCode.Exists;
    } else if (serviceCode === 'RequestTimeout' || serviceCode === 'ConditionalRequestConflict' || e.$retryable) {
      failure.kind = 'retriable'; // 400/409 that S3 documents as "try again"
    }
    return classify(ctx, err, signal, failure, this.#secrets);
  }
}

function contentRangeStart(header: string | undefined): number | undefined {
  const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(header ?? '');
  return m ? Number(m[1]) : undefined;
}

/** Scheme, host and port only: an endpoint URL may carry user:password. */
function endpointOrigin(endpoint: string): string {
  try {
    return new URL(endpoint).origin;
  } catch {
    return '(invalid endpoint)';
  }
}
