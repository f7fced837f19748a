/**
 * Where replicas go and who leads: the pure decisions of the controller (no etcd, no I/O),
 * so they are tested on their own and every controller takes the same ones.
 *
 * - Placement (`assignReplicas`): round-robin from a rotating start, as Kafka's
 *   AdminUtils places replicas: partition i is led by broker (start + i) mod n, its
 *   followers are the next brokers with a shift that grows every n partitions so that the
 *   follower sets vary too. Leaders and replicas spread evenly (30 partitions, RF 3, 3
 *   brokers: each broker leads 10 and holds 30). With racks, the broker list alternates
 *   racks first (Kafka's rack-alternated list), so consecutive replicas sit on different
 *   racks where the racks allow it.
 * - Election (`reconcilePartition`): the leader is the first replica, in replica order,
 *   that is alive and in the ISR; dead brokers leave the ISR (as KRaft fences a broker),
 *   except that the ISR never becomes empty: with no live member it stays as it was and
 *   the partition goes offline (leader -1) until one of its members returns, unless
 *   unclean leader election is on.
 * - Preferred leader (`preferredLeader`): once the first replica is alive and back in the
 *   ISR it leads again.
 */
import { ErrorCode, MeridianError } from '../errors.js';
import { NO_LEADER, type PartitionState } from './partition-state.js';

export interface PlacementBroker {
  readonly nodeId: number;
  readonly rack: string | null;
}

/** Kafka's default is min(3, live brokers) when neither the request nor the config says. */
export function resolveReplicationFactor(requested: number | null, configured: number | null, liveBrokers: number): number {
  const rf = requested !== null && requested !== -1 ? requested : configured ?? Math.min(3, liveBrokers);
  if (!Number.isInteger(rf) || rf < 1 || rf > liveBrokers) {
    throw new MeridianError(
      ErrorCode.InvalidReplicationFactor,
      `replication factor ${rf} is not possible with ${liveBrokers} live broker${liveBrokers === 1 ? '' : 's'} in the region: give a factor from 1 to ${liveBrokers}, or start more brokers`,
    );
  }
  return rf;
}

/** The brokers in placement order: by node id, alternating racks when any broker has one. */
function placementOrder(brokers: readonly PlacementBroker[]): number[] {
  const sorted = [...brokers].sort((a, b) => a.nodeId - b.nodeId);
  if (!sorted.some((b) => b.rack !== null)) return sorted.map((b) => b.nodeId);
  const byRack = new Map<string, number[]>();
  for (const b of sorted) {
    const rack = b.rack ?? '';
    byRack.set(rack, [...(byRack.get(rack) ?? []), b.nodeId]);
  }
  const racks = [...byRack.keys()].sort();
  const out: number[] = [];
  for (let i = 0; out.length < sorted.length; i++) {
    for (const rack of racks) {
      const id = byRack.get(rack)![i];
      if (id !== undefined) out.push(id);
    }
  }
  return out;
}

/**
 * Replica lists for `partitions` new partitions (numbered from `firstPartition`).
 * `start` rotates the first leader; the controller passes a random one per topic so that
 * many topics do not all start on the same broker.
 */
export function assignReplicas(
  brokers: readonly PlacementBroker[],
  partitions: number,
  replicationFactor: number,
  start = 0,
  firstPartition = 0,
): number[][] {
  const order = placementOrder(brokers);
  const n = order.length;
  const rackOf = new Map(brokers.map((b) => [b.nodeId, b.rack]));
  const hasRacks = brokers.some((b) => b.rack !== null);
  resolveReplicationFactor(replicationFactor, null, n);
  const out: number[][] = [];
  for (let k = 0; k < partitions; k++) {
    const i = firstPartition + k;
    const first = (start + i) % n;
    // The shift moves the followers once per round over the brokers, so partition i and
    // i + n have the same leader but different followers.
    const shift = Math.floor((start + i) / n) % Math.max(1, n - 1);
    const candidates: number[] = [];
    for (let j = 0; j < n - 1; j++) candidates.push(order[(first + 1 + ((shift + j) % (n - 1))) % n]!);
    const replicas = [order[first]!];
    // With racks: a follower on a rack not used yet first (in candidate order), then the rest.
    const racksUsed = new Set([rackOf.get(order[first]!)]);
    for (const id of candidates) {
      if (replicas.length === replicationFactor) break;
      if (!hasRacks || !racksUsed.has(rackOf.get(id))) {
        replicas.push(id);
        racksUsed.add(rackOf.get(id));
      }
    }
    for (const id of candidates) if (replicas.length < replicationFactor && !replicas.includes(id)) replicas.push(id);
    out.push(replicas);
  }
  return out;
}

