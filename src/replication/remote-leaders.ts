/**
 * Where each partition of a remote region is led, as that region's Metadata says: the
 * routing table of a link to a region cluster (src/cluster, issue 16).
 *
 * A remote region is reached through its bootstrap addresses (the registry's `address`,
 * one or several). A single-broker region answers every partition itself, so its link
 * never needs this: the table stays empty and everything goes to the bootstrap address, as
 * before region clusters (no Metadata request is ever sent unless the remote says a
 * partition is led elsewhere or the registry lists several addresses). A region cluster
 * answers NOT_LEADER_OR_FOLLOWER for partitions another broker leads (and leaves them out
 * of its handshake answers); the link then asks Metadata of any broker it can reach and
 * sends each partition to its leader, at the address the remote's Metadata advertises.
 *
 * Pure state plus the codec of one request: RemoteRegion (remote-region.ts) decides when to
 * refresh and over which connection.
 */
import { ErrorCode, MeridianError } from '../errors.js';
import { ApiKey } from '../protocol/kafka/api-keys.js';
import { decodeMetadataResponse, encodeMetadataRequest, ZERO_UUID } from '../protocol/kafka/messages/index.js';
import type { Reader } from '../protocol/kafka/reader.js';
import type { Writer } from '../protocol/kafka/writer.js';

/** Metadata v8: leader epochs (v7+), no flexible encoding (the link reads response header v0). */
export const METADATA_VERSION = 8;

/** Kafka's codes after which a partition's leader must be looked up again. */
export const LEADER_MOVED_CODES: ReadonlySet<number> = new Set([
  3, // UNKNOWN_TOPIC_OR_PARTITION: that broker does not hold it (yet)
  6, // NOT_LEADER_OR_FOLLOWER
  74, // FENCED_LEADER_EPOCH
  75, // UNKNOWN_LEADER_EPOCH
]);

export interface MetadataRequestSpec {
  apiKey: number;
  version: number;
  body: (w: Writer) => void;
  read: (r: Reader) => RemoteLayout;
}

/** What one Metadata answer says: the brokers and each asked partition's leader. */
export interface RemoteLayout {
  brokers: Map<number, string>;
  leaders: Map<string, Map<number, number>>;
}

/** The Metadata request for `topics` (none auto-created: the handshake creates topics). */
export function metadataRequest(topics: readonly string[]): MetadataRequestSpec {
  return {
    apiKey: ApiKey.Metadata,
    version: METADATA_VERSION,
    body: (w) =>
      encodeMetadataRequest(w, METADATA_VERSION, {
        topics: topics.map((name) => ({ topicId: ZERO_UUID, name })),
        allowAutoTopicCreation: false,
        includeClusterAuthorizedOperations: false,
        includeTopicAuthorizedOperations: false,
      }),
    read: (r) => {
      const res = decodeMetadataResponse(r, METADATA_VERSION);
      const brokers = new Map(res.brokers.map((b) => [b.nodeId, `${b.host}:${b.port}`]));
      const leaders = new Map<string, Map<number, number>>();
      for (const t of res.topics) {
        if (t.errorCode !== 0 || t.name === null) continue;
        leaders.set(t.name, new Map(t.partitions.map((p) => [p.partitionIndex, p.errorCode === 0 || p.leaderId >= 0 ? p.leaderId : -1])));
      }
      return { brokers, leaders };
    },
  };
}

export class RemoteLeaders {
  /** Brokers of the last answer, when it named more than one (a single broker routes nothing). */
  #brokers = new Map<number, string>();
  #leaders = new Map<string, Map<number, number>>();
  /** Whether the remote is known to be a cluster of several brokers. */
  #clustered = false;
  /** Topics whose leaders are wanted (every topic a worker asked to send). */
  readonly topics = new Set<string>();

  get clustered(): boolean {
    return this.#clustered;
  }

  /** The address of `topic/partition`'s leader, or undefined: send to the bootstrap address. */
  addressOf(topic: string, partition: number): string | undefined {
    if (!this.#clustered) return undefined;
    const leader = this.#leaders.get(topic)?.get(partition);
    return leader === undefined || leader < 0 ? undefined : this.#brokers.get(leader);
  }

  /** Every broker address of the last answer (to ask Metadata again when the bootstrap is down). */
  brokerAddresses(): string[] {
    return [...this.#brokers.values()];
  }

  /** Takes a Metadata answer. One broker: a single-broker region (or a cluster of one): nothing to route. */
  update(layout: RemoteLayout): void {
    this.#clustered = layout.brokers.size > 1;
    this.#brokers = layout.brokers;
    this.#leaders = layout.leaders;
  }

  /** A partition's leader moved (or is unknown): forget where it was until the next answer. */
  forget(topic: string, partition: number): void {
    this.#leaders.get(topic)?.delete(partition);
  }
}

/** The error a handshake answer without `partition` becomes: retried after a Metadata refresh. */
export function notReported(remote: string, topic: string, partition: number, address: string): MeridianError {
  return new MeridianError(ErrorCode.RemoteUnavailable, `region ${remote} (${address}) did not report partition ${partition} of ${topic}: another broker leads it there; looking its leader up (Metadata)`);
}
