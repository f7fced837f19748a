/**
 * Shared pieces of error classification. Each backend extracts the HTTP status and service
 * code from its own SDK's error and handles its special cases (create-only conflicts,
 * missing bucket); this file holds what is common to all of them: status → kind, which
 * transport failures are transient, and scrubbing credentials from anything that leaves
 * the backend.
 */
import {
  BlobErrorCode,
  BlobStoreError,
  abortedError,
  type BlobErrorContext,
  type BlobErrorKind,
} from './blob-store.js';

/**
 * Transport failures worth retrying: the server may come back. ENOTFOUND is here too
 * (DNS blips happen); a misconfigured host simply exhausts the caller's retry budget.
 */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'REQUEST_SEND_ERROR', // @azure/core-rest-pipeline's wrapper for a failed send
]);

const TRANSIENT_NAMES = new Set(['TimeoutError', 'RequestTimeout', 'NetworkingError']);

/** Walks `err`, its `cause` chain and AggregateError members (bounded, cycle-safe). */
function* errorChain(err: unknown): Generator<Record<string, unknown>> {
  const seen = new Set<unknown>();
  const queue: unknown[] = [err];
  while (queue.length > 0 && seen.size < 16) {
    const e = queue.shift();
    if (e === null || typeof e !== 'object' || seen.has(e)) continue;
    seen.add(e);
    const rec = e as Record<string, unknown>;
    yield rec;
    queue.push(rec.cause);
    if (Array.isArray(rec.errors)) queue.push(...rec.errors);
  }
}

/** True when the failure is a transport problem (no usable HTTP answer) worth retrying. */
export function isTransientTransportError(err: unknown): boolean {
  for (const e of errorChain(err)) {
    if (typeof e.code === 'string' && TRANSIENT_CODES.has(e.code)) return true;
    if (typeof e.name === 'string' && TRANSIENT_NAMES.has(e.name)) return true;
    if (typeof e.message === 'string' && /socket hang up|other side closed|timed? ?out/i.test(e.message)) return true;
  }
  return false;
}

export function isAbortErrorLike(err: unknown): boolean {
  for (const e of errorChain(err)) if (e.name === 'AbortError' || e.code === 'ABORT_ERR') return true;
  return false;
}

/**
 * HTTP status → kind. 404 is only *object* not-found; backends turn a missing bucket or
 * container into fatal before calling this. 501/505 mean "never supported", so fatal.
 */
export function kindForStatus(status: number): BlobErrorKind {
  if (status === 404) return 'not-found';
  if (status === 408 || status === 429) return 'retriable';
  if (status >= 500 && status !== 501 && status !== 505) return 'retriable';
  return 'fatal';
}

/** Strings that look like credentials inside URLs, connection strings or SDK dumps. */
const SECRET_PATTERNS = /((?:AccountKey|SharedAccessSignature|sig|X-Amz-Signature|X-Amz-Security-Token|X-Goog-Signature|access_token)=)[^;&\s"',]+/gi;

/** Replaces every known secret (and its URL-encoded form) and secret-looking parameter. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length < 4) continue;
    for (const form of new Set([secret, encodeURIComponent(secret)])) out = out.split(form).join('[redacted]');
  }
  return out.replace(SECRET_PATTERNS, '$1[redacted]');
}

/**
 * A credential-free stand-in for an SDK error: its name, code, status, message and stack,
 * scrubbed. SDK error objects carry request URLs (an Azure SAS is the credential) and
 * headers, and a logger that serialises `cause` would print them.
 */
export function safeCause(err: unknown, secrets: readonly string[]): Error {
  if (!(err instanceof Error)) return new Error(redact(String(err), secrets));
  const copy = new Error(redact(err.message, secrets));
  copy.name = err.name;
  copy.stack = redact(err.stack ?? '', secrets);
  const rec = err as unknown as Record<string, unknown>;
  for (const field of ['code', 'statusCode', 'status', 'errno', 'syscall'] as const) {
    const value = rec[field];
    if (typeof value === 'string' || typeof value === 'number') {
      (copy as unknown as Record<string, unknown>)[field] = typeof value === 'string' ? redact(value, secrets) : value;
    }
  }
  const inner = rec.cause;
  if (inner !== undefined && inner !== err) copy.cause = safeCause(inner, secrets);
  return copy;
}

/** What a backend learned from its SDK's error before handing it to `classify`. */
export interface SdkFailure {
  status?: number;
  /** The service's error code, e.g. 'NoSuchKey', 'BlobNotFound', 'notFound'. */
  serviceCode?: string;
  /** A backend's decision that overrides the generic rules. */
  kind?: BlobErrorKind;
  code?: BlobErrorCode;
}

/**
 * The common tail of every backend's classification: aborts first (the caller's signal
 * wins over whatever the SDK made of it), then the backend's decision, the HTTP status,
 * transport errors, and finally fatal for anything unrecognised (a bug or a misconfiguration
 * that retrying will not fix).
 */
export function classify(
  ctx: BlobErrorContext,
  err: unknown,
  signal: AbortSignal,
  failure: SdkFailure,
  secrets: readonly string[],
): BlobStoreError {
  if (err instanceof BlobStoreError) return err;
  if (signal.aborted) return abortedError(ctx, signal);
  const { status, serviceCode } = failure;
  let kind = failure.kind;
  let reason: string;
  if (kind === undefined && status !== undefined && status > 0) kind = kindForStatus(status);
  if (kind === undefined && isTransientTransportError(err)) kind = 'retriable';
  kind ??= 'fatal';
  const detail = [status ? `HTTP ${status}` : undefined, serviceCode].filter(Boolean).join(' ');
  const message = err instanceof Error ? err.message : String(err);
  if (failure.code === BlobErrorCode.Exists) reason = 'the object already exists';
  else if (kind === 'not-found') reason = 'not found';
  else reason = kind === 'retriable' ? 'temporarily unavailable' : 'failed';
  reason += detail ? ` (${detail})` : '';
  reason += message ? `: ${firstLine(message)}` : '';
  return new BlobStoreError(kind, ctx, redact(reason, secrets), {
    code: failure.code,
    status,
    cause: safeCause(err, secrets),
  });
}

function firstLine(text: string): string {
  const line = text.split('\n', 1)[0] ?? '';
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}
