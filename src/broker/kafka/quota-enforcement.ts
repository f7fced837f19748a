/**
 * Client quotas on the request path (security/quotas.ts has the rates and the math): the
 * dispatcher asks `quotaFor()` and `admit()` before handling a request and `throttled()`
 * after, before the response is encoded. Kafka's way (KIP-219): the connection is muted for
 * the throttle (ctx.mute), so the client's next requests wait, and the response goes out as
 * soon as it is ready with throttle_time_ms, the rest of the mute; well-behaved clients
 * (KafkaJS, librdkafka) also hold their own requests that long. Nothing is refused: a
 * client over its quota is slowed, never failed.
 *
 * What counts, per principal:
 * - every request but ApiVersions, SaslHandshake and SaslAuthenticate against requestRate
 *   (the replication API never reaches here: the dispatcher hands it off first);
 * - a Produce's record bytes against producerByteRate, recorded as it arrives (whether or not
 *   the append then succeeds), and muted for even with acks=0 (no response);
 * - a Fetch's record bytes against consumerByteRate. As in Kafka, a fetch that is throttled
 *   (by either quota) is answered without data — its bytes taken back from the rate — so
 *   a consumer receives no more than its quota allows; its maxBytes is first bounded to what
 *   the quota window holds (Kafka's getMaxValueInQuotaWindow), and a fetch larger than that
 *   even so (one batch above the bound, which Kafka returns whole) is sent with its data
 *   rather than dropped forever.
 * The response carries the largest of the throttles it earned.
 */
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import type { RequestContext } from '../../protocol/kafka/connection.js';
import type { FetchRequest, FetchResponse } from '../../protocol/kafka/messages/fetch.js';
import type { ProduceRequest } from '../../protocol/kafka/messages/produce.js';
import { QuotaKind, type PrincipalQuota } from '../../security/quotas.js';
import type { KafkaApiDeps } from '../kafka-api.js';

/** The request's principal's quota state, or null when no quota applies (or the API is exempt). */
export function quotaFor(deps: KafkaApiDeps, ctx: RequestContext): PrincipalQuota | null {
  const key = ctx.header.apiKey;
  if (key === ApiKey.ApiVersions || key === ApiKey.SaslHandshake || key === ApiKey.SaslAuthenticate) return null;
  return deps.security?.quotas.of(ctx.principal) ?? null;
}

/**
 * Before the request is handled: records it (and a Produce's record bytes) and mutes the
 * connection for the throttle earned, at once — Produce lets the connection start the next
 * request before its own answer is ready (ctx.release), so a mute set after handling would
 * come too late for a client that pipelines or does not wait for answers (acks=0). Bounds a
 * Fetch to what the quota window holds. Returns when the throttle ends (performance.now()
 * milliseconds; 0: no throttle).
 */
export function admit(quota: PrincipalQuota, ctx: RequestContext, req: unknown): number {
  const apiKey = ctx.header.apiKey;
  let ms = quota.record(QuotaKind.Request, 1);
  if (apiKey === ApiKey.Produce) ms = Math.max(ms, quota.record(QuotaKind.Produce, produceBytes(req as ProduceRequest)));
  else if (apiKey === ApiKey.Fetch) boundFetch(quota, req as FetchRequest);
  if (ms === 0) return 0;
  ctx.mute(ms);
  return performance.now() + ms;
}

/**
 * Once handled: the response to encode, its throttleTimeMs what remains of the mute begun by
 * `admit()` (the client's wait then ends with the broker's, as when Kafka mutes on sending
 * the response), or for a Fetch the larger throttle its bytes earn (muted for too); a
 * throttled fetch is answered without its data.
 */
export function throttled(quota: PrincipalQuota, ctx: RequestContext, res: unknown, until: number): unknown {
  let ms = until === 0 ? 0 : Math.max(0, Math.ceil(until - performance.now()));
  if (ctx.header.apiKey === ApiKey.Fetch && res !== null) {
    [res, ms] = throttleFetch(quota, res as FetchResponse, ms);
    ctx.mute(ms);
  }
  if (ms > 0 && typeof res === 'object' && res !== null && 'throttleTimeMs' in res) (res as { throttleTimeMs: number }).throttleTimeMs = ms;
  return res;
}

function boundFetch(quota: PrincipalQuota, req: FetchRequest): void {
  const capacity = quota.windowCapacity(QuotaKind.Fetch);
  if (req.maxBytes <= capacity) return;
  req.maxBytes = Math.max(1, Math.floor(capacity));
  req.minBytes = Math.min(req.minBytes, req.maxBytes);
}

/** The fetch response to send and the throttle it earned, given the request quota's. */
function throttleFetch(quota: PrincipalQuota, res: FetchResponse, requestMs: number): [FetchResponse, number] {
  if (requestMs > 0) return [withoutData(res), requestMs];
  const bytes = fetchBytes(res);
  const ms = quota.record(QuotaKind.Fetch, bytes);
  if (ms === 0 || bytes > quota.windowCapacity(QuotaKind.Fetch)) return [res, ms];
  quota.unrecord(QuotaKind.Fetch, bytes);
  return [withoutData(res), ms];
}

/**
 * Kafka's throttled fetch response (FetchContext.getThrottledResponse): no partitions, no
 * error, and session id 0 — the fetch session recorded answers the client never got, so the
 * client starts over with a full fetch (the throttle time is set by the caller).
 */
function withoutData(_res: FetchResponse): FetchResponse {
  return { throttleTimeMs: 0, errorCode: 0, sessionId: 0, responses: [], nodeEndpoints: [] };
}

function produceBytes(req: ProduceRequest): number {
  let n = 0;
  for (const t of req.topicData) for (const p of t.partitionData) n += p.records?.length ?? 0;
  return n;
}

function fetchBytes(res: FetchResponse): number {
  let n = 0;
  for (const t of res.responses) for (const p of t.partitions) n += p.records?.length ?? 0;
  return n;
}
