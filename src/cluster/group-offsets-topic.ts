/**
 * The internal topic of consumer-group offsets in a region cluster, `__meridian_offsets`
 * (Kafka's __consumer_offsets): its name, which partition holds a group, and the spec it is
 * created with. Pure: no I/O (group-offsets.ts creates it through the controller).
 */

/** Segment size of the offsets topic: small enough that compacted-away segments go soon. */
const OFFSETS_SEGMENT_BYTES = 16 * 1024 * 1024;

/** The internal topic holding every group's committed offsets and generations in a region cluster. */
export const OFFSETS_TOPIC = '__meridian_offsets';

/** Topics clients may read but not produce to, listed with is_internal=true in Metadata. */
export function isInternalTopic(name: string): boolean {
  return name === OFFSETS_TOPIC;
}

/**
 * Java's String.hashCode over UTF-16 code units, as Kafka's Utils.abs(groupId.hashCode) %
 * partitions places a group: stable across processes and releases (never Node's hashing).
 */
export function stableHash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(31, h) + s.charCodeAt(i)) | 0;
  // Kafka's Utils.abs: Integer.MIN_VALUE maps to 0 rather than staying negative.
  return h === -2147483648 ? 0 : Math.abs(h);
}

/** The partition of the offsets topic that holds `groupId` (its leader coordinates the group). */
export function offsetsPartitionFor(groupId: string, partitions: number): number {
  return stableHash(groupId) % partitions;
}

/**
 * How the offsets topic is created: the region's replication factor (configured, else
 * min(3, live brokers)); min.insync.replicas 2 from three replicas on, so an acknowledged
 * commit survives the loss of any one broker; no retention by time or size, so offsets are
 * never deleted by age (the leader's checkpoints move the log start instead: compaction,
 * group-offsets-partition.ts); 16 MiB segments, so the files below a moved log start are
 * deleted soon (Kafka's offsets.topic.segment.bytes is 100 MiB; a partition here compacts
 * every few MiB); never offloaded to tiered storage (a coordinator replays its local log).
 */
export function offsetsTopicSpec(partitions: number, liveBrokers: number, defaultReplicationFactor: number | null): { partitions: number; replicationFactor: number; configs: Record<string, string> } {
  const replicationFactor = Math.max(1, defaultReplicationFactor ?? Math.min(3, liveBrokers));
  return {
    partitions,
    replicationFactor,
    configs: {
      'min.insync.replicas': replicationFactor >= 3 ? '2' : '1',
      'retention.ms': '-1',
      'retention.bytes': '-1',
      'segment.bytes': String(OFFSETS_SEGMENT_BYTES),
      'remote.storage.enable': 'false',
    },
  };
}
