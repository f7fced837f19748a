/**
 * The certificate, key and CA files of one TLS listener, kept current while the broker runs.
 *
 * `load()` reads the three files (a failure names the file: the broker refuses to start).
 * `watch()` then stats them every `reloadIntervalMs`; when any changed (modification time,
 * size, inode: an atomic rename counts), they are read again and a new secure context is
 * built and handed to `onReload` (the server's `setSecureContext`): new connections get the
 * new certificate, open ones keep the session they negotiated. A reload that fails (a file
 * half written, a key that does not match its certificate, bad PEM) keeps the context in
 * use and logs a warning naming the files and OpenSSL's reason, never their contents; the
 * same files are not tried again until one of them changes once more.
 *
 * Also here: the principal of a TLS connection (`tlsPrincipal`), Kafka's
 * `User:<subject DN in RFC 2253 form>` for a verified client certificate, `User:ANONYMOUS`
 * otherwise.
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { ListenerTlsConfig } from '../../config/listeners.js';

export const ANONYMOUS = 'User:ANONYMOUS';

/** The TLS versions a listener accepts: 1.2 and later. */
export const MIN_TLS_VERSION = 'TLSv1.2' as const;

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
}

/** What a file must be read for; `field` is the listener's config field it comes from. */
export class TlsFileError extends Error {
  readonly field: 'certFile' | 'keyFile' | 'caFile';
  readonly file: string;

  constructor(field: 'certFile' | 'keyFile' | 'caFile', file: string, detail: string, cause?: unknown) {
    super(`${file}: ${detail}`, { cause });
    this.name = 'TlsFileError';
    this.field = field;
    this.file = file;
  }
}

function signature(files: readonly string[]): string {
  return files
    .map((f) => {
      try {
        const s = fs.statSync(f);
        return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code ?? 'ERR';
      }
    })
    .join('|');
}

function readFile(field: 'certFile' | 'keyFile' | 'caFile', file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const detail = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'not readable by the broker (EACCES)' : `cannot be read (${code ?? (err as Error).message})`;
    throw new TlsFileError(field, file, detail, err);
  }
}

/** The secure-context options of a listener's files: minimum TLS 1.2, and the client CAs. */
export function secureContextOptions(m: TlsMaterial): tls.SecureContextOptions {
  return { cert: m.cert, key: m.key, ...(m.ca === undefined ? {} : { ca: m.ca }), minVersion: MIN_TLS_VERSION };
}

export class TlsCredentials {
  readonly #cfg: ListenerTlsConfig;
  readonly #listener: string;
  readonly #logger: Logger | undefined;
  #signature = '';
  #timer: NodeJS.Timeout | undefined;
  #reloads = 0;
  #reloadFailures = 0;
  #material: TlsMaterial | undefined;

  constructor(cfg: ListenerTlsConfig, listener: string, logger?: Logger) {
    this.#cfg = cfg;
    this.#listener = listener;
    this.#logger = logger;
  }

  get files(): string[] {
    return [this.#cfg.certFile, this.#cfg.keyFile, ...(this.#cfg.caFile === null ? [] : [this.#cfg.caFile])];
  }

  /** Times the files were reloaded, and reloads that failed (the old context kept). */
  get reloads(): { done: number; failed: number } {
    return { done: this.#reloads, failed: this.#reloadFailures };
  }

  /** Reads the files and checks they make a context; throws TlsFileError or OpenSSL's error. */
  load(): TlsMaterial {
    const sig = signature(this.files);
    const m: TlsMaterial = {
      cert: readFile('certFile', this.#cfg.certFile),
      key: readFile('keyFile', this.#cfg.keyFile),
      ca: this.#cfg.caFile === null ? undefined : readFile('caFile', this.#cfg.caFile),
    };
    tls.createSecureContext(secureContextOptions(m));
    this.#signature = sig;
    this.#material = m;
    return m;
  }

  /** Checks the files every reloadIntervalMs and hands a changed, valid set to `onReload`. */
  watch(onReload: (options: tls.SecureContextOptions) => void): void {
    this.#timer = setInterval(() => this.check(onReload), this.#cfg.reloadIntervalMs).unref();
  }

  /** One check (the timer's; exposed for tests). True when a new context was installed. */
  check(onReload: (options: tls.SecureContextOptions) => void): boolean {
    const sig = signature(this.files);
    if (sig === this.#signature) return false;
    // Remembered before the attempt: a broken set is reported once, not at every tick.
    this.#signature = sig;
    let m: TlsMaterial;
    try {
      m = {
        cert: readFile('certFile', this.#cfg.certFile),
        key: readFile('keyFile', this.#cfg.keyFile),
        ca: this.#cfg.caFile === null ? undefined : readFile('caFile', this.#cfg.caFile),
      };
      const options = secureContextOptions(m);
      tls.createSecureContext(options);
      onReload(options);
    } catch (err) {
      this.#reloadFailures++;
      // The message is the file and OpenSSL's reason ("no start line", "key values
      // mismatch"); the PEM itself is never logged.
      this.#logger?.warn(
        { listener: this.#listener, files: this.files, reason: (err as Error).message, code: (err as NodeJS.ErrnoException).code },
        'TLS certificate files changed but cannot be used; the listener keeps the certificate it has',
      );
      return false;
    }
    this.#material = m;
    this.#reloads++;
    this.#logger?.info({ listener: this.#listener, certFile: this.#cfg.certFile, serial: certificateSerial(m.cert) }, 'TLS certificate reloaded');
    return true;
  }

  /** The serial number of the certificate in use (hex), for stats and logs. */
  get serial(): string | undefined {
    return this.#material === undefined ? undefined : certificateSerial(this.#material.cert);
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

function certificateSerial(pem: Buffer): string | undefined {
  try {
    return new X509Certificate(pem).serialNumber;
  } catch {
    return undefined;
  }
}

/**
 * A subject DN as OpenSSL prints it one RDN per line, most significant first ("C=US\nO=Acme\n
 * CN=alice", values already escaped as RFC 2253 wants), in RFC 2253 order and form: least
 * significant first, comma-separated, multi-valued RDNs joined by '+' ("CN=alice,O=Acme,C=US"),
 * which is what Kafka's default principal builder puts after "User:". Attributes beyond
 * RFC 2253's keywords keep OpenSSL's short names (emailAddress), where Java would print an OID.
 */
export function rfc2253(multiline: string): string {
  return multiline
    .split('\n')
    .filter((rdn) => rdn !== '')
    .map((rdn) => rdn.split(' + ').join('+'))
    .reverse()
    .join(',');
}

/** The principal of a TLS connection: its verified client certificate's subject, or anonymous. */
export function tlsPrincipal(socket: tls.TLSSocket): string {
  if (!socket.authorized) return ANONYMOUS;
  const cert = socket.getPeerX509Certificate();
  if (cert === undefined) return ANONYMOUS;
  const dn = rfc2253(cert.subject);
  return dn === '' ? ANONYMOUS : `User:${dn}`;
}
