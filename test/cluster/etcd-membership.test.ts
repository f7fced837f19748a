/**
 * Membership on a real etcd: registration on a lease, the members watch, expiry after a
 * broker stops renewing (as on SIGKILL), duplicate node ids, and the self-fencing order:
 * a broker cut off from etcd stops counting itself a member before etcd deletes its key.
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { MembersView } from '../../src/cluster/etcd-membership.js';
import { EtcdRegion } from '../../src/cluster/etcd-region.js';
import { MeridianError } from '../../src/errors.js';
import { startNode, TestEtcd, type TestNode } from '../helpers/etcd.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait.js';

describe('etcd membership', () => {
  let etcd: TestEtcd;
  let observerRegion: EtcdRegion;
  const nodes: TestNode[] = [];

  before(async () => {
    etcd = await TestEtcd.start();
    observerRegion = new EtcdRegion({ region: 'us-east', etcd: { endpoints: [etcd.endpoint], prefix: '/meridian-test' } });
  });
  after(async () => {
    for (const n of nodes) await n.kill();
    observerRegion.close();
    await etcd.close();
  });

  it('a missing etcd binary is an error naming the Debian package, not a skip', async () => {
    await assert.rejects(TestEtcd.start({ binary: '/nonexistent/etcd' }), /\/nonexistent\/etcd is missing.*etcd-server/);
  });

  it('brokers join and leave; a broker that stops renewing leaves within TTL + slack', async () => {
    const view = new MembersView(observerRegion);
    const joined: number[] = [];
    const left: Array<{ id: number; at: number }> = [];
    view.on('joined', (b) => joined.push(b.nodeId));
    view.on('left', (id) => left.push({ id, at: Date.now() }));
    await view.start();
    try {
      const a = await startNode(etcd, 1);
      const b = await startNode(etcd, 2);
      nodes.push(a, b);
      await waitFor('both joined', () => joined.includes(1) && joined.includes(2), 10_000, 20);
      assert.deepEqual([...view.members().keys()].sort(), [1, 2]);
      assert.equal(view.members().get(2)!.kafka.port, 19002);
      assert.ok(a.membership.brokerEpoch > 0n);

      // SIGKILL-like: keepalives stop, nothing revoked.
      const killedAt = Date.now();
      await a.kill();
      await waitFor('broker 1 left', () => left.some((l) => l.id === 1), 10_000, 20);
      const tookMs = left.find((l) => l.id === 1)!.at - killedAt;
      assert.ok(tookMs <= 2000 + 1500, `left ${tookMs} ms after its last keepalive (TTL 2 s)`);
      assert.deepEqual([...view.members().keys()], [2]);

      // A clean stop revokes: gone at once.
      const stoppedAt = Date.now();
      await b.close();
      await waitFor('broker 2 left', () => left.some((l) => l.id === 2), 10_000, 20);
      assert.ok(left.find((l) => l.id === 2)!.at - stoppedAt < 1500, 'revoked lease: the key goes at once');
    } finally {
      view.close();
    }
  });

  it('a node id held by another live broker is refused, naming it', async () => {
    const a = await startNode(etcd, 7);
    nodes.push(a);
    await assert.rejects(
      startNode(etcd, 7, { registerWaitMs: 2500 }),
      (e: unknown) => e instanceof MeridianError && e.code === 'NODE_ID_IN_USE' && /node id 7 is in use/.test(e.message) && /127\.0\.0\.1:19007/.test(e.message),
    );
    // The first one is unaffected.
    assert.ok(a.membership.isLeased());
  });

  it('a restarted broker takes its node id over once the dead registration expires', async () => {
    const a = await startNode(etcd, 8);
    await a.kill();
    const again = await startNode(etcd, 8); // waits for the old lease to expire
    nodes.push(again);
    assert.ok(again.membership.isLeased());
  });

  it('self-fencing: a broker cut off from etcd stops counting itself a member before etcd deletes its key', async () => {
    const proxy = new TcpProxy({ targetPort: etcd.clientPort });
    await proxy.start();
    const view = new MembersView(observerRegion);
    let deletedAt = 0;
    view.on('left', (id) => {
      if (id === 9) deletedAt = performance.now();
    });
    await view.start();
    const node = await startNode(etcd, 9, { endpoint: `127.0.0.1:${proxy.port}` });
    nodes.push(node);
    try {
      await waitFor('broker 9 seen', () => view.members().has(9), 10_000, 20);
      let fencedAt = 0;
      node.membership.on('fenced', () => (fencedAt = performance.now()));
      const validUntil = node.membership.leaseValidUntil();
      assert.ok(validUntil > performance.now());
      proxy.setRefusing(true);
      await waitFor('etcd deleted the key of broker 9', () => deletedAt > 0, 15_000, 10);
      assert.ok(fencedAt > 0, 'the broker fenced itself');
      assert.ok(fencedAt < deletedAt, `fenced at ${fencedAt.toFixed(0)}, key deleted at ${deletedAt.toFixed(0)}`);
      assert.ok(!node.membership.isLeased(deletedAt));
      assert.equal(node.region.status().reachable, false);
      // Back online: the lease is gone, so it registers again under a new lease.
      const oldEpoch = node.membership.brokerEpoch;
      proxy.setRefusing(false);
      await waitFor('broker 9 registered again', () => node.membership.isLeased() && node.membership.brokerEpoch > oldEpoch, 15_000, 20);
      await waitFor('broker 9 back in the view', () => view.members().has(9), 10_000, 20);
      assert.equal(node.region.status().reachable, true);
    } finally {
      view.close();
      await proxy.close();
    }
  });
});
