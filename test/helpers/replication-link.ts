/**
 * The receiving side of geo-replication driven over its wire API (keys 32000/32001 on a
 * broker's Kafka port) with the sender's own LinkClient and codecs: one sender region and
 * topic id talking to one target region, for tests of what the target accepts and refuses.
 */
import assert from 'node:assert/strict';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import { LinkClient } from '../../src/replication/link-client.js';
import {
  readAppendResponse,
  readHandshakeResponse,
  ReplicationApiKey,
  writeAppendRequest,
  writeHandshakeRequest,
  type AppendResponse,
  type ReplicatedBatch,
} from '../../src/replication/replication-api.js';
import { encodeBatch } from '../../src/storage/record-batch.js';

/**
 * The replication config of `region` taking every topic from `senders` (an aggregation
 * policy): a region takes a topic only from the regions its policies name as its senders.
 * An aggregation target sends no data; the senders' addresses (nothing listens there) are
 * dialled only by disaster recovery's offset sync, which retries quietly.
 */
export function receivingFrom(region: string, senders: string[]): BrokerConfigInput['replication'] {
  return {
    regions: [region, ...senders].map((name) => ({ name, address: '127.0.0.1:9' })),
    policies: [{ name: 'from-senders', topics: '*', topology: 'aggregation', sources: senders, target: region }],
  };
}

export class TargetLink {
  readonly client: LinkClient;
  readonly #target: string;
  readonly #sender: string;
  readonly #topicId: string;

  constructor(opts: { address: string; targetRegion: string; senderRegion?: string; senderTopicId: string }) {
    this.client = new LinkClient({ address: opts.address, clientId: 'replication-test', requestTimeoutMs: 10_000 });
    this.#target = opts.targetRegion;
    this.#sender = opts.senderRegion ?? 'us-east';
    this.#topicId = opts.senderTopicId;
  }

  /** Handshakes for a one-partition topic (created if missing); returns the partition's resume point. */
  async senderCursor(topic: string): Promise<bigint> {
    const r = readHandshakeResponse(
      await this.client.request(ReplicationApiKey.Handshake, 0, (w) =>
        writeHandshakeRequest(w, { targetRegion: this.#target, senderRegion: this.#sender, senderTopicId: this.#topicId, topic, partitionCount: 1, createIfMissing: true, dr: null }),
      ),
    );
    assert.equal(r.errorCode, 0, r.errorMessage ?? '');
    return r.partitions[0].senderCursor;
  }

  /** Appends batches of the sender's own (origin) log to partition 0 in one entry. */
  async append(topic: string, batches: ReplicatedBatch[], senderEndOffset: bigint, continuesFrom = -2n): Promise<AppendResponse> {
    return readAppendResponse(
      await this.client.request(ReplicationApiKey.Append, 0, (w) =>
        writeAppendRequest(w, {
          targetRegion: this.#target,
          senderRegion: this.#sender,
          senderTopicId: this.#topicId,
          topic,
          partition: 0,
          continuesFrom,
          senderEndOffset,
          entries: [{ originRegion: this.#sender, originTopicId: this.#topicId, originPartition: 0, hops: [], batches }],
        }),
      ),
    );
  }

  close(): void {
    this.client.close();
  }
}

/** Origin batches of one record each from origin offset `base` on, keyed and valued by `tag` and offset. */
export function originBatches(tag: string, count: number, base = 0n): { batches: ReplicatedBatch[]; end: bigint } {
  const batches = Array.from({ length: count }, (_, i) => {
    const offset = base + BigInt(i);
    return { originBaseOffset: offset, senderBaseOffset: offset, batch: encodeBatch({ records: [{ key: Buffer.from(`${tag}-${offset}`), value: Buffer.from(`${tag} value ${offset}`) }], baseOffset: offset, baseTimestamp: BigInt(Date.now()) }) };
  });
  return { batches, end: base + BigInt(count) - 1n };
}
