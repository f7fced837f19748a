/**
 * The JSON schemas of the admin API's bodies: fastify validates requests and serialises
 * responses with them, and @fastify/swagger turns them into the OpenAPI document. Shared
 * shapes are registered once (`SHARED_SCHEMAS`, referenced as `{ $ref: 'Name#' }`) and
 * appear under `components.schemas` by their `$id`.
 *
 * Offsets are strings (they are 64-bit); byte counts and rates are numbers.
 */

const str = { type: 'string' } as const;
const num = { type: 'number' } as const;
const int = { type: 'integer' } as const;
const bool = { type: 'boolean' } as const;
const nullableStr = { type: ['string', 'null'] } as const;
const offset = { type: 'string', pattern: '^-?\\d+$', description: 'a 64-bit offset, as a decimal string' } as const;
const nullableOffset = { type: ['string', 'null'], pattern: '^-?\\d+$' } as const;

export function obj(properties: Record<string, unknown>, required: string[] = Object.keys(properties), extra: Record<string, unknown> = {}) {
  return { type: 'object', properties, required, additionalProperties: false, ...extra } as const;
}

export function arr(items: unknown) {
  return { type: 'array', items } as const;
}

export const ref = (id: string) => ({ $ref: `${id}#` }) as const;

const WORKER_STATES = ['starting', 'running', 'idle', 'backing-off', 'error'];

export const SHARED_SCHEMAS = [
  {
    $id: 'Error',
    description: 'Every failed call: a stable code (src/admin/README.md) and a message saying what happened and what to do.',
    ...obj({ error: obj({ code: str, message: str }) }),
  },
  {
    $id: 'TopicDetail',
    ...obj({
      name: str,
      id: str,
      replicationPolicy: { ...nullableStr, description: 'the policy governing the topic in this region, or null' },
      configs: arr(obj({ name: str, value: nullableStr, source: str, readOnly: bool, documentation: str })),
      partitions: arr(
        obj({
          partition: int,
          logStartOffset: { ...offset, description: 'first offset readable, across both tiers' },
          localStartOffset: offset,
          highWatermark: offset,
          durableOffset: { ...offset, description: 'one past the last record fdatasync\'d here (below the high watermark between fdatasyncs in the interval flush mode)' },
          shipFence: { ...nullableOffset, description: 'interval flush mode: records below it may have been replicated before they were durable here, so a power loss skips to it (storage/ship-fence.ts); null: none' },
          localBytes: int,
          localSegments: int,
          tieredBytes: int,
          remoteStartOffset: nullableOffset,
          remoteEndOffset: { ...nullableOffset, description: 'one past the last offset in the object store; null: not tiered' },
        }),
      ),
    }),
  },
  {
    $id: 'WorkerStatus',
    description: 'One replication worker: a (topic, partition, remote region) of a policy.',
    ...obj({
      topic: str,
      partition: int,
      remote: str,
      policy: str,
      relay: bool,
      state: { type: 'string', enum: WORKER_STATES },
      error: nullableStr,
      replicatedOffset: { ...nullableOffset, description: 'last offset the remote holds (-1: none; null: not known yet)' },
      lastOriginOffset: nullableOffset,
      backlogRecords: int,
      backlogBytes: int,
      lagSeconds: num,
      bytesPerSecond: num,
      recordsPerSecond: num,
      sentBatches: int,
      sentRecords: int,
      sentBytes: int,
      retries: int,
      quotaDroppedRecords: int,
    }),
  },
  {
    $id: 'LinkStatus',
    description: 'Workers of one (remote, policy, topic) summed: the worst state, the largest lag, totals.',
    ...obj({
      remote: str,
      policy: str,
      topic: str,
      partitions: int,
      state: { type: 'string', enum: WORKER_STATES },
      error: nullableStr,
      lagSeconds: num,
      backlogRecords: int,
      backlogBytes: int,
      bytesPerSecond: num,
      recordsPerSecond: num,
      retries: int,
      quotaDroppedRecords: int,
      holds: int,
    }),
  },
  {
    $id: 'PolicySet',
    ...obj({
      policies: arr({ type: 'object', additionalProperties: true, description: 'a policy as in replication.policies (src/replication/README.md)' }),
      source: { type: 'string', enum: ['config', 'runtime'], description: 'runtime: applied through the API, persisted in the data directory, wins over the config file' },
      updatedAt: { ...nullableStr, description: 'when the runtime set was applied; null for the config file\'s' },
      fingerprint: { ...str, description: 'hash of the normalised policies: regions in agreement show the same value' },
      file: { ...nullableStr, description: 'where the runtime set is persisted; null for the config file\'s' },
    }),
  },
  {
    $id: 'LinkChange',
    ...obj({ topic: str, remote: str, policy: str }),
  },
] as const;

export const errorResponses = (...statuses: number[]) => Object.fromEntries(statuses.map((s) => [s, ref('Error')]));

export const policiesBody = obj({ policies: arr({ type: 'object', additionalProperties: true, description: 'a policy as in replication.policies (src/replication/README.md)' }) });

export const schemaTypes = { str, num, int, bool, nullableStr, offset, nullableOffset };
