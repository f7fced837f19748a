import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assignReplicas, initialState, preferredLeader, reconcilePartition, resolveReplicationFactor, validateAssignment } from '../../src/cluster/assignment.js';
import { NO_LEADER, type PartitionState } from '../../src/cluster/partition-state.js';
import { MeridianError } from '../../src/errors.js';

const brokers = (...ids: number[]) => ids.map((nodeId) => ({ nodeId, rack: null }));

function counts(assignment: number[][]): { leads: Map<number, number>; holds: Map<number, number> } {
  const leads = new Map<number, number>();
  const holds = new Map<number, number>();
  for (const r of assignment) {
    leads.set(r[0]!, (leads.get(r[0]!) ?? 0) + 1);
    for (const id of r) holds.set(id, (holds.get(id) ?? 0) + 1);
  }
  return { leads, holds };
}

describe('replica placement', () => {
  it('30 partitions, RF 3, 3 brokers: each broker leads 10 and holds 30, for every start', () => {
    for (const start of [0, 1, 2, 7]) {
      const a = assignReplicas(brokers(1, 2, 3), 30, 3, start);
      assert.equal(a.length, 30);
      for (const r of a) assert.equal(new Set(r).size, 3, `distinct replicas ${r}`);
      const { leads, holds } = counts(a);
      assert.deepEqual([...leads.entries()].sort(), [[1, 10], [2, 10], [3, 10]]);
      assert.deepEqual([...holds.entries()].sort(), [[1, 30], [2, 30], [3, 30]]);
    }
  });

  it('RF 2 on 5 brokers: leaders and replicas spread evenly, follower sets vary', () => {
    const a = assignReplicas(brokers(5, 1, 4, 2, 3), 50, 2, 3);
    const { leads, holds } = counts(a);
    for (const id of [1, 2, 3, 4, 5]) {
      assert.equal(leads.get(id), 10);
      const held = holds.get(id)!;
      assert.ok(held >= 18 && held <= 22, `broker ${id} holds ${held} of 100 replicas`);
    }
    const pairsLedBy1 = new Set(a.filter((r) => r[0] === 1).map((r) => r[1]));
    assert.ok(pairsLedBy1.size > 1, 'broker 1 does not always have the same follower');
  });

  it('with racks, consecutive replicas are on different racks', () => {
    const a = assignReplicas(
      [
        { nodeId: 1, rack: 'a' },
        { nodeId: 2, rack: 'a' },
        { nodeId: 3, rack: 'b' },
        { nodeId: 4, rack: 'b' },
      ],
      8,
      2,
      0,
    );
    const rack = (id: number) => (id <= 2 ? 'a' : 'b');
    for (const r of a) assert.notEqual(rack(r[0]!), rack(r[1]!), `replicas ${r} share a rack`);
  });

  it('replication factor: default min(3, live), refused above live brokers or below 1', () => {
    assert.equal(resolveReplicationFactor(null, null, 2), 2);
    assert.equal(resolveReplicationFactor(-1, null, 5), 3);
    assert.equal(resolveReplicationFactor(null, 2, 5), 2);
    for (const bad of [4, 0]) {
      assert.throws(() => resolveReplicationFactor(bad, null, 3), (e: unknown) => e instanceof MeridianError && e.code === 'INVALID_REPLICATION_FACTOR' && /3 live brokers/.test(e.message));
    }
    assert.throws(() => assignReplicas(brokers(1, 2), 3, 3), /INVALID_REPLICATION_FACTOR|not possible/);
  });

  it('explicit assignments are checked', () => {
    validateAssignment([[1, 2], [2, 3]], new Set([1, 2, 3]));
    const refused = (a: number[][], why: RegExp) =>
      assert.throws(() => validateAssignment(a, new Set([1, 2, 3])), (e: unknown) => e instanceof MeridianError && e.code === 'INVALID_REPLICA_ASSIGNMENT' && why.test(e.message));
    refused([[1, 1]], /twice/);
    refused([[1, 9]], /broker 9/);
    refused([[1, 2], [3]], /same number/);
  });
});

describe('leader election', () => {
  const s = (o: Partial<PartitionState>): PartitionState => ({ ...initialState([1, 2, 3]), ...o });

  it('leader lost: first live in-sync replica in replica order leads, epochs + 1, dead broker out of the ISR', () => {
    const next = reconcilePartition(s({ leader: 1, isr: [1, 2, 3], leaderEpoch: 4, partitionEpoch: 9 }), new Set([2, 3]));
    assert.deepEqual(next, { replicas: [1, 2, 3], leader: 2, isr: [2, 3], leaderEpoch: 5, partitionEpoch: 10 });
    // Replica order, not ISR order: 3 is before 2 in the replicas here.
    const r = reconcilePartition({ replicas: [1, 3, 2], leader: 1, isr: [2, 1, 3], leaderEpoch: 0, partitionEpoch: 0 }, new Set([2, 3]));
    assert.equal(r!.leader, 3);
  });

  it('a follower lost: out of the ISR, same leader and leaderEpoch', () => {
    const next = reconcilePartition(s({ leader: 1, isr: [1, 2, 3] }), new Set([1, 3]));
    assert.deepEqual(next, { replicas: [1, 2, 3], leader: 1, isr: [1, 3], leaderEpoch: 0, partitionEpoch: 1 });
    assert.equal(reconcilePartition(s({}), new Set([1, 2, 3])), null, 'nothing to do');
  });

  it('no live in-sync replica: offline (ISR kept), unless unclean election', () => {
    const st = s({ leader: 1, isr: [1], leaderEpoch: 2, partitionEpoch: 5 });
    const off = reconcilePartition(st, new Set([2, 3]))!;
    assert.deepEqual(off, { replicas: [1, 2, 3], leader: NO_LEADER, isr: [1], leaderEpoch: 3, partitionEpoch: 6 });
    assert.equal(reconcilePartition(off, new Set([2, 3])), null, 'stays offline without another change');
    const unclean = reconcilePartition(st, new Set([2, 3]), true)!;
    assert.deepEqual(unclean, { replicas: [1, 2, 3], leader: 2, isr: [2], leaderEpoch: 3, partitionEpoch: 6 });
    // The ISR member returns: it leads again, without loss.
    const back = reconcilePartition(off, new Set([1, 2, 3]))!;
    assert.deepEqual(back, { replicas: [1, 2, 3], leader: 1, isr: [1], leaderEpoch: 4, partitionEpoch: 7 });
  });

  it('preferred leader: only once the first replica is alive and in the ISR', () => {
    const st = s({ leader: 2, isr: [2, 3], leaderEpoch: 1, partitionEpoch: 1 });
    assert.equal(preferredLeader(st, new Set([1, 2, 3])), null, 'not in the ISR yet');
    const inIsr = { ...st, isr: [2, 3, 1], partitionEpoch: 2 };
    assert.equal(preferredLeader(inIsr, new Set([2, 3])), null, 'not alive');
    assert.deepEqual(preferredLeader(inIsr, new Set([1, 2, 3])), { replicas: [1, 2, 3], leader: 1, isr: [2, 3, 1], leaderEpoch: 2, partitionEpoch: 3 });
  });
});
