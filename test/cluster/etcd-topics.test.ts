/**
 * Topics and partition states on a real etcd: creation (placement, batches of
 * transactions, explicit assignments, refusals), load-then-watch without a gap, the
 * leader's ISR compare-and-swap, and a corrupt value reported with its key.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MembersView } from '../../src/cluster/etcd-membership.js';
import { EtcdPartitionStateSource } from '../../src/cluster/etcd-state-source.js';
import type { PartitionEntry } from '../../src/cluster/etcd-topics.js';
import type { NamedPartitionState } from '../../src/cluster/partition-state-source.js';
import { MeridianError } from '../../src/errors.js';
import { startNode, TestEtcd, type TestNode } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

describe('etcd topics', () => {
  let etcd: TestEtcd;
  let nodes: TestNode[];
  let ctl: TestNode;

  before(async () => {
    etcd = await TestEtcd.start();
    // Small transactions, so that a 30-partition topic takes several.
    nodes = [];
    for (const id of [1, 2, 3]) nodes.push(await startNode(etcd, id, { controller: { maxTxnOps: 8 } }));
    ctl = await waitFor('a controller', () => nodes.find((n) => n.controller.isController()), 10_000, 20);
  });
  after(async () => {
    for (const n of nodes) await n.kill();
    await etcd.close();
  });

  it('30 partitions, RF 3 on 3 brokers: every partition written, each broker leads 10 and holds 30', async () => {
    const created = await ctl.controller.createTopic('orders', { partitions: 30, configs: { 'retention.ms': '60000' } });
    assert.equal(created.record.partitions, 30);
    assert.equal(created.record.replicationFactor, 3);
    const other = nodes.find((n) => n !== ctl)!;
    const snap = await other.topics.snapshot();
    const topic = snap.topics.get('orders')!;
    assert.deepEqual(topic.value, created.record);
    const parts = snap.partitions.get('orders')!;
    assert.deepEqual([...parts.keys()].sort((x, y) => x - y), Array.from({ length: 30 }, (_, i) => i));
    const leads = new Map<number, number>();
    const holds = new Map<number, number>();
    for (const [p, v] of parts) {
      assert.deepEqual(v.value, created.states[p]);
      assert.equal(v.value.leader, v.value.replicas[0]);
      assert.deepEqual(v.value.isr, v.value.replicas);
      leads.set(v.value.leader, (leads.get(v.value.leader) ?? 0) + 1);
      for (const r of v.value.replicas) holds.set(r, (holds.get(r) ?? 0) + 1);
    }
    assert.deepEqual([...leads].sort(), [[1, 10], [2, 10], [3, 10]]);
    assert.deepEqual([...holds].sort(), [[1, 30], [2, 30], [3, 30]]);
    await assert.rejects(ctl.controller.createTopic('orders', { partitions: 1 }), (e: unknown) => e instanceof MeridianError && e.code === 'TOPIC_EXISTS');
  });

  it('default RF is min(3, live); RF above the live brokers and bad assignments are refused', async () => {
    await assert.rejects(ctl.controller.createTopic('wide', { partitions: 3, replicationFactor: 4 }), (e: unknown) => e instanceof MeridianError && e.code === 'INVALID_REPLICATION_FACTOR' && /3 live brokers/.test(e.message));
    await assert.rejects(ctl.controller.createTopic('bad', { partitions: 1, assignment: [[1, 4]] }), (e: unknown) => e instanceof MeridianError && e.code === 'INVALID_REPLICA_ASSIGNMENT' && /broker 4/.test(e.message));
    assert.equal(await ctl.topics.getTopic('wide'), undefined, 'nothing written');
    const explicit = await ctl.controller.createTopic('pinned', { partitions: 0, assignment: [[3, 1], [2, 3]] });
    assert.deepEqual(explicit.states.map((s) => s.replicas), [[3, 1], [2, 3]]);
    assert.equal((await ctl.topics.getPartition('pinned', 1))!.value.leader, 2);
    const def = await ctl.controller.createTopic('plain', { partitions: 2 });
    assert.equal(def.record.replicationFactor, 3);
    await assert.rejects(nodes.find((n) => n !== ctl)!.controller.createTopic('nope', { partitions: 1 }), (e: unknown) => e instanceof MeridianError && e.code === 'NOT_CONTROLLER');
  });

  it('load then watch: every change after the snapshot arrives once, in order; alterIsr is a CAS', async () => {
    await ctl.controller.createTopic('isr', { partitions: 1, assignment: [[1, 2, 3]] });
    const leader = nodes.find((n) => n.nodeId === 1)!;
    const watcherNode = nodes.find((n) => n.nodeId === 3)!;
    const snap = await watcherNode.topics.snapshot();
    const seen: PartitionEntry[] = [];
    const watch = watcherNode.topics.watchPartitions(snap.revision + 1n, { changed: (e) => (e.topic === 'isr' ? seen.push(e) : undefined) });
    try {
      const start = snap.partitions.get('isr')!.get(0)!;
      // The leader shrinks the ISR.
      const shrunk = await leader.topics.alterIsr('isr', 0, [1, 2], start);
      assert.ok(shrunk.ok);
      assert.deepEqual(shrunk.state.value, { replicas: [1, 2, 3], leader: 1, leaderEpoch: 0, isr: [1, 2], partitionEpoch: 1 });
      // A second change decided from the old state is a conflict, answered with the current state.
      const stale = await leader.topics.alterIsr('isr', 0, [1], start);
      assert.equal(stale.ok, false);
      assert.ok(!stale.ok && stale.current !== undefined && stale.current.modRevision === shrunk.state.modRevision);
      assert.deepEqual(!stale.ok && stale.current!.value, shrunk.state.value);
      // From the current state it works.
      const expanded = await leader.topics.alterIsr('isr', 0, [1, 2, 3], shrunk.state);
      assert.ok(expanded.ok);
      assert.equal(expanded.state.value.partitionEpoch, 2);
      // An ISR without the leader is a programming error, refused before etcd.
      await assert.rejects(leader.topics.alterIsr('isr', 0, [2, 3], expanded.state), (e: unknown) => e instanceof MeridianError && e.code === 'INVALID_REPLICA_ASSIGNMENT');
      await waitFor('two changes watched', () => seen.length >= 2, 10_000, 20);
      assert.deepEqual(seen.map((e) => e.state.value.isr), [[1, 2], [1, 2, 3]]);
      assert.deepEqual(seen.map((e) => e.state.modRevision), [shrunk.state.modRevision, expanded.state.modRevision]);
    } finally {
      watch.close();
    }
  });

  it('the replica manager\'s source: states of existing topics, new topics as they come, the ISR CAS by epochs, broker addresses', async () => {
    const node = nodes.find((n) => n.nodeId === 2)!;
    const members = new MembersView(node.region);
    await members.start();
    const source = new EtcdPartitionStateSource(node.topics, members);
    await source.start();
    const seen: NamedPartitionState[] = [];
    const unsubscribe = source.subscribe((s) => seen.push(s));
    try {
      assert.equal([...source.states()].filter((s) => s.topic === 'orders').length, 30);
      assert.deepEqual(source.brokerAddress(3), { host: '127.0.0.1', port: 19003 });
      await ctl.controller.createTopic('later', { partitions: 2, assignment: [[2, 1], [1, 2]] });
      await waitFor('both partitions of the new topic', () => seen.filter((s) => s.topic === 'later').length === 2, 10_000, 20);
      const p0 = [...source.states()].find((s) => s.topic === 'later' && s.partition === 0)!;
      assert.deepEqual({ leader: p0.leader, isr: p0.isr }, { leader: 2, isr: [2, 1] });
      const ok = await source.alterIsr('later', 0, [2], { leaderEpoch: 0, partitionEpoch: 0 });
      assert.equal(ok.kind, 'ok');
      assert.deepEqual(ok.kind === 'ok' && ok.state.isr, [2]);
      const stale = await source.alterIsr('later', 0, [2, 1], { leaderEpoch: 0, partitionEpoch: 0 });
      assert.equal(stale.kind, 'conflict');
      assert.deepEqual((await node.topics.getPartition('later', 0))!.value.isr, [2]);
    } finally {
      unsubscribe();
      source.close();
      members.close();
    }
  });

  it('a corrupt value is an error naming its key', async () => {
    const key = ctl.region.keys.partition('orders', 3);
    await ctl.region.client.put(key).value('{"replicas": "all"}');
    await assert.rejects(ctl.topics.getPartition('orders', 3), (e: unknown) => e instanceof MeridianError && e.code === 'CORRUPT_METADATA' && e.message.includes(key) && /replicas/.test(e.message));
    await ctl.region.client.put(key).value('not json');
    await assert.rejects(ctl.topics.getPartition('orders', 3), (e: unknown) => e instanceof MeridianError && e.code === 'CORRUPT_METADATA' && /not JSON/.test(e.message));
  });
});
