/**
 * Geo-replication on a region cluster (issue 16): what the replication layer asks of the
 * region's leadership, served by this broker's ReplicaManager.
 *
 * - Sending side (replication/replicator.ts `ReplicatorLeadership`): a partition's workers
 *   run only while this broker leads it and may act as leader (`isLeading`: role leader,
 *   leadership not suspended by a lost etcd lease), start and stop with
 *   `onLeadershipChange`, and send only up to the partition's replicated high watermark.
 * - Receiving side (replication/replication-target.ts `TargetLeadership`): a replicated
 *   append goes through the leader path, as an acks=all produce: refused unless this broker
 *   leads the partition (NOT_LEADER_OR_FOLLOWER, which sends the remote's link to Metadata),
 *   stamped with the leader epoch, answered once the ISR holds it and only if this broker
 *   still leads at that epoch. The handshake answers only for partitions led here.
 *
 * The dedup table and the origin index need nothing here: both are functions of the log,
 * whose markers followers copy verbatim, and the replica manager drops the dedup table when a
 * follower becomes leader so it is rebuilt from the log (replica-manager.ts #becomeLeader).
 */
import type { CommittedEnd } from '../replication/worker.js';
import type { ReplicatorLeadership } from '../replication/replicator.js';
import type { TargetLeadership } from '../replication/replication-target.js';
import type { ReplicaManager } from './replica-manager.js';

/** The sending side's view of leadership on this broker. */
export function replicatorLeadership(rm: ReplicaManager): ReplicatorLeadership {
  return {
    isLeading: (topic, partition) => rm.isLeading(topic, partition),
    onLeadershipChange: (listener) => rm.onLeadershipChange(listener),
    committedEnd: (topic, partition): CommittedEnd => ({
      // Nothing is sent past the replicated high watermark; a broker that stopped leading
      // sends nothing more at all (its worker is being stopped).
      end: () => {
        const r = rm.replica(topic, partition);
        return r !== undefined && r.role === 'leader' ? r.highWatermark : -1n;
      },
      onChange: (listener) => {
        const r = rm.replica(topic, partition);
        return r === undefined ? () => {} : r.onHighWatermark(listener);
      },
    }),
  };
}

/** The receiving side's view: the leader path of a replicated append (acks=all semantics). */
export function targetLeadership(rm: ReplicaManager, replicationTimeoutMs: number): TargetLeadership {
  return {
    leads: (topic, partition) => rm.isLeading(topic, partition),
    checkAppend: (topic, partition) => rm.checkProduce(topic, partition, -1),
    leaderEpochFor: (topic, partition) => rm.leaderEpochFor(topic, partition),
    awaitReplicated: async (topic, partition, lastOffset, leaderEpoch) => {
      await rm.awaitReplicated(topic, partition, lastOffset, replicationTimeoutMs);
      const refused = rm.checkAnswer(topic, partition, leaderEpoch);
      if (refused !== null) throw refused;
    },
  };
}