/** Checks an explicit assignment (CreateTopics' replica_assignment) against the registered brokers. */
export function validateAssignment(assignment: readonly (readonly number[])[], registered: ReadonlySet<number>): void {
  const bad = (detail: string) => new MeridianError(ErrorCode.InvalidReplicaAssignment, `replica assignment ${JSON.stringify(assignment)}: ${detail}`);
  if (assignment.length === 0) throw bad('no partitions');
  const rf = assignment[0]!.length;
  assignment.forEach((replicas, p) => {
    if (replicas.length === 0) throw bad(`partition ${p} has no replica`);
    if (replicas.length !== rf) throw bad(`partition ${p} has ${replicas.length} replicas and partition 0 has ${rf}; every partition needs the same number`);
    if (new Set(replicas).size !== replicas.length) throw bad(`partition ${p} names a broker twice`);
    const unknown = replicas.filter((id) => !registered.has(id));
    if (unknown.length > 0) throw bad(`partition ${p} names broker${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}, not registered in the region`);
  });
}

/** The state of a new partition: the first replica leads, every replica is in sync (the log is empty). */
export function initialState(replicas: readonly number[]): PartitionState {
  return { replicas: [...replicas], leader: replicas[0]!, leaderEpoch: 0, isr: [...replicas], partitionEpoch: 0 };
}

/**
 * The state a partition should have given which brokers are alive, or null when it already
 * has it: dead brokers out of the ISR (never emptying it), and a live in-sync leader
 * (elected in replica order) or NO_LEADER. A leader change bumps leaderEpoch; every change
 * bumps partitionEpoch.
 */
export function reconcilePartition(state: PartitionState, alive: ReadonlySet<number>, uncleanLeaderElection = false): PartitionState | null {
  const liveIsr = state.isr.filter((id) => alive.has(id));
  const leaderOk = state.leader !== NO_LEADER && alive.has(state.leader) && state.isr.includes(state.leader);
  if (leaderOk) {
    if (liveIsr.length === state.isr.length) return null;
    return { ...state, isr: liveIsr, partitionEpoch: state.partitionEpoch + 1 };
  }
  const clean = state.replicas.find((id) => liveIsr.includes(id));
  if (clean !== undefined) {
    return { ...state, leader: clean, isr: liveIsr, leaderEpoch: state.leaderEpoch + 1, partitionEpoch: state.partitionEpoch + 1 };
  }
  const anyLive = state.replicas.find((id) => alive.has(id));
  if (uncleanLeaderElection && anyLive !== undefined) {
    // Data loss accepted by configuration: the chosen replica may miss acknowledged records.
    return { ...state, leader: anyLive, isr: [anyLive], leaderEpoch: state.leaderEpoch + 1, partitionEpoch: state.partitionEpoch + 1 };
  }
  // Offline. The ISR is left as it was: its members hold every acknowledged record, and the
  // first of them to return leads again without loss.
  if (state.leader === NO_LEADER) return null;
  return { ...state, leader: NO_LEADER, leaderEpoch: state.leaderEpoch + 1, partitionEpoch: state.partitionEpoch + 1 };
}

/** The preferred replica as leader, when it is alive and in the ISR and not leading yet; else null. */
export function preferredLeader(state: PartitionState, alive: ReadonlySet<number>): PartitionState | null {
  const preferred = state.replicas[0]!;
  if (state.leader === preferred || !alive.has(preferred) || !state.isr.includes(preferred)) return null;
  return { ...state, leader: preferred, leaderEpoch: state.leaderEpoch + 1, partitionEpoch: state.partitionEpoch + 1 };
}
