/**
 * The admin API listening on `admin.host`/`admin.port`: built by the broker after its Kafka
 * listener and replicator are up, closed first when the broker closes (no admin call runs
 * against a half-closed broker). `start` fails with a StartupError naming `admin.port` or
 * `admin.host`, as the Kafka listener's failures name `kafka.*`.
 *
 * With `admin.tls.certFile` and `keyFile` it serves HTTPS (TLS 1.2+). The files are read
 * with the Kafka listeners' TlsCredentials (protocol/kafka/tls-credentials.ts): a file that
 * cannot be read fails the start naming its field, one set without the other too; while
 * running they are checked every 10 s and a changed, valid pair is installed with
 * `setSecureContext` (new connections get it; a broken pair is logged and the old one kept).
 */
import type https from 'node:https';
import type { AddressInfo } from 'node:net';
import type tls from 'node:tls';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Broker } from '../broker/broker.js';
import { StartupError } from '../broker/startup-error.js';
import { DEFAULT_TLS_RELOAD_INTERVAL_MS } from '../config/listeners.js';
import type { AdminConfig } from '../config/schema.js';
import { secureContextOptions, TlsCredentials, TlsFileError } from '../protocol/kafka/tls-credentials.js';
import { buildAdminApp } from './app.js';
import { isLoopbackHost } from './auth.js';

export class AdminServer {
  readonly #app: FastifyInstance;
  readonly #tls: TlsCredentials | undefined;
  #closing: Promise<void> | undefined;

  private constructor(app: FastifyInstance, tlsFiles: TlsCredentials | undefined) {
    this.#app = app;
    this.#tls = tlsFiles;
  }

  static async start(broker: Broker, admin: AdminConfig & { port: number }, logger: Logger): Promise<AdminServer> {
    const log = logger.child({ component: 'admin' });
    const tlsFiles = adminTlsCredentials(admin, log);
    const secure = tlsFiles === undefined ? undefined : loadTls(tlsFiles, admin);
    if (secure === undefined && !isLoopbackHost(admin.host)) {
      log.warn({ host: admin.host }, 'the admin API serves plain HTTP off loopback: its token crosses the network in clear; set admin.tls.certFile and admin.tls.keyFile');
    }
    let server: AdminServer | undefined;
    const app = await buildAdminApp(broker, {
      token: admin.token,
      openReads: admin.openReads,
      address: () => server?.address ?? null,
      logger: log,
      ...(secure === undefined ? {} : { https: secure }),
    });
    server = new AdminServer(app, tlsFiles);
    try {
      await app.listen({ host: admin.host, port: admin.port });
    } catch (err) {
      await app.close();
      throw listenFailure(err, admin);
    }
    tlsFiles?.watch((options) => (app.server as unknown as https.Server).setSecureContext(options));
    return server;
  }

  /** `https` with admin.tls, else `http`. */
  get scheme(): 'http' | 'https' {
    return this.#tls === undefined ? 'http' : 'https';
  }

  get address(): { host: string; port: number } | null {
    const a = this.#app.server.address() as AddressInfo | string | null;
    return a === null || typeof a === 'string' ? null : { host: a.address, port: a.port };
  }

  get port(): number {
    return this.address?.port ?? 0;
  }

  close(): Promise<void> {
    this.#tls?.close();
    this.#closing ??= this.#app.close();
    return this.#closing;
  }
}

/** The admin.tls files as a TlsCredentials, or undefined for plain HTTP; one without the other fails. */
function adminTlsCredentials(admin: AdminConfig, log: Logger): TlsCredentials | undefined {
  const { certFile, keyFile } = admin.tls;
  if (certFile === null && keyFile === null) return undefined;
  if (certFile === null || keyFile === null) {
    const [missing, given] = certFile === null ? ['certFile', 'keyFile'] : ['keyFile', 'certFile'];
    throw new StartupError(`admin.tls.${missing}`, `admin.tls.${given} is set but admin.tls.${missing} is not: set both for HTTPS, or neither for plain HTTP`, undefined);
  }
  return new TlsCredentials({ certFile, keyFile, caFile: null, clientAuth: 'none', reloadIntervalMs: DEFAULT_TLS_RELOAD_INTERVAL_MS }, 'admin', log);
}

/** Reads the files once; a file that cannot be read names its field, a pair OpenSSL refuses names both. */
function loadTls(files: TlsCredentials, admin: AdminConfig): tls.SecureContextOptions {
  try {
    return secureContextOptions(files.load());
  } catch (err) {
    if (err instanceof TlsFileError) throw new StartupError(`admin.tls.${err.field}`, err.message, err);
    throw new StartupError('admin.tls', `the certificate (${admin.tls.certFile}) or key (${admin.tls.keyFile}) cannot be used: ${(err as Error).message}`, err);
  }
}

function listenFailure(err: unknown, admin: AdminConfig & { port: number }): StartupError {
  const at = `${admin.host}:${admin.port}`;
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EADDRINUSE':
      return new StartupError('admin.port', `${at} is already in use (EADDRINUSE); stop what listens there or choose another port`, err);
    case 'EACCES':
      return new StartupError('admin.port', `no permission to listen on ${at} (EACCES); ports below 1024 need privileges`, err);
    case 'EADDRNOTAVAIL':
      return new StartupError('admin.host', `${admin.host} is not an address of this machine (EADDRNOTAVAIL)`, err);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StartupError('admin.host', `${admin.host} does not resolve to an address (${code})`, err);
    default:
      return new StartupError('admin.port', `cannot listen on ${at}: ${(err as Error).message}`, err);
  }
}
