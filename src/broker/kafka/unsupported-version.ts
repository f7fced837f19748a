/**
 * The answer to a request at a version this broker does not serve, for an API whose schema
 * has that version: that API's own response at the request's version, with
 * UNSUPPORTED_VERSION where the client looks for an error, so the client can decode it and
 * say what went wrong (issue 11). This is Kafka's `AbstractRequest.getErrorResponse`: a
 * top-level error code where the response has one, otherwise one error per item the request
 * named (topics, partitions, groups, resources).
 *
 * The response is built from the generated codec itself: decoding through `BlankReader`,
 * which answers every read with a neutral value (0, '', null, empty arrays), yields a
 * response of exactly the fields that version carries, so no per-version knowledge lives
 * here. `null` means no decodable error form exists (no top-level error code and no
 * per-item builder below); the dispatcher then closes the connection, as Kafka does for
 * any version it cannot parse.
 */
import type { MessageCodec } from '../../protocol/kafka/messages/index.js';
import { ZERO_UUID } from '../../protocol/kafka/messages/index.js';
import type { Reader } from '../../protocol/kafka/reader.js';
import { Writer } from '../../protocol/kafka/writer.js';
import { ApiKey } from '../../protocol/kafka/api-keys.js';

/**
 * A stand-in for `Reader` that reads nothing. Arrays are empty except those whose field
 * label (the generated decoders' `'topics'`, `'topics[].partitions'`, ...) is listed in
 * `expand`: those hold one blank item, the template a per-item builder copies.
 */
class BlankReader {
  readonly offset = 0;
  readonly remaining = 0;
  readonly #expand: ReadonlySet<string>;

  constructor(expand: readonly string[]) {
    this.#expand = new Set(expand);
  }

  int8(): number {
    return 0;
  }
  int16(): number {
    return 0;
  }
  int32(): number {
    return 0;
  }
  uint32(): number {
    return 0;
  }
  int64(): bigint {
    return 0n;
  }
  float64(): number {
    return 0;
  }
  boolean(): boolean {
    return false;
  }
  uvarint(): number {
    return 0;
  }
  varint(): number {
    return 0;
  }
  varlong(): bigint {
    return 0n;
  }
  uuid(): string {
    return ZERO_UUID;
  }
  string(): string {
    return '';
  }
  compactString(): string {
    return '';
  }
  nullableString(): null {
    return null;
  }
  compactNullableString(): null {
    return null;
  }
  bytes(): Buffer {
    return Buffer.alloc(0);
  }
  compactBytes(): Buffer {
    return Buffer.alloc(0);
  }
  nullableBytes(): null {
    return null;
  }
  compactNullableBytes(): null {
    return null;
  }
  rawBytes(length: number): Buffer {
    return Buffer.alloc(length);
  }
  skip(): void {}
  skipTaggedFields(): void {}
  taggedFields(): ReadonlyMap<number, Buffer> {
    return new Map();
  }
  array<T>(readItem: (r: Reader) => T, field?: string): T[] {
    return field !== undefined && this.#expand.has(field) ? [readItem(this as unknown as Reader)] : [];
  }
  nullableArray<T>(readItem: (r: Reader) => T, field?: string): T[] {
    return this.array(readItem, field);
  }
  compactArray<T>(readItem: (r: Reader) => T, field?: string): T[] {
    return this.array(readItem, field);
  }
  compactNullableArray<T>(readItem: (r: Reader) => T, field?: string): T[] {
    return this.array(readItem, field);
  }
}

/** A blank response of `codec` at `version`, with one template item in each `expand` array. */
export function blankResponse(codec: MessageCodec, version: number, expand: readonly string[] = []): any {
  return codec.decodeResponse(new BlankReader(expand) as unknown as Reader, version);
}

type Blank = (expand: readonly string[]) => any;
/** Builds the per-item error response from the decoded request (`any`: one builder per API). */
type ItemErrors = (req: any, blank: Blank, code: number, message: string) => unknown;

