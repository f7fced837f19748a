/**
 * The Kafka request dispatcher: version check, decode, handle, encode, frame.
 *
 * A request at a version this broker does not serve (issue 11):
 * - ApiVersions gets the v0-shaped body with UNSUPPORTED_VERSION and our ranges, which is
 *   exactly what Kafka answers and what librdkafka and KafkaJS step down on;
 * - an API whose schema has that version gets that API's own response at that version with
 *   UNSUPPORTED_VERSION in its error fields (unsupported-version.ts), so the client decodes
 *   a clear error and the connection keeps working;
 * - an unknown key, a version outside the schema, or an API whose response has nowhere to
 *   put the error closes the connection (the request is refused by a thrown error, logged by
 *   the connection), as Kafka does: the body cannot be parsed, so no answer can be trusted
 *   to mean anything to the client.
 * Each case logs one warn line per (client id, API, version), not per request; the set of
 * those already logged is bounded (oldest forgotten first).
 * A body that cannot be decoded throws, and the connection closes (Kafka does the same).
 *
 * Client quotas (quota-enforcement.ts): a request is recorded against its principal's
 * quotas, the throttle it earned mutes the connection and goes into the response's
 * throttle_time_ms; replication, ApiVersions and SASL requests are not throttled.
 *
 * When the broker's request observers have a listener (the metrics), each request is also
 * reported once handled: its API, outcome, time and frame sizes (request-observers.ts).
 */
import type { Logger } from 'pino';
import { ApiKey, apiKeyName, responseHeaderVersion } from '../../protocol/kafka/api-keys.js';
import type { RequestContext, RequestHandler } from '../../protocol/kafka/connection.js';
import { messageCodecs, UnsupportedVersionError } from '../../protocol/kafka/messages/index.js';
import type { Reader } from '../../protocol/kafka/reader.js';
import { encodeResponseFrame, encodeResponseFrameChunks } from '../../protocol/kafka/request-header.js';
import { Writer } from '../../protocol/kafka/writer.js';
import { kafkaErrorByCode } from '../../protocol/kafka/error-codes.js';
import { isReplicationApi, REPLICATION_API_NAMES } from '../../replication/replication-api.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import { apiVersionsResponse, UNSUPPORTED_VERSION } from './api-versions.js';
import { isSupported, KAFKA_APIS, SUPPORTED_VERSIONS } from './apis.js';
import { handleReplication, servesReplicationVersion } from './replication.js';
import { admit, quotaFor, throttled } from './quota-enforcement.js';
import { saslGate } from './sasl.js';
import { responseOutcome, type KafkaRequestObservers } from './request-observers.js';
import { unsupportedVersionBody } from './unsupported-version.js';

/** How many (client id, API, version) triples the warn-once memory holds. */
const WARNED_LIMIT = 1024;

export function createKafkaHandler(deps: KafkaApiDeps): RequestHandler {
  const warned = new WarnOnce(deps.logger, WARNED_LIMIT);
  const dispatch = async (ctx: RequestContext, body: Reader, seen?: Seen): Promise<Buffer[] | null> => {
    const { apiKey, apiVersion, correlationId } = ctx.header;
    // SASL listeners: nothing but ApiVersions and SASL until authenticated (sasl.ts).
    saslGate(ctx);
    if (isReplicationApi(apiKey) && servesReplicationVersion(apiKey, apiVersion)) return handleReplication(deps, ctx, body);
    if (!isSupported(apiKey, apiVersion)) {
      if (seen) seen.outcome = 'UNSUPPORTED_VERSION';
      return [unsupported(warned, ctx, body)];
    }
    const codec = messageCodecs.get(apiKey)!;
    const req = codec.decodeRequest(body, apiVersion);
    // Client quotas (quota-enforcement.ts): null, and nothing more done, when none applies.
    const quota = quotaFor(deps, ctx);
    const throttledUntil = quota === null ? 0 : admit(quota, ctx, req);
    const handled = await KAFKA_APIS.get(apiKey)!.handle(deps, ctx, req, apiVersion);
    const res = quota === null ? handled : throttled(quota, ctx, handled, throttledUntil);
    if (res === null) return null;
    if (seen) seen.outcome = responseOutcome(res, errorName);
    // Fetch bodies carry stored record batches: hand them to the socket uncopied.
    const w = apiKey === ApiKey.Fetch ? new Writer(4096, { zeroCopyFrom: 8192 }) : new Writer(256);
    codec.encodeResponse(w, apiVersion, res);
    return encodeResponseFrameChunks(correlationId, responseHeaderVersion(apiKey, apiVersion), w.toBuffers());
  };
  const observers = deps.requestObservers;
  if (observers === undefined) return dispatch;
  return (ctx, body) => (observers.active ? observed(observers, dispatch, ctx, body) : dispatch(ctx, body));
}

