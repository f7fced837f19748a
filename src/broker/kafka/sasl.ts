/**
 * SASL authentication on SASL_PLAINTEXT and SASL_SSL listeners: SaslHandshake (v1) and
 * SaslAuthenticate (v0-2), as Kafka's SaslServerAuthenticator serves them, with PLAIN and
 * SCRAM-SHA-256/512 (src/security).
 *
 * - Before authentication a connection may send ApiVersions, SaslHandshake and
 *   SaslAuthenticate only; anything else closes it (`saslGate`, ILLEGAL_SASL_STATE in the
 *   log), as Kafka does. SaslHandshake v0 (unframed tokens) is not served: Kafka 4 removed it.
 * - A handshake names a mechanism the listener offers or gets UNSUPPORTED_SASL_MECHANISM
 *   with the list, and the connection closes. SaslAuthenticate carries the mechanism's
 *   messages; a failure (wrong password, unknown user: the same answer) is answered with
 *   SASL_AUTHENTICATION_FAILED after a delay that doubles with each recent failure from the
 *   same address (`security.sasl.failureDelayMs`), and the connection closes.
 * - Success makes the connection's principal `User:<name>`, and with
 *   `security.sasl.reauthMs` set tells v1+ clients the session's lifetime (KIP-368). The
 *   client re-authenticates on the same connection (a new handshake with the same mechanism,
 *   keeping its principal) before it ends; a connection that sends anything else after the
 *   end is closed.
 * - On a listener without SASL, both requests get ILLEGAL_SASL_STATE (Kafka's KafkaApis).
 *
 * Each outcome is logged with the user name and address, never a password or SASL message.
 */
import { usesSasl } from '../../config/listeners.js';
import type { SaslMechanismName } from '../../config/schema.js';
import { ErrorCode, MeridianError } from '../../errors.js';
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import type { RequestContext } from '../../protocol/kafka/connection.js';
import { kafkaCode, toKafkaError } from '../../protocol/kafka/error-mapping.js';
import type { SaslAuthenticateRequest, SaslAuthenticateResponse } from '../../protocol/kafka/messages/sasl-authenticate.js';
import type { SaslHandshakeRequest, SaslHandshakeResponse } from '../../protocol/kafka/messages/sasl-handshake.js';
import type { BrokerSecurity } from '../../security/broker-security.js';
import { authenticatePlain, parsePlainMessage, PLAIN_MECHANISM } from '../../security/plain.js';
import { isScramMechanism, type ScramServer } from '../../security/scram.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';

/** The exchange on a connection: kept on `session.sasl`. */
interface SaslState {
  /** handshaken: a mechanism is chosen, its messages are expected; done: authenticated with it. */
  step: 'handshaken' | 'done';
  mechanism: SaslMechanismName;
  scram: ScramServer | undefined;
  /** The handshake came on an authenticated connection (KIP-368). */
  reauthentication: boolean;
}

const EMPTY: Buffer = Buffer.alloc(0);

/** Requests a connection may send before it has authenticated. */
const BEFORE_AUTH: ReadonlySet<number> = new Set([ApiKey.ApiVersions, ApiKey.SaslHandshake, ApiKey.SaslAuthenticate]);

/**
 * Throws (closing the connection) for a request its SASL state does not allow: anything but
 * ApiVersions and SASL before authentication, anything but re-authentication once the
 * session has expired.
 */
export function saslGate(ctx: RequestContext): void {
  const s = ctx.session;
  const apiKey = ctx.header.apiKey;
  if (BEFORE_AUTH.has(apiKey)) return;
  if (!s.authenticated) {
    throw new MeridianError(ErrorCode.IllegalSaslState, `request (API key ${apiKey}) before SASL authentication on listener ${s.listener}: only ApiVersions, SaslHandshake and SaslAuthenticate are allowed until then`);
  }
  if (s.expiresAt > 0 && Date.now() >= s.expiresAt) {
    throw new MeridianError(ErrorCode.IllegalSaslState, `SASL session of ${s.principal} expired (security.sasl.reauthMs) without re-authentication`);
  }
}

function enabled(security: BrokerSecurity | undefined): readonly SaslMechanismName[] {
  return security?.mechanisms ?? [];
}