/** Copies `tpl` with `fields` set; a template's own arrays stay empty. */
const item = (tpl: any, fields: Record<string, unknown>): any => ({ ...tpl, ...fields });

/**
 * The APIs whose responses carry no top-level error code (at some versions): one error per
 * item the request named, as Kafka's getErrorResponse of each request class does.
 */
const ITEM_ERRORS: ReadonlyMap<number, ItemErrors> = new Map<number, ItemErrors>([
  [
    ApiKey.Produce,
    (req, blank, errorCode) => {
      const r = blank(['responses', 'responses[].partitionResponses']);
      const [t] = r.responses;
      const [p] = t.partitionResponses;
      r.responses = req.topicData.map((td: any) =>
        item(t, { name: td.name, partitionResponses: td.partitionData.map((pd: any) => item(p, { index: pd.index, errorCode, baseOffset: -1n, logAppendTimeMs: -1n, logStartOffset: -1n })) }),
      );
      return r;
    },
  ],
  [
    ApiKey.Fetch,
    (req, blank, errorCode) => {
      const r = blank(['responses', 'responses[].partitions']);
      const [t] = r.responses;
      const [p] = t.partitions;
      r.responses = req.topics.map((ft: any) =>
        item(t, { topic: ft.topic, topicId: ft.topicId, partitions: ft.partitions.map((fp: any) => item(p, { partitionIndex: fp.partition, errorCode, highWatermark: -1n, lastStableOffset: -1n, logStartOffset: -1n, preferredReadReplica: -1 })) }),
      );
      return r;
    },
  ],
  [
    ApiKey.ListOffsets,
    (req, blank, errorCode) => {
      const r = blank(['topics', 'topics[].partitions']);
      const [t] = r.topics;
      const [p] = t.partitions;
      r.topics = req.topics.map((lt: any) => item(t, { name: lt.name, partitions: lt.partitions.map((lp: any) => item(p, { partitionIndex: lp.partitionIndex, errorCode, timestamp: -1n, offset: -1n, leaderEpoch: -1 })) }));
      return r;
    },
  ],
  [
    ApiKey.Metadata,
    (req, blank, errorCode) => {
      const r = blank(['topics']);
      const [t] = r.topics;
      r.controllerId = -1;
      r.topics = (req.topics ?? []).map((mt: any) => item(t, { name: mt.name, topicId: mt.topicId, errorCode }));
      return r;
    },
  ],
  [ApiKey.OffsetCommit, (req, blank, errorCode) => partitionErrors(req, blank, errorCode)],
  [ApiKey.DeleteRecords, (req, blank, errorCode) => partitionErrors(req, blank, errorCode, { lowWatermark: -1n })],
  [
    ApiKey.OffsetFetch,
    (req, blank, errorCode) => {
      const r = blank(['topics', 'topics[].partitions', 'groups']);
      const [t] = r.topics;
      const [p] = t.partitions;
      const [g] = r.groups;
      r.topics = (req.topics ?? []).map((ot: any) => item(t, { name: ot.name, partitions: ot.partitionIndexes.map((i: number) => item(p, { partitionIndex: i, committedOffset: -1n, committedLeaderEpoch: -1, errorCode })) }));
      r.groups = req.groups.map((og: any) => item(g, { groupId: og.groupId, errorCode }));
      return r;
    },
  ],
  [
    ApiKey.OffsetForLeaderEpoch,
    (req, blank, errorCode) => {
      const r = blank(['topics', 'topics[].partitions']);
      const [t] = r.topics;
      const [p] = t.partitions;
      r.topics = req.topics.map((ot: any) => item(t, { topic: ot.topic, partitions: ot.partitions.map((op: any) => item(p, { partition: op.partition, errorCode, leaderEpoch: -1, endOffset: -1n })) }));
      return r;
    },
  ],
  [
    ApiKey.CreateTopics,
    (req, blank, errorCode, errorMessage) => {
      const r = blank(['topics']);
      const [t] = r.topics;
      r.topics = req.topics.map((ct: any) => item(t, { name: ct.name, errorCode, errorMessage, numPartitions: -1, replicationFactor: -1, configs: null }));
      return r;
    },
  ],
  [
    ApiKey.DeleteTopics,
    (req, blank, errorCode, errorMessage) => {
      const r = blank(['responses']);
      const [t] = r.responses;
      const named: Array<{ name: string | null; topicId: string }> = [...req.topicNames.map((name: string) => ({ name, topicId: ZERO_UUID })), ...req.topics];
      r.responses = named.map((d) => item(t, { ...d, errorCode, errorMessage }));
      return r;
    },
  ],
  [
    ApiKey.CreatePartitions,
    (req, blank, errorCode, errorMessage) => {
      const r = blank(['results']);
      const [t] = r.results;
      r.results = req.topics.map((ct: any) => item(t, { name: ct.name, errorCode, errorMessage }));
      return r;
    },
  ],
  [
    ApiKey.DescribeConfigs,
    (req, blank, errorCode, errorMessage) => {
      const r = blank(['results']);
      const [t] = r.results;
      r.results = req.resources.map((dr: any) => item(t, { resourceType: dr.resourceType, resourceName: dr.resourceName, errorCode, errorMessage }));
      return r;
    },
  ],
  [
    ApiKey.DescribeGroups,
    (req, blank, errorCode) => {
      const r = blank(['groups']);
      const [g] = r.groups;
      r.groups = req.groups.map((groupId: string) => item(g, { groupId, errorCode, authorizedOperations: -2147483648 }));
      return r;
    },
  ],
  [
    ApiKey.FindCoordinator,
    (req, blank, errorCode, errorMessage) => {
      const r = blank(['coordinators']);
      const [c] = r.coordinators;
      r.coordinators = req.coordinatorKeys.map((key: string) => item(c, { key, nodeId: -1, port: -1, errorCode, errorMessage }));
      return r;
    },
  ],
]);

