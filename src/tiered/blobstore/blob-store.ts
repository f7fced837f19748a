/**
 * The bottom layer of tiered storage (redpanda's `cloud_storage_clients`): one small
 * object-store interface, implemented once per cloud SDK. Callers above it (remote I/O,
 * offloader, remote segment reader) see only this file: they branch on
 * `BlobStoreError.kind`/`code`, never on an SDK's error shape, because every backend
 * classifies its errors before they leave it.
 */
import type { Readable } from 'node:stream';
import { MeridianError } from '../../errors.js';

export interface PutOptions {
  signal: AbortSignal;
  /** Byte length of a stream body, when known; checked against a Buffer body's length. */
  contentLength?: number;
  /** Create-only: fail with code `BLOB_EXISTS` instead of overwriting an existing object. */
  ifNoneMatch?: boolean;
}

export interface GetOptions {
  signal: AbortSignal;
  /** Inclusive byte range. An `end` past the object's last byte is clamped, as in HTTP. */
  range?: { start: number; end: number };
  /**
   * A buffer the store may read the bytes into, returning a view of it (the directory store
   * does; the network backends ignore it): the block cache recycles its block buffers this
   * way instead of having a fresh megabyte allocated per GET. The caller must not touch it
   * until the call settles, nor reuse it after a failure (a read may still be landing).
   */
  into?: Buffer;
}

export interface ListOptions {
  signal: AbortSignal;
  pageSize?: number;
  /** The `nextToken` of the previous page; opaque and backend-specific. */
  continuationToken?: string;
}

export interface ListPage {
  /** Keys (relative to the store's prefix) in ascending order, each exactly once. */
  keys: Array<{ key: string; size: number }>;
  /** Absent on the last page. */
  nextToken?: string;
}

/**
 * An object store holding immutable-ish blobs under '/'-separated keys, relative to the
 * store's own prefix. Every call takes an AbortSignal; an aborted call rejects with a
 * `BLOB_ABORTED` BlobStoreError (see `isBlobAbort`). A store is safe for concurrent calls;
 * `close()` is idempotent and releases connections.
 */
export interface BlobStore {
  /** Where the store points, for logs, e.g. `s3://bucket/prefix`. Never holds credentials. */
  readonly name: string;
  put(key: string, body: Buffer | Readable, opts: PutOptions): Promise<{ etag?: string }>;
  /** Throws kind `not-found` when the key does not exist. */
  get(key: string, opts: GetOptions): Promise<Buffer>;
  /** `null` when the key does not exist. */
  head(key: string, opts: { signal: AbortSignal }): Promise<{ size: number; etag?: string } | null>;
  list(prefix: string, opts: ListOptions): Promise<ListPage>;
  /** Deleting a missing key is not an error. */
  delete(key: string, opts: { signal: AbortSignal }): Promise<void>;
  close(): Promise<void>;
}

/** What a caller may do about a failure: retry it, give up, or treat the object as absent. */
export type BlobErrorKind = 'retriable' | 'fatal' | 'not-found';

export const BlobErrorCode = {
  Retriable: 'BLOB_RETRIABLE',
  Fatal: 'BLOB_FATAL',
  NotFound: 'BLOB_NOT_FOUND',
  /** A create-only put found the object already there (kind fatal). */
  Exists: 'BLOB_EXISTS',
  /** The caller's signal aborted the call (kind fatal: the caller chose to stop). */
  Aborted: 'BLOB_ABORTED',
  /** A key, range or body the store refuses before any I/O (kind fatal). */
  BadRequest: 'BLOB_BAD_REQUEST',
} as const;
export type BlobErrorCode = (typeof BlobErrorCode)[keyof typeof BlobErrorCode];

export type BlobOp = 'put' | 'get' | 'head' | 'list' | 'delete';

/** Which store, operation and key a failure belongs to; part of every message. */
export interface BlobErrorContext {
  store: string;
  op: BlobOp;
  key: string;
}