function handshake(deps: KafkaApiDeps, ctx: RequestContext, req: SaslHandshakeRequest): SaslHandshakeResponse {
  const s = ctx.session;
  const mechanisms = [...enabled(deps.security)];
  const security = deps.security;
  if (!usesSasl(s.securityProtocol) || security === undefined) return { errorCode: kafkaCode('ILLEGAL_SASL_STATE'), mechanisms: [] };
  const prev = s.sasl as SaslState | undefined;
  if (prev?.step === 'handshaken') {
    // A second handshake in the middle of an exchange.
    ctx.closeAfterResponse();
    return { errorCode: kafkaCode('ILLEGAL_SASL_STATE'), mechanisms };
  }
  const mechanism = mechanisms.find((m) => m === req.mechanism);
  const reauthentication = s.authenticated;
  if (mechanism === undefined || (reauthentication && prev !== undefined && prev.mechanism !== mechanism)) {
    deps.logger.warn({ listener: s.listener, remote: ctx.clientHost, mechanism: req.mechanism, offered: mechanisms, reauthentication }, 'SASL handshake refused: mechanism not offered (or not the one the session began with)');
    ctx.closeAfterResponse();
    return { errorCode: kafkaCode('UNSUPPORTED_SASL_MECHANISM'), mechanisms };
  }
  s.sasl = {
    step: 'handshaken',
    mechanism,
    scram: isScramMechanism(mechanism) ? security.credentials.scramServer(mechanism) : undefined,
    reauthentication,
  } satisfies SaslState;
  return { errorCode: 0, mechanisms };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** The user name a PLAIN message gives, for the log; undefined when it does not parse. */
function plainUser(bytes: Buffer): string | undefined {
  try {
    return parsePlainMessage(bytes).authcid;
  } catch {
    return undefined;
  }
}

async function authenticate(deps: KafkaApiDeps, ctx: RequestContext, req: SaslAuthenticateRequest): Promise<SaslAuthenticateResponse> {
  const s = ctx.session;
  const security = deps.security;
  const st = s.sasl as SaslState | undefined;
  const refuse = (message: string): SaslAuthenticateResponse => {
    ctx.closeAfterResponse();
    return { errorCode: kafkaCode('ILLEGAL_SASL_STATE'), errorMessage: message, authBytes: EMPTY, sessionLifetimeMs: 0n };
  };
  if (!usesSasl(s.securityProtocol) || security === undefined) return { errorCode: kafkaCode('ILLEGAL_SASL_STATE'), errorMessage: `listener ${s.listener} does not use SASL`, authBytes: EMPTY, sessionLifetimeMs: 0n };
  if (st === undefined || st.step !== 'handshaken') return refuse('SaslAuthenticate without a SaslHandshake first');
  const remote = `${ctx.clientHost}`;
  let user: string | undefined;
  try {
    let response: Buffer = EMPTY;
    if (st.mechanism === PLAIN_MECHANISM) {
      user = plainUser(req.authBytes);
      user = authenticatePlain(req.authBytes, (u, p) => security.credentials.verifyPassword(u, p)).principal;
    } else {
      const r = st.scram!.step(req.authBytes);
      user = st.scram!.user;
      if (!r.done) return { errorCode: 0, errorMessage: null, authBytes: r.response, sessionLifetimeMs: 0n };
      response = r.response;
      user = r.principal!;
    }
    const principal = `User:${user}`;
    if (st.reauthentication && principal !== s.principal) {
      throw new MeridianError(ErrorCode.SaslAuthenticationFailed, `a re-authentication must keep the connection's principal (${s.principal})`);
    }
    const reauthMs = security.config.sasl.reauthMs;
    s.principal = principal;
    s.authenticated = true;
    s.expiresAt = reauthMs > 0 ? Date.now() + reauthMs : 0;
    s.sasl = { ...st, step: 'done', scram: undefined } satisfies SaslState;
    security.failures.succeed(ctx.clientHost);
    security.audit('succeeded', { principal, mechanism: st.mechanism, listener: s.listener, remote, reauthentication: st.reauthentication });
    return { errorCode: 0, errorMessage: null, authBytes: response, sessionLifetimeMs: BigInt(reauthMs) };
  } catch (err) {
    if (!(err instanceof MeridianError)) throw err;
    user ??= st.scram?.user;
    const delayMs = security.failures.fail(ctx.clientHost);
    security.audit('failed', { ...(user === undefined ? {} : { user }), mechanism: st.mechanism, listener: s.listener, remote, reauthentication: st.reauthentication, reason: err.message, delayMs });
    await sleep(delayMs, ctx.signal);
    ctx.closeAfterResponse();
    const e = toKafkaError(err);
    return { errorCode: e.code, errorMessage: e.message, authBytes: EMPTY, sessionLifetimeMs: 0n };
  }
}

export const SASL_APIS: readonly KafkaApiEntry[] = [
  // Advertised from v0: librdkafka turns SASL on only when the announced range includes v0
  // (else "SASL Handshake not supported by broker"), then sends v1. A v0 request is refused.
  { key: ApiKey.SaslHandshake, versions: [1, 1], advertised: [0, 1], handle: (d, c, req) => handshake(d, c, req) },
  { key: ApiKey.SaslAuthenticate, versions: [0, 2], handle: (d, c, req) => authenticate(d, c, req) },
];