/** OffsetCommit and DeleteRecords: `topics[].partitions[].partitionIndex` on both sides. */
function partitionErrors(req: any, blank: Blank, errorCode: number, extra: Record<string, unknown> = {}): unknown {
  const r = blank(['topics', 'topics[].partitions']);
  const [t] = r.topics;
  const [p] = t.partitions;
  r.topics = req.topics.map((rt: any) => item(t, { name: rt.name, partitions: rt.partitions.map((rp: any) => item(p, { partitionIndex: rp.partitionIndex, errorCode, ...extra })) }));
  return r;
}

/**
 * The encoded error response body, or null when this API has no form that carries the error
 * at this version. `req` is the decoded request (the version is inside the schema's range).
 */
export function unsupportedVersionBody(codec: MessageCodec, version: number, req: unknown, errorCode: number, message: string): Buffer | null {
  const blank: Blank = (expand) => blankResponse(codec, version, expand);
  const perItem = ITEM_ERRORS.get(codec.apiKey);
  const base = (): any => (perItem ? perItem(req, blank, errorCode, message) : blank([]));
  const topLevel = (r: any, withMessage: boolean): any => {
    if ('errorCode' in r) r.errorCode = errorCode;
    if (withMessage && 'errorMessage' in r) r.errorMessage = message;
    return r;
  };
  // Most complete first: the encoder refuses (RangeError) a field this version lacks, so a
  // version without a top-level message, or without a top-level error code, takes a later form.
  const forms: Array<() => any> = [() => topLevel(base(), true), () => topLevel(base(), false)];
  if (perItem) forms.push(base);
  for (const build of forms) {
    const r = build();
    if (!perItem && !('errorCode' in r)) return null;
    const w = new Writer(256);
    try {
      codec.encodeResponse(w, version, r);
      return w.toBuffer();
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
    }
  }
  return null;
}