/** What the dispatch learnt of a request's outcome while handling it. */
interface Seen {
  outcome: string;
}

/** Runs one request and tells the observers about it, whether it succeeds or throws. */
async function observed(
  observers: KafkaRequestObservers,
  dispatch: (ctx: RequestContext, body: Reader, seen: Seen) => Promise<Buffer[] | null>,
  ctx: RequestContext,
  body: Reader,
): Promise<Buffer[] | null> {
  const started = performance.now();
  const { apiKey } = ctx.header;
  // The header has been read: the frame is what was read plus what remains, and its size prefix.
  const requestBytes = 4 + body.offset + body.remaining;
  const seen: Seen = { outcome: 'ok' };
  const report = (outcome: string, responseBytes: number) =>
    observers.emit({ apiKey, api: apiLabel(apiKey), outcome, seconds: (performance.now() - started) / 1000, requestBytes, responseBytes });
  try {
    const chunks = await dispatch(ctx, body, seen);
    report(seen.outcome, chunks === null ? 0 : chunks.reduce((n, c) => n + c.length, 0));
    return chunks;
  } catch (err) {
    report('closed', 0);
    throw err;
  }
}

/** A bounded label: every name Kafka or the replication API defines, else `unknown`. */
function apiLabel(apiKey: number): string {
  return REPLICATION_API_NAMES[apiKey] ?? apiKeyName(apiKey) ?? 'unknown';
}

function errorName(code: number): string {
  return kafkaErrorByCode(code)?.name ?? 'UNKNOWN_ERROR_CODE';
}

function servedText(apiKey: number): string {
  const r = SUPPORTED_VERSIONS.get(apiKey);
  return r === undefined ? 'not served' : `${r[0]}-${r[1]}`;
}

/** The framed answer to an unserved key or version; throws (closing the connection) when there is none. */
function unsupported(warned: WarnOnce, ctx: RequestContext, body: Reader): Buffer {
  const { apiKey, apiVersion, correlationId, clientId } = ctx.header;
  const codec = messageCodecs.get(apiKey);
  const api = codec?.name ?? apiKeyName(apiKey) ?? `unknown key ${apiKey}`;
  const served = servedText(apiKey);
  const message = `Meridian serves ${api} versions ${served}, not version ${apiVersion}`;
  if (apiKey === ApiKey.ApiVersions) {
    warned.warn({ clientId, api, version: apiVersion, served }, 'unsupported ApiVersions version: answered with the v0 form and the supported ranges');
    const w = new Writer(256);
    messageCodecs.get(ApiKey.ApiVersions)!.encodeResponse(w, 0, apiVersionsResponse(KAFKA_APIS, UNSUPPORTED_VERSION));
    return encodeResponseFrame(correlationId, 0, w.toBuffer());
  }
  if (codec !== undefined && apiVersion >= codec.minVersion && apiVersion <= codec.maxVersion) {
    const res = unsupportedVersionBody(codec, apiVersion, codec.decodeRequest(body, apiVersion), UNSUPPORTED_VERSION, message);
    if (res !== null) {
      warned.warn({ clientId, api, version: apiVersion, served }, 'unsupported API version: answered UNSUPPORTED_VERSION');
      return encodeResponseFrame(correlationId, responseHeaderVersion(apiKey, apiVersion), res);
    }
  }
  warned.warn({ clientId, api, version: apiVersion, served }, 'unsupported API key or version with no decodable error form: closing the connection');
  throw new UnsupportedVersionError(`${message}; no response form of this version can carry the error`, apiKey, apiVersion, body.offset);
}

/**
 * One warn line per (client id, API, version). Bounded: past `limit` triples the oldest is
 * forgotten, so a client cycling through ids costs memory up to the limit, then repeats lines.
 */
class WarnOnce {
  readonly #seen = new Set<string>();
  readonly #log: Logger;
  readonly #limit: number;

  constructor(log: Logger, limit: number) {
    this.#log = log;
    this.#limit = limit;
  }

  warn(fields: { clientId: string | null; api: string; version: number; served: string }, message: string): void {
    const key = `${fields.clientId}\u0000${fields.api}\u0000${fields.version}`;
    if (this.#seen.has(key)) return;
    if (this.#seen.size >= this.#limit) this.#seen.delete(this.#seen.values().next().value!);
    this.#seen.add(key);
    this.#log.warn(fields, message);
  }
}