const defaultCode: Record<BlobErrorKind, BlobErrorCode> = {
  retriable: BlobErrorCode.Retriable,
  fatal: BlobErrorCode.Fatal,
  'not-found': BlobErrorCode.NotFound,
};

/**
 * A classified object-store failure. `cause` is a credential-free copy of the SDK error
 * (see classify.ts), never the SDK object itself: those carry signed URLs and headers.
 */
export class BlobStoreError extends MeridianError {
  readonly kind: BlobErrorKind;
  readonly store: string;
  readonly op: BlobOp;
  readonly key: string;
  /** The HTTP status behind the failure, when there was one. */
  readonly status: number | undefined;

  constructor(
    kind: BlobErrorKind,
    ctx: BlobErrorContext,
    reason: string,
    options: { code?: BlobErrorCode; status?: number; cause?: unknown } = {},
  ) {
    super(options.code ?? defaultCode[kind], `${ctx.op} '${ctx.key}' on ${ctx.store}: ${reason}`, {
      retriable: kind === 'retriable',
      cause: options.cause,
    });
    this.name = 'BlobStoreError';
    this.kind = kind;
    this.store = ctx.store;
    this.op = ctx.op;
    this.key = ctx.key;
    this.status = options.status;
  }
}

export function isBlobAbort(err: unknown): err is BlobStoreError {
  return err instanceof BlobStoreError && err.code === BlobErrorCode.Aborted;
}

export function isBlobNotFound(err: unknown): err is BlobStoreError {
  return err instanceof BlobStoreError && err.kind === 'not-found';
}

export function abortedError(ctx: BlobErrorContext, signal: AbortSignal): BlobStoreError {
  return new BlobStoreError('fatal', ctx, 'aborted', { code: BlobErrorCode.Aborted, cause: signal.reason });
}

export function throwIfAborted(ctx: BlobErrorContext, signal: AbortSignal): void {
  if (signal.aborted) throw abortedError(ctx, signal);
}

export function badRequest(ctx: BlobErrorContext, reason: string): BlobStoreError {
  return new BlobStoreError('fatal', ctx, reason, { code: BlobErrorCode.BadRequest });
}

const MAX_KEY_BYTES = 1024;

/**
 * The one key grammar every backend accepts, so a layout that works on the directory store
 * works on every cloud: '/'-separated, non-empty segments, no '.' or '..' segment, no NUL or
 * backslash, at most 1024 UTF-8 bytes (S3's limit).
 */
export function validateKey(ctx: BlobErrorContext, key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw badRequest(ctx, 'the key is empty');
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw badRequest(ctx, `the key is longer than ${MAX_KEY_BYTES} bytes`);
  if (/[\0\\]/.test(key)) throw badRequest(ctx, 'the key contains NUL or a backslash');
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw badRequest(ctx, "the key has an empty, '.' or '..' segment");
    }
  }
}

export function validateRange(ctx: BlobErrorContext, range: { start: number; end: number } | undefined): void {
  if (range === undefined) return;
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw badRequest(ctx, `invalid range ${start}-${end} (need 0 <= start <= end, inclusive)`);
  }
}

export function validatePageSize(ctx: BlobErrorContext, pageSize: number | undefined): void {
  if (pageSize !== undefined && (!Number.isSafeInteger(pageSize) || pageSize < 1 || pageSize > 1000)) {
    throw badRequest(ctx, `invalid pageSize ${pageSize} (1..1000)`);
  }
}

export function validateBody(ctx: BlobErrorContext, body: Buffer | Readable, contentLength: number | undefined): void {
  if (Buffer.isBuffer(body) && contentLength !== undefined && contentLength !== body.length) {
    throw badRequest(ctx, `contentLength ${contentLength} differs from the body's ${body.length} bytes`);
  }
}

/** Normalises a configured prefix to '' or 'a/b/' so keys join without double slashes. */
export function normalizePrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? '').replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? '' : `${trimmed}/`;
}
