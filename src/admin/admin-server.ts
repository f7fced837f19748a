/**
 * The admin API listening on `admin.host`/`admin.port`: built by the broker after its Kafka
 * listener and replicator are up, closed first when the broker closes (no admin call runs
 * against a half-closed broker). `start` fails with a StartupError naming `admin.port` or
 * `admin.host`, as the Kafka listener's failures name `kafka.*`.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Broker } from '../broker/broker.js';
import { StartupError } from '../broker/startup-error.js';
import type { AdminConfig } from '../config/schema.js';
import { buildAdminApp } from './app.js';

export class AdminServer {
  readonly #app: FastifyInstance;
  #closing: Promise<void> | undefined;

  private constructor(app: FastifyInstance) {
    this.#app = app;
  }

  static async start(broker: Broker, admin: AdminConfig & { port: number }, logger: Logger): Promise<AdminServer> {
    let server: AdminServer | undefined;
    const app = await buildAdminApp(broker, {
      token: admin.token,
      openReads: admin.openReads,
      address: () => server?.address ?? null,
      logger: logger.child({ component: 'admin' }),
    });
    server = new AdminServer(app);
    try {
      await app.listen({ host: admin.host, port: admin.port });
    } catch (err) {
      await app.close();
      throw listenFailure(err, admin);
    }
    return server;
  }

  get address(): { host: string; port: number } | null {
    const a = this.#app.server.address() as AddressInfo | string | null;
    return a === null || typeof a === 'string' ? null : { host: a.address, port: a.port };
  }

  get port(): number {
    return this.address?.port ?? 0;
  }

  close(): Promise<void> {
    this.#closing ??= this.#app.close();
    return this.#closing;
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
