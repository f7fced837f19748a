/**
 * One connection from this region to a remote region's Kafka port, shared by every worker
 * of that link (and by disaster recovery's offset sync and probes). Requests are pipelined
 * and matched to responses by correlation id. Any failure (connect error, reset, timeout,
 * garbled response) destroys the connection and fails every request in flight on it; the
 * next request connects again. Workers treat a failure as "progress unknown" and ask the
 * remote where to resume, so nothing here needs to retry.
 *
 * Secured links (`LinkSecurityConfig`: replication.tls and replication.sasl, which a region
 * of the registry may override):
 * - TLS (node:tls) verifies the remote's certificate against `caFile` (the system's CAs when
 *   null) and the name `serverName` (the host of the address when null), TLS 1.2 at least;
 *   `certFile`/`keyFile` add a client certificate (mutual TLS). The files are read at each
 *   connect, so a corrected file takes effect at the next attempt, without a restart.
 * - SASL: SaslHandshake v1, then SaslAuthenticate v1 with PLAIN or SCRAM-SHA-256/512 (the
 *   server's signature is verified: security/scram-client.ts). A connection is handed to
 *   requests only once authenticated. When the remote gives the session a lifetime
 *   (KIP-368), the connection retires at 80% of it: a fresh, freshly authenticated
 *   connection takes the next requests once the old one's are answered (requests stay in
 *   order), and the old one closes, so an expiring session never breaks the link.
 * Failures are MeridianErrors naming the region and what to check; none holds the password.
 */
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { LinkSecurityConfig } from '../config/schema.js';
import { ErrorCode, MeridianError } from '../errors.js';
import { ApiKey } from '../protocol/kafka/api-keys.js';
import { kafkaErrorByCode } from '../protocol/kafka/error-codes.js';
import { FrameDecoder } from '../protocol/kafka/frame-decoder.js';
import { decodeSaslAuthenticateResponse, encodeSaslAuthenticateRequest, type SaslAuthenticateResponse } from '../protocol/kafka/messages/sasl-authenticate.js';
import { decodeSaslHandshakeResponse, encodeSaslHandshakeRequest } from '../protocol/kafka/messages/sasl-handshake.js';
import { Reader } from '../protocol/kafka/reader.js';
import { Writer } from '../protocol/kafka/writer.js';
import { ScramClient } from '../security/scram-client.js';
import { isScramMechanism } from '../security/scram.js';

export interface LinkClientOptions {
  address: string;
  clientId: string;
  /** The remote region's name, for messages ("region eu-west refused ..."). */
  remote?: string;
  /** TLS and SASL of the link; absent: plain TCP, no SASL. */
  security?: LinkSecurityConfig;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  maxFrameBytes?: number;
}

interface InFlight {
  resolve: (r: Reader) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** Node's codes for a certificate that does not verify (tls.connect with rejectUnauthorized). */
const CERTIFICATE_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The share of a SASL session's lifetime after which its connection takes no new requests. */
const RETIRE_AT = 0.8;

/** One socket and the requests waiting on it. */
class Connection {
  readonly socket: net.Socket;
  readonly frames: FrameDecoder;
  readonly inFlight = new Map<number, InFlight>();
  /** Takes no new requests (its SASL session is ending); closes when the last is answered. */
  retiring = false;
  /** A response (any) has arrived on it: a close before one may be a listener refusing the link. */
  answered = false;
  dead = false;
  retireTimer: NodeJS.Timeout | undefined;
  /** Settles when the connection is gone (closed, failed or drained after retiring). */
  readonly gone: Promise<void>;
  markGone!: () => void;

  constructor(socket: net.Socket, maxFrameBytes: number) {
    this.socket = socket;
    this.frames = new FrameDecoder({ maxFrameBytes });
    this.gone = new Promise<void>((r) => (this.markGone = r));
  }
}

export class LinkClient {
  readonly address: string;
  #opts: Required<Omit<LinkClientOptions, 'remote' | 'security'>>;
  #security: LinkSecurityConfig | undefined;
  /** "region eu-west (10.0.0.2:9092)", or the address alone. */
  #name: string;
  #remote: string;
  #current: Connection | undefined;
  #connecting: Promise<Connection> | undefined;
  #open = new Set<Connection>();
  #nextId = 1;
  #closed = false;

