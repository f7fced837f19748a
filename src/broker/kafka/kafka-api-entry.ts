/**
 * One served Kafka API: its key, the versions this broker answers, and its handler. Each
 * handler module (fetch.ts, produce.ts, topics.ts, groups.ts, ...) exports the entries of its
 * family; `apis.ts` gathers them into the one table ApiVersions advertises and the
 * dispatcher checks, so adding an API or a version touches only its family's module.
 */
import type { RequestContext } from '../../protocol/kafka/connection.js';
import type { KafkaApiDeps } from '../kafka-api.js';

// The request and response types differ per API; the dispatcher decodes and encodes them
// with the generated codec of the same key, so the handler signature stays untyped here.
export type KafkaApiHandler = (deps: KafkaApiDeps, ctx: RequestContext, req: any, version: number) => unknown;

export interface KafkaApiEntry {
  readonly key: number;
  /** The versions answered: [min, max], both inclusive. */
  readonly versions: readonly [min: number, max: number];
  /** What ApiVersions announces, where it differs from `versions` (see api-versions.ts). */
  readonly advertised?: readonly [min: number, max: number];
  readonly handle: KafkaApiHandler;
}
