/**
 * The Kafka listeners: `kafka.listeners`, a list of `{ name, host, port, securityProtocol,
 * advertisedHost?, advertisedPort?, tls? }`, checked in depth here (the schema only says it
 * is a list of mappings, as it does for replication.regions), so every error names the item
 * and field: `kafka.listeners[1].tls.certFile: ...`.
 *
 * An empty list (the default) means what Meridian always did: one PLAINTEXT listener named
 * PLAINTEXT on kafka.host and kafka.port, advertised as kafka.advertisedHost and
 * kafka.advertisedPort (`effectiveListeners`). With listeners set, those four fields must be
 * left alone: a value there would be silently ignored.
 *
 * Security protocols carry Kafka's names. SSL and SASL_SSL listeners need `tls.certFile` and
 * `tls.keyFile` (PEM); `tls.clientAuth` requested or required (mutual TLS) needs `tls.caFile`,
 * the CAs client certificates are verified against. Whether the files can be read is checked
 * when the broker starts, not here.
 */
import { parseUnit } from '../units.js';

export const SECURITY_PROTOCOLS = ['PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'] as const;
export type SecurityProtocol = (typeof SECURITY_PROTOCOLS)[number];

export const CLIENT_AUTH_MODES = ['none', 'requested', 'required'] as const;
export type ClientAuth = (typeof CLIENT_AUTH_MODES)[number];

/** How often certificate files are checked for changes unless a listener says otherwise. */
export const DEFAULT_TLS_RELOAD_INTERVAL_MS = 10_000;

export interface ListenerTlsConfig {
  /** PEM certificate chain of the broker (leaf first). */
  readonly certFile: string;
  /** PEM private key of that certificate. Never logged. */
  readonly keyFile: string;
  /** PEM CA certificates client certificates are verified against; null: none (no mTLS). */
  readonly caFile: string | null;
  /** none: no client certificate asked; requested: asked, optional; required: mutual TLS. */
  readonly clientAuth: ClientAuth;
  /** How often the three files are checked for changes (they are reloaded in place). */
  readonly reloadIntervalMs: number;
}

export interface ListenerConfig {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly securityProtocol: SecurityProtocol;
  /** null: advertise `host`. */
  readonly advertisedHost: string | null;
  /** null: advertise the bound port. */
  readonly advertisedPort: number | null;
  /** Set exactly for SSL and SASL_SSL listeners. */
  readonly tls: ListenerTlsConfig | null;
}

export class ListenerError extends Error {
  /** Dotted path of the offending field, e.g. kafka.listeners[1].tls.certFile. */
  readonly path: string;

  constructor(path: string, detail: string) {
    super(`${path}: ${detail}`);
    this.name = 'ListenerError';
    this.path = path;
  }
}

const WILDCARDS = new Set(['0.0.0.0', '::', '[::]', '0:0:0:0:0:0:0:0']);
const NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const LISTENER_FIELDS = ['name', 'host', 'port', 'securityProtocol', 'advertisedHost', 'advertisedPort', 'tls'];
const TLS_FIELDS = ['certFile', 'keyFile', 'caFile', 'clientAuth', 'reloadIntervalMs'];

export function usesTls(protocol: SecurityProtocol): boolean {
  return protocol === 'SSL' || protocol === 'SASL_SSL';
}

export function usesSasl(protocol: SecurityProtocol): boolean {
  return protocol === 'SASL_PLAINTEXT' || protocol === 'SASL_SSL';
}

function render(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object' && value !== null) return 'a mapping';
  return JSON.stringify(value);
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function unknownFields(obj: Record<string, unknown>, known: readonly string[], at: string): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) throw new ListenerError(`${at}.${key}`, `unknown field, expected one of ${known.join(', ')}`);
  }
}

function nonEmptyString(value: unknown, at: string, what = 'a non-empty string'): string {
  if (typeof value !== 'string' || value.trim() === '') throw new ListenerError(at, `expected ${what}, got ${render(value)}`);
  return value;
}

function optionalPort(value: unknown, at: string, min: number): number | null {
  if (value === undefined || value === null) return null;
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > 65535) throw new ListenerError(at, `expected an integer from ${min} to 65535, got ${render(value)}`);
  return value as number;
}

function parseTls(raw: unknown, at: string): ListenerTlsConfig {
  if (!isMapping(raw)) throw new ListenerError(at, `expected a mapping with certFile and keyFile (PEM files), since the listener's security protocol uses TLS, got ${render(raw)}`);
  unknownFields(raw, TLS_FIELDS, at);
  const certFile = nonEmptyString(raw.certFile, `${at}.certFile`, 'the path of the PEM certificate (chain) of the broker');
  const keyFile = nonEmptyString(raw.keyFile, `${at}.keyFile`, 'the path of the PEM private key of the broker\'s certificate');
  const caFile = raw.caFile === undefined || raw.caFile === null ? null : nonEmptyString(raw.caFile, `${at}.caFile`, 'the path of a PEM file of CA certificates, or null');
  const clientAuth = raw.clientAuth === undefined ? 'none' : raw.clientAuth;
  if (!(CLIENT_AUTH_MODES as readonly unknown[]).includes(clientAuth)) throw new ListenerError(`${at}.clientAuth`, `expected one of ${CLIENT_AUTH_MODES.join(', ')}, got ${render(clientAuth)}`);
  if (clientAuth !== 'none' && caFile === null) {
    throw new ListenerError(`${at}.caFile`, `expected the path of a PEM file of the CAs that sign client certificates, since clientAuth is ${String(clientAuth)}, got null`);
  }
  let reloadIntervalMs = DEFAULT_TLS_RELOAD_INTERVAL_MS;
  if (raw.reloadIntervalMs !== undefined) {
    const ms = typeof raw.reloadIntervalMs === 'number' || typeof raw.reloadIntervalMs === 'string' ? parseUnit('duration', raw.reloadIntervalMs) : undefined;
    if (ms === undefined || ms < 100 || ms > 2 ** 31 - 1) {
      throw new ListenerError(`${at}.reloadIntervalMs`, `expected a duration such as 10s or a number of milliseconds, at least 100ms, got ${render(raw.reloadIntervalMs)}`);
    }
    reloadIntervalMs = ms;
  }
  return { certFile, keyFile, caFile, clientAuth: clientAuth as ClientAuth, reloadIntervalMs };
}

