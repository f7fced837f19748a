/**
 * Client quota metrics (security/quotas.ts), read at scrape time from
 * `broker.security.quotas`: per active principal and kind (produce, fetch, request), the
 * rate now, the quota, and the throttle time given.
 *
 * Unlike the other security series these are labelled by principal, as Kafka's quota
 * metrics are (user tag): a quota is set for a principal, and a dashboard compares that
 * principal's rate with it. The cardinality is bounded by the principals a quota applies to
 * that sent a request within the last hour (idle ones are forgotten, and their series go
 * with them): the users an operator created and the client certificates the CA issued, never
 * a name a client makes up (a SASL login that fails has no principal).
 */
import type { Registry } from 'prom-client';
import { QUOTA_KIND_NAMES, QuotaKind } from '../security/quotas.js';
import { counterFrom, gaugeFrom, type Sample, type Scrape } from './metrics-define.js';

const KINDS = [
  { kind: QUOTA_KIND_NAMES[QuotaKind.Produce], rate: 'produce', quota: 'producerByteRate' },
  { kind: QUOTA_KIND_NAMES[QuotaKind.Fetch], rate: 'fetch', quota: 'consumerByteRate' },
  { kind: QUOTA_KIND_NAMES[QuotaKind.Request], rate: 'request', quota: 'requestRate' },
] as const;

export function registerQuotaMetrics(registry: Registry, scrape: Scrape): void {
  const active = () => scrape.broker.security.quotas.active();
  const perKind = (value: (a: ReturnType<typeof active>[number], k: (typeof KINDS)[number]) => number | null): Sample[] =>
    active().flatMap((a) => KINDS.flatMap((k) => {
      const v = value(a, k);
      return v === null ? [] : [{ labels: { principal: a.principal, kind: k.kind }, value: v }];
    }));
  gaugeFrom(registry, 'meridian_quota_rate', 'Current rate of each principal with a quota, by kind: produce and fetch in record bytes per second, request in requests per second (over the quota windows, as enforced).', ['principal', 'kind'], () => perKind((a, k) => a.rates[k.rate]));
  gaugeFrom(registry, 'meridian_quota_limit', "Each active principal's quota by kind (its override, else security.quotas); no series for a kind without a quota.", ['principal', 'kind'], () => perKind((a, k) => a.quotas[k.quota]));
  counterFrom(registry, 'meridian_quota_throttle_seconds_total', 'Throttle time given to each principal by kind: the throttle_time_ms its responses carried, during which its connection was muted.', ['principal', 'kind'], () => perKind((a, k) => a.throttleSeconds[k.rate]));
}
