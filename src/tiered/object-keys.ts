/**
 * The one owner of the object-key layout in a bucket (redpanda keeps the same rule: nobody
 * else builds a key). Keys are relative to the BlobStore's own prefix, which already names
 * the region (two regions may share a bucket).
 *
 *   topics/<topic>/topic.json                                  the topic: id, partitions, config
 *   topics/<topic>/<topicId>/<partition>/manifest.json         the partition's remote segments
 *   topics/<topic>/<topicId>/<partition>/segments/<base>-<attempt>.log     segment data
 *   topics/<topic>/<topicId>/<partition>/segments/<base>-<attempt>.index   its index
 *   topics/<topic>/<topicId>/<partition>/manifests/<version>-e<epoch>-n<node>.json
 *                        region clusters: manifest versions, the current one named by the
 *                        partition's fence in etcd (src/tiered/cluster-tiering.ts)
 *   startup-probe                                              written and deleted at start-up
 *
 * The topic id keeps a deleted-and-recreated topic from reading its predecessor's data; the
 * attempt id makes every upload attempt write fresh objects, so a retry never races a
 * half-finished earlier attempt and the manifest alone decides which objects count. Segment
 * objects are named as the local files are (storage/partition-files.ts), plus the attempt id.
 */
import { INDEX_SUFFIX, LOG_SUFFIX, paddedOffset } from '../storage/partition-files.js';

const TOPICS = 'topics';

export interface PartitionRef {
  topic: string;
  topicId: string;
  partition: number;
}

export const ObjectKeys = {
  topicsPrefix(): string {
    return `${TOPICS}/`;
  },

  topicDescriptor(topic: string): string {
    return `${TOPICS}/${topic}/topic.json`;
  },

  partitionPrefix(p: PartitionRef): string {
    return `${TOPICS}/${p.topic}/${p.topicId}/${p.partition}/`;
  },

  manifest(p: PartitionRef): string {
    return `${ObjectKeys.partitionPrefix(p)}manifest.json`;
  },

  /** Region clusters: where a partition's manifest versions live. */
  manifestsPrefix(p: PartitionRef): string {
    return `${ObjectKeys.partitionPrefix(p)}manifests/`;
  },

  /**
   * Region clusters: one manifest version, written once and never overwritten. The writer's
   * leader epoch and node id are in the name, so a deposed leader writing the same version
   * as its successor writes another object (never over the successor's).
   */
  manifestVersion(p: PartitionRef, version: number, leaderEpoch: number, nodeId: number): string {
    return `${ObjectKeys.manifestsPrefix(p)}${String(version).padStart(12, '0')}-e${leaderEpoch}-n${nodeId}.json`;
  },

  /** The version of a `manifests/<version>-…` key, or null for another key. */
  versionOfManifestKey(key: string): number | null {
    const m = /\/manifests\/(\d+)-e\d+-n\d+\.json$/.exec(key);
    return m ? Number(m[1]) : null;
  },

  segmentsPrefix(p: PartitionRef): string {
    return `${ObjectKeys.partitionPrefix(p)}segments/`;
  },

  segmentData(p: PartitionRef, baseOffset: bigint, attemptId: string): string {
    return `${ObjectKeys.segmentsPrefix(p)}${paddedOffset(baseOffset)}-${attemptId}${LOG_SUFFIX}`;
  },

  segmentIndex(p: PartitionRef, baseOffset: bigint, attemptId: string): string {
    return `${ObjectKeys.segmentsPrefix(p)}${paddedOffset(baseOffset)}-${attemptId}${INDEX_SUFFIX}`;
  },

  /** The partition a segment object belongs to, as `<topic>/<partition>`, or null. */
  partitionOfSegmentKey(key: string): string | null {
    const m = /^topics\/([^/]+)\/[^/]+\/(\d+)\/segments\//.exec(key);
    return m ? `${m[1]}/${m[2]}` : null;
  },

  /** The topic name of a `topics/<topic>/topic.json` key, or null for any other key. */
  topicOfDescriptor(key: string): string | null {
    const m = /^topics\/([^/]+)\/topic\.json$/.exec(key);
    return m ? m[1] : null;
  },

  /**
   * The object a starting broker writes and deletes to learn that the store takes writes.
   * Outside `topics/`, so no restore or listing of a partition ever sees it; one fixed key
   * per broker, so a delete that failed leaves one object, overwritten at the next start.
   * The brokers of a region cluster share the store and start together: each probes its
   * own key (`nodeId`), else one's delete lands between another's put and its check.
   */
  startupProbe(nodeId?: number): string {
    return nodeId === undefined ? 'startup-probe' : `startup-probe-${nodeId}`;
  },
} as const;
