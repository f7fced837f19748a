/**
 * The Kafka listener's metrics: requests by API and outcome, their latency, the bytes of
 * request and response frames, and connections. Requests are counted as the dispatcher
 * reports them (broker/kafka/request-observers.ts); connections are read from
 * `KafkaServer.stats()` at scrape time.
 *
 * Cardinality: `api` is one of the names Kafka and the replication API define (or
 * `unknown`), `outcome` is `ok`, `closed` or one of Kafka's error code names, `reason` one of
 * the listener's refusal and close reasons: all bounded, whatever clients send.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Broker } from '../broker/broker.js';
import { counterFrom, gaugeFrom, one } from './metrics-define.js';

/** From half a millisecond (a Metadata) to half a minute (a Fetch long-poll, a slow fsync). */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Registers the Kafka metrics; returns the function that stops listening to requests. */
export function registerKafkaMetrics(registry: Registry, broker: Broker): () => void {
  const requests = new Counter({
    name: 'meridian_kafka_requests_total',
    help: 'Kafka requests handled, by API and outcome (ok, the first Kafka error code in the response, or closed when the connection was closed instead of answering).',
    labelNames: ['api', 'outcome'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'meridian_kafka_request_duration_seconds',
    help: 'Time from a Kafka request\'s dispatch to its encoded response (a Fetch\'s long-poll wait included), by API.',
    labelNames: ['api'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const received = new Counter({
    name: 'meridian_kafka_received_bytes_total',
    help: 'Bytes of request frames received on the Kafka listener (size prefix included), by API; replication from other regions arrives here too.',
    labelNames: ['api'],
    registers: [registry],
  });
  const sent = new Counter({
    name: 'meridian_kafka_sent_bytes_total',
    help: 'Bytes of response frames sent on the Kafka listener (size prefix included), by API.',
    labelNames: ['api'],
    registers: [registry],
  });
  const stop = broker.kafkaRequests.listen((e) => {
    requests.inc({ api: e.api, outcome: e.outcome });
    latency.observe({ api: e.api }, e.seconds);
    received.inc({ api: e.api }, e.requestBytes);
    sent.inc({ api: e.api }, e.responseBytes);
  });

  const server = () => broker.kafka.stats();
  gaugeFrom(registry, 'meridian_kafka_connections', 'Client connections open on the Kafka listener now.', [], () => one(server().connections));
  counterFrom(registry, 'meridian_kafka_connections_accepted_total', 'Connections the Kafka listener accepted.', [], () => one(server().accepted));
  counterFrom(registry, 'meridian_kafka_connections_refused_total', 'Connections refused at once for a connection limit, or on a TLS listener for a failed handshake or client certificate, by reason.', ['reason'], () =>
    Object.entries(server().refused).map(([reason, value]) => ({ labels: { reason }, value })),
  );
  counterFrom(registry, 'meridian_kafka_connections_closed_total', 'Connections the broker closed (idle, request too slow to arrive, unreadable input...), by reason; closes by clients are not counted.', ['reason'], () =>
    Object.entries(server().closed).map(([reason, value]) => ({ labels: { reason }, value })),
  );
  gaugeFrom(registry, 'meridian_kafka_request_budget_held_bytes', 'Request bytes received and not yet handled, across connections (bounded by kafka.queuedMaxRequestBytes).', [], () =>
    one(server().requestBudget.heldBytes),
  );
  gaugeFrom(registry, 'meridian_kafka_request_budget_limit_bytes', 'kafka.queuedMaxRequestBytes: the most request bytes held at once before sockets pause.', [], () =>
    one(server().requestBudget.limitBytes),
  );
  gaugeFrom(registry, 'meridian_kafka_frame_pool_bytes', 'Memory of large request frames kept free for the next ones (produce and replication appends give theirs back once written).', [], () => one(server().framePool.pooledBytes));
  counterFrom(registry, 'meridian_kafka_frames_pooled_total', 'Large request frames assembled in a pooled buffer, by whether it was reused or newly allocated.', ['outcome'], () => [
    { labels: { outcome: 'reused' }, value: server().framePool.reused },
    { labels: { outcome: 'allocated' }, value: server().framePool.allocated },
  ]);
  // Incremental fetch sessions (KIP-227, broker/kafka/fetch-sessions.ts).
  const sessions = () => broker.fetchSessions.stats();
  gaugeFrom(registry, 'meridian_kafka_fetch_sessions', 'Incremental fetch sessions cached now (kafka.fetchSessionCacheSlots at most).', [], () => one(sessions().sessions));
  gaugeFrom(registry, 'meridian_kafka_fetch_session_partitions', 'Partitions held across the cached fetch sessions.', [], () => one(sessions().partitions));
  counterFrom(registry, 'meridian_kafka_fetch_session_requests_total', 'Fetch requests by kind: sessionless (epoch -1, or sessions off), full (epoch 0: asks for a session), incremental, error (unknown session, wrong epoch, topic ids mismatch).', ['kind'], () =>
    Object.entries(sessions().requests).map(([kind, value]) => ({ labels: { kind }, value })),
  );
  counterFrom(registry, 'meridian_kafka_fetch_sessions_created_total', 'Fetch sessions opened.', [], () => one(sessions().created));
  counterFrom(registry, 'meridian_kafka_fetch_sessions_evicted_total', 'Fetch sessions evicted to make room for a new one.', [], () => one(sessions().evicted));
  counterFrom(registry, 'meridian_kafka_fetch_sessions_refused_total', 'Fetches that asked for a session and were answered without one: every slot taken and none evictable.', [], () => one(sessions().refused));
  counterFrom(registry, 'meridian_kafka_fetch_session_partitions_total', 'Partitions of incremental fetches, by whether the answer included them (sent) or left them out as unchanged (omitted).', ['result'], () => [
    { labels: { result: 'sent' }, value: sessions().sentPartitions },
    { labels: { result: 'omitted' }, value: sessions().omittedPartitions },
  ]);
  return stop;
}
