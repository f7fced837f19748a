/**
 * The controller on a real etcd: election and failover with a higher epoch, fencing of a
 * deposed controller's writes, and leader election when brokers leave and return.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NO_LEADER } from '../../src/cluster/partition-state.js';
import { MeridianError } from '../../src/errors.js';
import { startNode, TestEtcd, type TestNode } from '../helpers/etcd.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait.js';

describe('etcd controller', () => {
  let etcd: TestEtcd;
  const nodes: TestNode[] = [];
  const start = async (id: number, region: string, o: Parameters<typeof startNode>[2] = {}) => {
    const n = await startNode(etcd, id, { region, ...o });
    nodes.push(n);
    return n;
  };
  const controllerOf = (ns: TestNode[]) => ns.find((n) => n.controller.isController());

  before(async () => {
    etcd = await TestEtcd.start();
  });
  after(async () => {
    for (const n of nodes) await n.kill();
    await etcd.close();
  });

  it('one controller; when it dies another takes over within the TTL at a higher epoch, and the old one is fenced', async () => {
    const proxy = new TcpProxy({ targetPort: etcd.clientPort });
    await proxy.start();
    try {
      const a = await start(1, 'failover', { endpoint: `127.0.0.1:${proxy.port}` });
      await waitFor('broker 1 controller', () => a.controller.isController(), 10_000, 20);
      const b = await start(2, 'failover');
      const c = await start(3, 'failover');
      await waitFor('everyone sees broker 1 as controller', () => [a, b, c].every((n) => n.controller.controllerId() === 1), 10_000, 20);
      assert.ok(!b.controller.isController() && !c.controller.isController());
      const oldEpoch = a.controller.epoch;

      // Cut broker 1 off etcd: it still believes it is the controller when it writes.
      proxy.setRefusing(true);
      const cutAt = Date.now();
      const fenced = a.controller.fencedTxn('probe write', [], [a.region.client.put(a.region.keys.root + 'probe').value('x')], [], { timeoutMs: 30_000 });
      fenced.catch(() => undefined); // asserted below, once etcd is reachable again
      const next = await waitFor('another controller', () => controllerOf([b, c]), 10_000, 20);
      assert.ok(Date.now() - cutAt < 2000 + 2500, `took over ${Date.now() - cutAt} ms after the cut (TTL 2 s)`);
      assert.ok(next.controller.epoch > oldEpoch, `epoch ${next.controller.epoch} > ${oldEpoch}`);
      await waitFor('every live broker sees the new controller', () => [b, c].every((n) => n.controller.controllerId() === next.nodeId), 10_000, 20);

      // Reconnect: the write that waited reaches etcd and is refused there.
      proxy.setRefusing(false);
      await assert.rejects(fenced, (e: unknown) => e instanceof MeridianError && e.code === 'NOT_CONTROLLER' && /refused by etcd/.test(e.message));
      assert.equal(await next.region.client.get(next.region.keys.root + 'probe').string(), null, 'the fenced write left nothing');
      await waitFor('broker 1 knows it is not the controller', () => !a.controller.isController(), 10_000, 20);
      await assert.rejects(a.controller.createTopic('late', { partitions: 1 }), (e: unknown) => e instanceof MeridianError && e.code === 'NOT_CONTROLLER');
    } finally {
      await proxy.close();
    }
  });

  it('a broker loss moves leadership to an in-sync replica (epoch + 1) and takes the dead broker out of the ISR; no live ISR member: offline; the return restores the preferred leader', async () => {
    const [a, b, c] = [await start(11, 'loss'), await start(12, 'loss'), await start(13, 'loss')];
    const ctl = await waitFor('a controller', () => controllerOf([a, b, c]), 10_000, 20);
    await ctl.controller.createTopic('t', { partitions: 1, assignment: [[11, 12, 13]] });
    await ctl.controller.createTopic('solo', { partitions: 1, assignment: [[12]] });
    assert.equal((await a.topics.getPartition('t', 0))!.value.leader, 11);

    // Broker 12 is a follower of t-0 and the only replica of solo-0 (were it the controller,
    // the failover would be part of what is tested).
    await b.kill();
    await waitFor('12 out of the ISR of t-0', async () => {
      const s = (await a.topics.getPartition('t', 0))!.value;
      return s.isr.length === 2 ? s : undefined;
    }, 15_000, 50);
    const t0 = (await a.topics.getPartition('t', 0))!.value;
    assert.deepEqual(t0, { replicas: [11, 12, 13], leader: 11, isr: [11, 13], leaderEpoch: 0, partitionEpoch: 1 }, 'a follower lost: same leader and leader epoch');
    const solo = await waitFor('solo-0 offline', async () => {
      const s = (await a.topics.getPartition('solo', 0))!.value;
      return s.leader === NO_LEADER ? s : undefined;
    }, 15_000, 50);
    assert.deepEqual(solo, { replicas: [12], leader: NO_LEADER, isr: [12], leaderEpoch: 1, partitionEpoch: 1 });

    // Now the leader of t-0 dies (the controller too, when it is 11): the next in-sync replica
    // in replica order leads.
    await a.kill();
    const moved = await waitFor('t-0 led by 13', async () => {
      const s = (await c.topics.getPartition('t', 0))!.value;
      return s.leader === 13 ? s : undefined;
    }, 15_000, 50);
    assert.deepEqual(moved, { replicas: [11, 12, 13], leader: 13, isr: [13], leaderEpoch: 1, partitionEpoch: 2 });
    await waitFor('13 controller', () => c.controller.isController(), 10_000, 20);

    // 12 returns: solo-0's only ISR member is back, it leads again (clean).
    const b2 = await start(12, 'loss');
    const back = await waitFor('solo-0 led by 12', async () => {
      const s = (await b2.topics.getPartition('solo', 0))!.value;
      return s.leader === 12 ? s : undefined;
    }, 15_000, 50);
    assert.deepEqual(back, { replicas: [12], leader: 12, isr: [12], leaderEpoch: 2, partitionEpoch: 2 });

    // 11 returns and its leader adds it back to the ISR: the preferred replica leads again.
    const a2 = await start(11, 'loss');
    const cur = (await c.topics.getPartition('t', 0))!;
    const r = await c.topics.alterIsr('t', 0, [13, 11], cur);
    assert.ok(r.ok);
    const preferred = await waitFor('t-0 led by 11 again', async () => {
      const s = (await a2.topics.getPartition('t', 0))!.value;
      return s.leader === 11 ? s : undefined;
    }, 15_000, 50);
    assert.deepEqual(preferred, { replicas: [11, 12, 13], leader: 11, isr: [13, 11], leaderEpoch: 2, partitionEpoch: 4 });
  });

  it('a new controller reconciles what changed while no controller ran', async () => {
    const a = await start(21, 'takeover');
    await waitFor('21 controller', () => a.controller.isController(), 10_000, 20);
    const b = await start(22, 'takeover');
    await a.controller.createTopic('x', { partitions: 2, assignment: [[22, 21], [21, 22]] });
    // The controller dies, then 22 before it could take over; only 21 comes back, and takes
    // over with a state in which 22 still leads x-0.
    await a.kill();
    await b.kill();
    await waitFor('both registrations expired', async () => (await etcd2Keys(a)) === 0, 15_000, 50);
    const a2 = await start(21, 'takeover');
    await waitFor('21 controller again', () => a2.controller.isController(), 10_000, 20);
    const x0 = await waitFor('x-0 moved to 21', async () => {
      const s = (await a2.topics.getPartition('x', 0))!.value;
      return s.leader === 21 ? s : undefined;
    }, 10_000, 50);
    assert.deepEqual(x0, { replicas: [22, 21], leader: 21, isr: [21], leaderEpoch: 1, partitionEpoch: 1 });
    const x1 = (await a2.topics.getPartition('x', 1))!.value;
    assert.deepEqual(x1, { replicas: [21, 22], leader: 21, isr: [21], leaderEpoch: 0, partitionEpoch: 1 });
  });
});

/** Registered brokers of a node's region, read through a fresh client (the node is dead). */
async function etcd2Keys(n: TestNode): Promise<number> {
  const { EtcdRegion } = await import('../../src/cluster/etcd-region.js');
  const r = new EtcdRegion({ region: n.region.region, etcd: { endpoints: n.region.status().endpoints, prefix: '/meridian-test' } });
  try {
    return (await r.getPrefix(r.keys.brokersPrefix, (_k, raw) => raw)).entries.size;
  } finally {
    r.close();
  }
}