  constructor(opts: LinkClientOptions) {
    this.address = opts.address;
    this.#security = opts.security;
    this.#remote = opts.remote ?? opts.address;
    this.#name = opts.remote === undefined ? opts.address : `region ${opts.remote} (${opts.address})`;
    this.#opts = {
      address: opts.address,
      clientId: opts.clientId,
      connectTimeoutMs: opts.connectTimeoutMs ?? 5000,
      requestTimeoutMs: opts.requestTimeoutMs ?? 30_000,
      maxFrameBytes: opts.maxFrameBytes ?? 64 * 1024 * 1024,
    };
  }

  get connected(): boolean {
    return this.#current !== undefined;
  }

  async request(apiKey: number, version: number, body: (w: Writer) => void): Promise<Reader> {
    if (this.#closed) throw new MeridianError(ErrorCode.Aborted, `link to ${this.address} is closed`);
    return this.#send(await this.#connect(), apiKey, version, body);
  }

  close(): void {
    this.#closed = true;
    for (const conn of [...this.#open]) this.#fail(conn, new MeridianError(ErrorCode.Aborted, `link to ${this.address} closed`));
  }

  #send(conn: Connection, apiKey: number, version: number, body: (w: Writer) => void): Promise<Reader> {
    const correlationId = this.#nextId++ & 0x7fffffff;
    // Batches of 16 KiB and more go out as their own chunks, uncopied; the size prefix is
    // therefore a separate buffer written once the length is known.
    const w = new Writer(4096, { zeroCopyFrom: 16 * 1024 });
    w.int16(apiKey).int16(version).int32(correlationId).string(this.#opts.clientId);
    body(w);
    const size = Buffer.allocUnsafe(4);
    size.writeInt32BE(w.length, 0);
    return new Promise<Reader>((resolve, reject) => {
      if (conn.dead) return reject(new MeridianError(ErrorCode.LinkUnreachable, `connection to ${this.address} closed`));
      const timer = setTimeout(() => this.#fail(conn, new MeridianError(ErrorCode.LinkUnreachable, `no answer from ${this.address} within ${this.#opts.requestTimeoutMs} ms`)), this.#opts.requestTimeoutMs);
      conn.inFlight.set(correlationId, { resolve, reject, timer });
      conn.socket.cork();
      conn.socket.write(size);
      for (const chunk of w.toBuffers()) conn.socket.write(chunk);
      conn.socket.uncork();
    });
  }

  #connect(): Promise<Connection> {
    if (this.#current !== undefined) return Promise.resolve(this.#current);
    this.#connecting ??= this.#establish().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  /** Connects (TLS when enabled) and authenticates (SASL when set); only then do requests use it. */
  async #establish(): Promise<Connection> {
    const conn = await this.#dial();
    try {
      const lifetimeMs = await this.#authenticate(conn);
      // Requests reach the remote in the order sent: a worker's pipeline split over a
      // retiring connection and this one could arrive out of order, so this one takes
      // requests once the retiring ones are answered.
      await Promise.all([...this.#open].filter((c) => c.retiring).map((c) => c.gone));
      if (this.#closed) throw new MeridianError(ErrorCode.Aborted, `link to ${this.address} is closed`);
      this.#current = conn;
      if (lifetimeMs > 0) conn.retireTimer = setTimeout(() => this.#retire(conn), Math.max(1, Math.floor(lifetimeMs * RETIRE_AT))).unref();
      return conn;
    } catch (err) {
      this.#fail(conn, err as Error);
      throw err;
    }
  }

  #dial(): Promise<Connection> {
    const [host, port] = splitAddress(this.address);
    const tlsOptions = this.#security?.tls.enabled ? this.#tlsOptions(host) : undefined;
    return new Promise<Connection>((resolve, reject) => {
      const socket = tlsOptions === undefined ? net.connect({ host, port, noDelay: true }) : tls.connect({ host, port, ...tlsOptions });
      const timer = setTimeout(() => socket.destroy(new Error(`connect timed out after ${this.#opts.connectTimeoutMs} ms`)), this.#opts.connectTimeoutMs);
      const onError = (err: Error) => {
        clearTimeout(timer);
        reject(this.#connectError(err));
      };
      socket.once('error', onError);
      socket.once(tlsOptions === undefined ? 'connect' : 'secureConnect', () => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        if (this.#closed) {
          socket.destroy();
          return reject(new MeridianError(ErrorCode.Aborted, `link to ${this.address} is closed`));
        }
        socket.setNoDelay(true);
        resolve(this.#adopt(socket));
      });
    });
  }

  #adopt(socket: net.Socket): Connection {
    const conn = new Connection(socket, this.#opts.maxFrameBytes);
    this.#open.add(conn);
    socket.on('data', (d: Buffer) => this.#onData(conn, d));
    socket.on('close', () => this.#fail(conn, new MeridianError(ErrorCode.LinkUnreachable, `connection to ${this.address} closed${conn.answered ? '' : this.#closedUnansweredHint()}`)));
    socket.on('error', (err) => this.#fail(conn, new MeridianError(ErrorCode.LinkUnreachable, `connection to ${this.address} failed: ${err.message}`, { cause: err })));
    return conn;
  }

  #tlsOptions(host: string): tls.ConnectionOptions {
    const t = this.#security!.tls;
    if ((t.certFile === null) !== (t.keyFile === null)) {
      throw new MeridianError(ErrorCode.BadConfig, `the link to ${this.#name} has tls.${t.certFile === null ? 'keyFile' : 'certFile'} without tls.${t.certFile === null ? 'certFile' : 'keyFile'}: a client certificate needs both`);
    }
    return {
      ca: t.caFile === null ? undefined : this.#readFile(t.caFile, 'caFile'),
      cert: t.certFile === null ? undefined : this.#readFile(t.certFile, 'certFile'),
      key: t.keyFile === null ? undefined : this.#readFile(t.keyFile, 'keyFile'),
      // SNI carries names only: an IP address is checked against the certificate without it.
      servername: t.serverName ?? (net.isIP(host) === 0 ? host : undefined),
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
    };
  }

  #readFile(file: string, field: string): Buffer {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new MeridianError(ErrorCode.BadConfig, `the link to ${this.#name}: cannot read tls.${field} ${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Why a remote might close a connection before answering anything: a SASL listener closes
   * one that sends a request before authenticating, a TLS listener one that speaks plaintext.
   * Said only where this link lacks the setting that would explain it.
   */
  #closedUnansweredHint(): string {
    const missing = [this.#security?.sasl.mechanism == null ? 'replication.sasl (a SASL_PLAINTEXT or SASL_SSL listener closes a connection that does not authenticate)' : null, this.#security?.tls.enabled ? null : 'replication.tls (an SSL or SASL_SSL listener closes a plaintext connection)'].filter((x) => x !== null);
    return missing.length === 0 ? ' before answering' : ` before answering: if ${this.#name}'s listener needs it, set ${missing.join(', or ')} for this link`;
  }

  #connectError(err: Error): MeridianError {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== undefined && CERTIFICATE_ERRORS.has(code)) {
      const checked = this.#security?.tls.serverName ?? splitAddress(this.address)[0];
      return new MeridianError(
        ErrorCode.LinkUnreachable,
        `TLS with ${this.#name} failed: its certificate did not verify (${code}: ${err.message}); check the link's tls.caFile (the CA that signed the remote's certificate) and that the certificate names ${checked}`,
        { cause: err },
      );
    }
    return new MeridianError(ErrorCode.LinkUnreachable, `cannot connect to ${this.address}: ${err.message}`, { cause: err });
  }

  /** SASL on a fresh connection; resolves with the session's lifetime (0: unlimited, or no SASL). */
  async #authenticate(conn: Connection): Promise<number> {
    const sasl = this.#security?.sasl;
    if (sasl === undefined || sasl.mechanism === null) return 0;
    const { mechanism, username, password } = sasl;
    if (username === null || password === null) {
      throw new MeridianError(ErrorCode.BadConfig, `the link to ${this.#name} uses SASL ${mechanism} but has no ${username === null ? 'sasl.username' : 'sasl.password'} (set it in replication.sasl or the region's sasl)`);
    }
    if (mechanism === 'PLAIN' && !this.#security!.tls.enabled) {
      throw new MeridianError(ErrorCode.BadConfig, `the link to ${this.#name} would send its PLAIN password in clear: enable tls on the link, or use SCRAM`);
    }
    const hs = decodeSaslHandshakeResponse(await this.#send(conn, ApiKey.SaslHandshake, 1, (w) => encodeSaslHandshakeRequest(w, 1, { mechanism })), 1);
    if (hs.errorCode !== 0) {
      const offered = hs.mechanisms.length > 0 ? `it offers ${hs.mechanisms.join(', ')}` : 'its listener does not use SASL';
      throw new MeridianError(ErrorCode.UnsupportedSaslMechanism, `${this.#name} refused SASL ${mechanism} (${kafkaErrorByCode(hs.errorCode)?.name ?? hs.errorCode}): ${offered}`);
    }
    const step = async (authBytes: Buffer): Promise<SaslAuthenticateResponse> => {
      const r = decodeSaslAuthenticateResponse(await this.#send(conn, ApiKey.SaslAuthenticate, 1, (w) => encodeSaslAuthenticateRequest(w, 1, { authBytes })), 1);
      if (r.errorCode !== 0) {
        throw new MeridianError(ErrorCode.SaslAuthenticationFailed, `region ${this.#remote} refused this region's credentials (user ${username}, ${mechanism}): ${r.errorMessage ?? kafkaErrorByCode(r.errorCode)?.name ?? r.errorCode}`);
      }
      return r;
    };
    let last: SaslAuthenticateResponse;
    if (isScramMechanism(mechanism)) {
      const scram = new ScramClient(mechanism, username, password);
      const first = await step(scram.first());
      last = await step(scram.final(first.authBytes));
      scram.verify(last.authBytes);
    } else {
      last = await step(Buffer.from(`\0${username}\0${password}`, 'utf8'));
    }
    return Number(last.sessionLifetimeMs);
  }

  /** The session is ending: new requests open a new connection; this one closes once drained. */
  #retire(conn: Connection): void {
    conn.retiring = true;
    if (this.#current === conn) this.#current = undefined;
    if (conn.inFlight.size === 0) this.#fail(conn, new MeridianError(ErrorCode.Aborted, `connection to ${this.address} retired`));
  }

  #onData(conn: Connection, d: Buffer): void {
    // A chunk that arrives after the connection failed belongs to no request any more.
    if (conn.dead) return;
    let bodies: Buffer[];
    try {
      bodies = conn.frames.push(d);
    } catch (err) {
      this.#fail(conn, new MeridianError(ErrorCode.LinkUnreachable, `garbled response from ${this.address}: ${(err as Error).message}`, { retriable: true, cause: err }));
      return;
    }
    if (bodies.length > 0) conn.answered = true;
    for (const body of bodies) {
      if (body.length < 4) {
        this.#fail(conn, new MeridianError(ErrorCode.LinkUnreachable, `garbled response from ${this.address} (frame of ${body.length} bytes)`));
        return;
      }
      const r = new Reader(body);
      const id = r.int32('correlation_id');
      const waiter = conn.inFlight.get(id);
      if (waiter === undefined) continue; // answered after a timeout gave up on it
      conn.inFlight.delete(id);
      clearTimeout(waiter.timer);
      waiter.resolve(r);
    }
    if (conn.retiring && conn.inFlight.size === 0) this.#fail(conn, new MeridianError(ErrorCode.Aborted, `connection to ${this.address} retired`));
  }

  #fail(conn: Connection, err: Error): void {
    if (conn.dead) return;
    conn.dead = true;
    this.#open.delete(conn);
    if (this.#current === conn) this.#current = undefined;
    clearTimeout(conn.retireTimer);
    conn.markGone();
    conn.frames.discard();
    conn.socket.destroy();
    const waiting = [...conn.inFlight.values()];
    conn.inFlight.clear();
    for (const w of waiting) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }
}

export function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i), Number(address.slice(i + 1))];
}