function parseListener(raw: unknown, at: string): ListenerConfig {
  if (!isMapping(raw)) throw new ListenerError(at, `expected a mapping { name, host, port, securityProtocol, ... }, got ${render(raw)}`);
  unknownFields(raw, LISTENER_FIELDS, at);
  const name = nonEmptyString(raw.name, `${at}.name`, 'a listener name of letters, digits and underscores, starting with a letter (e.g. INTERNAL)');
  if (!NAME.test(name)) throw new ListenerError(`${at}.name`, `expected a listener name of letters, digits and underscores, starting with a letter, at most 64 characters (e.g. INTERNAL), got ${render(name)}`);
  const host = nonEmptyString(raw.host, `${at}.host`, 'the address to listen on (0.0.0.0 or :: for every interface)');
  if (!Number.isInteger(raw.port) || (raw.port as number) < 0 || (raw.port as number) > 65535) {
    throw new ListenerError(`${at}.port`, `expected an integer from 0 to 65535 (0 picks a free port), got ${render(raw.port)}`);
  }
  // As in Kafka, a listener named after a protocol uses that protocol unless told otherwise.
  const protocol = raw.securityProtocol ?? ((SECURITY_PROTOCOLS as readonly string[]).includes(name) ? name : undefined);
  if (!(SECURITY_PROTOCOLS as readonly unknown[]).includes(protocol)) {
    throw new ListenerError(`${at}.securityProtocol`, `expected one of ${SECURITY_PROTOCOLS.join(', ')}, got ${render(protocol)}`);
  }
  const securityProtocol = protocol as SecurityProtocol;
  let advertisedHost: string | null = null;
  if (raw.advertisedHost !== undefined && raw.advertisedHost !== null) {
    advertisedHost = nonEmptyString(raw.advertisedHost, `${at}.advertisedHost`, 'a host name or address that clients can connect to, or null to use host');
    if (WILDCARDS.has(advertisedHost)) {
      throw new ListenerError(`${at}.advertisedHost`, `expected a host name or address that clients can connect to, or null to use host (not a wildcard such as 0.0.0.0 or ::, which clients cannot reach), got ${render(advertisedHost)}`);
    }
  } else if (WILDCARDS.has(host)) {
    throw new ListenerError(`${at}.advertisedHost`, `expected a host name or address that clients can connect to, because host is ${host} (every interface, which clients cannot connect to), got null`);
  }
  const advertisedPort = optionalPort(raw.advertisedPort, `${at}.advertisedPort`, 1);
  let tls: ListenerTlsConfig | null = null;
  if (usesTls(securityProtocol)) {
    tls = parseTls(raw.tls, `${at}.tls`);
  } else if (raw.tls !== undefined && raw.tls !== null) {
    throw new ListenerError(`${at}.tls`, `expected no tls settings, since securityProtocol ${securityProtocol} does not use TLS (use SSL or SASL_SSL), got ${render(raw.tls)}`);
  }
  return { name, host, port: raw.port as number, securityProtocol, advertisedHost, advertisedPort, tls };
}

/** Whether two listeners would bind the same address: same port, and same host or a wildcard. */
function collide(a: ListenerConfig, b: ListenerConfig): boolean {
  if (a.port === 0 || a.port !== b.port) return false;
  return a.host === b.host || WILDCARDS.has(a.host) || WILDCARDS.has(b.host);
}

/** Checks and completes `kafka.listeners`; throws a ListenerError naming the offending field. */
export function parseListeners(raw: unknown, at = 'kafka.listeners'): ListenerConfig[] {
  if (!Array.isArray(raw)) throw new ListenerError(at, `expected a list, got ${render(raw)}`);
  const out: ListenerConfig[] = [];
  for (const [i, item] of raw.entries()) {
    const l = parseListener(item, `${at}[${i}]`);
    for (const [j, other] of out.entries()) {
      if (other.name.toUpperCase() === l.name.toUpperCase()) {
        throw new ListenerError(`${at}[${i}].name`, `expected a name no other listener has (listener names are unique, case-insensitively), got ${render(l.name)}, the name of ${at}[${j}]`);
      }
      if (collide(other, l)) {
        throw new ListenerError(`${at}[${i}].port`, `expected a port no other listener on ${l.host} uses, got ${l.port}, which ${at}[${j}] (${other.name}, ${other.host}) listens on already`);
      }
    }
    out.push(l);
  }
  return out;
}

/**
 * The listeners the broker serves: `kafka.listeners`, or when that is empty the one
 * PLAINTEXT listener of kafka.host and kafka.port (Meridian's behaviour before listeners).
 */
export function effectiveListeners(kafka: {
  readonly host: string;
  readonly port: number;
  readonly advertisedHost: string | null;
  readonly advertisedPort: number | null;
  readonly listeners: readonly ListenerConfig[];
}): readonly ListenerConfig[] {
  if (kafka.listeners.length > 0) return kafka.listeners;
  return [{ name: 'PLAINTEXT', host: kafka.host, port: kafka.port, securityProtocol: 'PLAINTEXT', advertisedHost: kafka.advertisedHost, advertisedPort: kafka.advertisedPort, tls: null }];
}
