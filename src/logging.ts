/**
 * Structured logging on pino, with secrets censored wherever they sit in a logged object.
 *
 * pino's own `redact.paths` need every path spelled out and cannot say "this key at any
 * depth", yet credentials arrive deeply nested (a blob-store config inside a tiering config
 * inside an error). So every object that reaches the output is walked by key name
 * (`formatters.log` for call arguments, `formatters.bindings` for child bindings, the `err`
 * serializer for errors) and the usual top-level paths are also given to `redact` as a
 * second net for anything a serializer adds after the walk.
 *
 * The walk copies on write: an object without secrets is logged as-is, and a caller's object
 * is never modified.
 *
 * Output is JSON lines for log stores, or pino-pretty's human lines for a person at a
 * terminal (`format: pretty`, or `auto` on a TTY). Pretty output is formatted in-process,
 * after redaction: the line pino-pretty receives is the censored JSON line.
 */
import { pino } from 'pino';
import { build as pinoPretty } from 'pino-pretty';
import type { LogFormat, LogLevel } from './config/schema.js';

export type Logger = pino.Logger;

export interface CreateLoggerOptions {
  level: LogLevel;
  /** json (the default here), pretty, or auto: pretty when `tty` is true. */
  format?: LogFormat;
  /** Whether the output is a terminal, for `auto`; the composition root passes stdout's isTTY. */
  tty?: boolean;
  /** Where lines go; stdout when omitted. Tests pass an in-memory stream. */
  destination?: pino.DestinationStream;
  name?: string;
}

export const REDACTED = '[redacted]';

/**
 * Key names (compared case-insensitively, ignoring "_" and "-") whose values are never logged.
 * A key also matches when it ends with one of them: sessionToken, clientSecret, dbPassword,
 * x-api-key. Access key ids are identifiers, not secrets, and stay visible for debugging.
 */
export const SECRET_KEYS = [
  'password',
  'passwd',
  'passphrase',
  'secret',
  'secretKey',
  'secretAccessKey',
  'accountKey',
  'connectionString',
  'sasToken',
  'token',
  'credentials',
  'privateKey',
  'apiKey',
  'authorization',
  'cookie',
] as const;

const SECRET_SUFFIXES = SECRET_KEYS.map(squash);

function squash(key: string): string {
  return key.toLowerCase().replace(/[_-]/g, '');
}

export function isSecretKey(key: string): boolean {
  const squashed = squash(key);
  return SECRET_SUFFIXES.some((suffix) => squashed.endsWith(suffix));
}

// Azure connection strings and SAS URLs carry their secret inside a longer value that is
// useful to see (account name, endpoint), so only the secret part is cut out.
// The value stops before a quote or backslash so that scrubbing a finished JSON line (see
// streamWrite) never eats an escape and breaks the line.
const INLINE_SECRET = /\b(AccountKey|SharedAccessKey|SharedAccessSignature|sig)=[^;&\s"\\]+/gi;

function scrubInline(text: string): string {
  return text.replace(INLINE_SECRET, `$1=${REDACTED}`);
}

const MAX_DEPTH = 12;

/**
 * A copy of `value` with secret-named fields censored at any depth (bounded: anything deeper
 * than MAX_DEPTH is replaced, never passed through unchecked). Cycles become "[Circular]".
 * Returns `value` itself when nothing needed censoring, except that an Error always becomes
 * its pino-serialized form (type, message, stack, own fields): JSON.stringify alone would
 * render a nested Error as {}.
 */
export function redactSecrets<T>(value: T): T {
  return walk(value, 0, new Set()) as T;
}

function walk(value: unknown, depth: number, ancestors: Set<object>): unknown {
  if (typeof value === 'string') return scrubInline(value);
  if (typeof value !== 'object' || value === null) return value;
  if (ancestors.has(value)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[too deep]';
  // Leave to JSON.stringify what it renders without own enumerable fields (Date, Buffer, Map).
  if (!Array.isArray(value) && !(value instanceof Error) && typeof (value as { toJSON?: unknown }).toJSON === 'function') return value;
  if (ArrayBuffer.isView(value) || value instanceof Map || value instanceof Set) return value;

  ancestors.add(value);
  try {
    if (Array.isArray(value)) {
      let copy: unknown[] | undefined;
      value.forEach((item, i) => {
        const next = walk(item, depth + 1, ancestors);
        if (next !== item) (copy ??= [...value])[i] = next;
      });
      return copy ?? value;
    }
    // Own fields of an Error (an SDK's request config) are walked like any object.
    const source = value instanceof Error ? (pino.stdSerializers.err(value) as unknown as Record<string, unknown>) : (value as Record<string, unknown>);
    let copy: Record<string, unknown> | undefined;
    for (const key of Object.keys(source)) {
      const item = source[key];
      const next = isSecretKey(key) && item !== undefined && item !== null ? REDACTED : walk(item, depth + 1, ancestors);
      if (next !== item) (copy ??= { ...source })[key] = next;
    }
    return copy ?? source;
  } finally {
    ancestors.delete(value);
  }
}

// Exact paths only: a wildcard path ("*.password") makes pino 10 print any Buffer in the
// same line as "[unable to serialize ...]", and the walk covers every depth anyway.
function redactPaths(): string[] {
  return [...SECRET_KEYS, 'req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie'];
}

export function createLogger(options: CreateLoggerOptions): Logger {
  const loggerOptions: pino.LoggerOptions = {
    level: options.level,
    redact: { paths: redactPaths(), censor: REDACTED },
    formatters: {
      // Labels rather than pino's numbers: log stores and humans filter on "warn", not 40.
      level: (label) => ({ level: label }),
      log: (object) => redactSecrets(object),
      bindings: (bindings) => redactSecrets(bindings),
    },
    serializers: {
      // formatters.log has already turned errors in logged objects into walked plain objects;
      // this catches an Error that reaches `err` another way (child bindings).
      err: (err: unknown) => (err instanceof Error ? redactSecrets(err) : err),
    },
    hooks: {
      // The message is the caller's text (or an error's message, taken before any formatter
      // runs), and an SDK error message can quote a connection string.
      streamWrite: scrubInline,
    },
  };
  if (options.name !== undefined) loggerOptions.name = options.name;
  const format = options.format ?? 'json';
  if (format === 'pretty' || (format === 'auto' && options.tty === true)) {
    return pino(loggerOptions, prettyStream(options.destination, options.tty === true));
  }
  return options.destination === undefined ? pino(loggerOptions) : pino(loggerOptions, options.destination);
}

/** One line per entry: time, level, logger name, message, then the fields as key=JSON. */
function prettyStream(destination: pino.DestinationStream | undefined, colorize: boolean): pino.DestinationStream {
  return pinoPretty({
    colorize,
    sync: true,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    ...(destination === undefined ? {} : { destination: destination as NodeJS.WritableStream }),
  });
}
