/**
 * Start-up failures as an operator reads them: the config field to look at and the cause,
 * on one line: a bad start-up must say what is wrong, not hang or print a stack.
 *
 * `Broker.start` passes every failure through `startupError`, which keeps errors that
 * already name their field (config errors) and attributes the rest by what failed: a
 * listen to kafka.port or kafka.host, a file-system call under the data directory to
 * dataDir. `tieredStartup` wraps the object store's creation and start, so whatever fails
 * there points at the store's settings.
 */
import path from 'node:path';
import { usesSasl } from '../config/listeners.js';
import type { BrokerConfig } from '../config/schema.js';
import { TlsFileError } from '../protocol/kafka/tls-credentials.js';
import { ErrorCode, MeridianError } from '../errors.js';

export class StartupError extends MeridianError {
  /** The config field to look at; undefined when no single field is to blame. */
  readonly field: string | undefined;

  constructor(field: string | undefined, detail: string, cause: unknown) {
    super(ErrorCode.StartupFailed, oneLine(field === undefined ? detail : `${field}: ${detail}`), { cause, retriable: false });
    this.name = 'StartupError';
    this.field = field;
  }
}

/** Errors whose message already names the field and what was expected. */
function namesItsField(err: unknown): err is MeridianError {
  return err instanceof StartupError || (err instanceof MeridianError && err.code === ErrorCode.BadConfig);
}

export function startupError(err: unknown, config: BrokerConfig): MeridianError {
  if (namesItsField(err)) return err;
  if (err instanceof MeridianError && err.code === ErrorCode.DataDirLocked) return new StartupError('dataDir', err.message, err);
  const sys = systemError(err);
  if (sys?.syscall === 'listen' || sys?.syscall === 'bind' || sys?.syscall === 'getaddrinfo') return listenError(sys, config);
  const dataDir = path.resolve(config.dataDir);
  if (sys?.path !== undefined && isUnder(sys.path, dataDir)) return new StartupError('dataDir', fsDetail(dataDir, sys), err);
  return new StartupError(undefined, err instanceof Error ? err.message : String(err), err);
}

/**
 * Runs the tiered store's start-up; any failure names the store's field. An injected store
 * (tests) is not the one `tiered.store` describes, so its failures name only the section.
 */
export async function tieredStartup<T>(config: BrokerConfig, injected: boolean, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    if (namesItsField(err)) throw err;
    const s = config.tiered.store;
    const field = s.type === 'fs' && !injected ? 'tiered.store.dir' : 'tiered.store';
    const sys = systemError(err);
    // The directory store creates its directories when it is built, so the raw error
    // arrives here; everything else comes classified from the store or the probe.
    if (field === 'tiered.store.dir' && sys?.path !== undefined) throw new StartupError(field, fsDetail(path.resolve(s.dir), sys), err);
    throw new StartupError(field, err instanceof Error ? err.message : String(err), err);
  }
}

/** The config path of the listener named `name`: kafka.listeners[i], or kafka for the single one. */
function listenerField(config: BrokerConfig, name: string | undefined): { prefix: string; host: string; port: number } {
  const i = config.kafka.listeners.findIndex((l) => l.name === name);
  if (i < 0) return { prefix: 'kafka', host: config.kafka.host, port: config.kafka.port };
  const l = config.kafka.listeners[i]!;
  return { prefix: `kafka.listeners[${i}]`, host: l.host, port: l.port };
}

function listenError(err: NodeJS.ErrnoException, config: BrokerConfig): StartupError {
  const { prefix, host, port } = listenerField(config, (err as { listener?: string }).listener);
  const at = `${host}:${port}`;
  switch (err.code) {
    case 'EADDRINUSE':
      return new StartupError(`${prefix}.port`, `${at} is already in use (EADDRINUSE); stop what listens there or choose another port`, err);
    case 'EACCES':
      return new StartupError(`${prefix}.port`, `no permission to listen on ${at} (EACCES); ports below 1024 need privileges`, err);
    case 'EADDRNOTAVAIL':
      return new StartupError(`${prefix}.host`, `${host} is not an address of this machine (EADDRNOTAVAIL)`, err);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StartupError(`${prefix}.host`, `${host} does not resolve to an address (${err.code})`, err);
    default:
      return new StartupError(`${prefix}.port`, `cannot listen on ${at}: ${err.message}`, err);
  }
}

/** A SASL listener with no mechanism enabled: nobody could log in, so the broker does not start. */
export function checkListenerProtocols(config: BrokerConfig): void {
  for (const [i, l] of config.kafka.listeners.entries()) {
    if (!usesSasl(l.securityProtocol) || config.security.sasl.mechanisms.length > 0) continue;
    throw new StartupError(
      'security.sasl.mechanisms',
      `listener ${l.name} (kafka.listeners[${i}]) is ${l.securityProtocol}, but no SASL mechanism is enabled: no client could authenticate. Enable SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN`,
      undefined,
    );
  }
}

/** A TLS listener whose certificate, key or CA file cannot be read or used. */
export function kafkaServerError(err: unknown, config: BrokerConfig): unknown {
  const name = (err as { listener?: string } | null)?.listener;
  const i = config.kafka.listeners.findIndex((l) => l.name === name);
  const l = config.kafka.listeners[i];
  if (l === undefined || l.tls === null) return err;
  if (err instanceof TlsFileError) return new StartupError(`kafka.listeners[${i}].tls.${err.field}`, err.message, err);
  // OpenSSL refused the files' contents: not PEM, or a key that does not match the certificate.
  return new StartupError(
    `kafka.listeners[${i}].tls`,
    `the certificate (${l.tls.certFile}), key (${l.tls.keyFile})${l.tls.caFile === null ? '' : ` or CA file (${l.tls.caFile})`} of listener ${l.name} cannot be used: ${(err as Error).message}`,
    err,
  );
}

/** Codes that mean the directory cannot be written, as opposed to an I/O failure inside it. */
const NOT_WRITABLE = new Set(['ENOTDIR', 'EEXIST', 'EACCES', 'EPERM', 'EROFS']);

function fsDetail(dir: string, err: NodeJS.ErrnoException): string {
  // A recursive mkdir on a read-only file system reports ENOENT, not EROFS.
  const notWritable = NOT_WRITABLE.has(err.code ?? '') || (err.code === 'ENOENT' && err.syscall === 'mkdir');
  return notWritable ? `${dir} is not a writable directory (${err.message})` : `cannot use ${dir}: ${err.message}`;
}

function systemError(err: unknown): NodeJS.ErrnoException | undefined {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && typeof (err as NodeJS.ErrnoException).syscall === 'string'
    ? (err as NodeJS.ErrnoException)
    : undefined;
}

function isUnder(file: string, dir: string): boolean {
  const rel = path.relative(dir, path.resolve(file));
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** The CLI prints one line per failure; causes from the OS or an SDK may carry newlines. */
function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, '; ');
}
