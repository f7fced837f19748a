/**
 * Follower fetches need ClusterAction on the cluster when ACLs are enforced (Kafka's rule;
 * broker/kafka/fetch.ts): on two brokers of a region cluster (the in-memory state source of
 * replica-cluster.ts), a Fetch with replica_id 2 from a principal without ClusterAction
 * answers TOPIC_AUTHORIZATION_FAILED, while a consumer's fetch (replica_id -1) of the same
 * partition is READ-checked as before; granting ClusterAction lets the follower fetch.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { kafkaCode } from '../../src/protocol/kafka/error-mapping.js';
import { ZERO_UUID } from '../../src/protocol/kafka/messages/index.js';
import { aclBinding, AclOperation, AclPermissionType, CLUSTER_RESOURCE_NAME, ResourceType } from '../../src/security/acl.js';
import { RawClient } from '../helpers/raw-kafka.js';
import { startReplicaCluster, type ReplicaCluster } from './replica-cluster.js';

let cluster: ReplicaCluster;

before(async () => {
  cluster = await startReplicaCluster({ brokers: 2, overrides: { security: { authorization: { enabled: true, allowEveryoneIfNoAclFound: true } } } });
});

after(async () => {
  await cluster?.close();
});

async function fetchAs(port: number, replicaId: number, topic: string): Promise<number> {
  const c = await RawClient.connect(port);
  try {
    const r = await c.request(ApiKey.Fetch, 11, {
      clusterId: null,
      replicaId,
      replicaState: { replicaId: -1, replicaEpoch: -1n },
      maxWaitMs: 0,
      minBytes: 0,
      maxBytes: 1 << 20,
      isolationLevel: 0,
      sessionId: 0,
      sessionEpoch: -1,
      topics: [{ topic, topicId: ZERO_UUID, partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset: 0n, lastFetchedEpoch: -1, logStartOffset: -1n, partitionMaxBytes: 1 << 20, replicaDirectoryId: ZERO_UUID }] }],
      forgottenTopicsData: [],
      rackId: '',
    });
    return r.body.responses[0].partitions[0].errorCode as number;
  } finally {
    c.close();
  }
}

test('a follower fetch needs ClusterAction on the cluster; a consumer fetch needs READ on the topic', async () => {
  const topic = 'acl-follower';
  await cluster.createTopic(topic, 1, 1);
  const leader = cluster.node(1);
  const clusterAcl = (principal: string) => aclBinding({ resourceType: ResourceType.Cluster, name: CLUSTER_RESOURCE_NAME, principal, operation: AclOperation.ClusterAction, permissionType: AclPermissionType.Allow });
  // An ACL on the cluster for someone else: the anonymous principal no longer has ClusterAction.
  assert.deepEqual(leader.broker.security.acls.create([clusterAcl('User:replicator')]).map((r) => r.error), [null]);
  assert.equal(await fetchAs(leader.port, 2, topic), kafkaCode('TOPIC_AUTHORIZATION_FAILED'));
  // A consumer of the same partition: READ on the topic (no topic ACL, allowed for everyone).
  assert.equal(await fetchAs(leader.port, -1, topic), 0);
  assert.deepEqual(leader.broker.security.acls.create([clusterAcl('User:ANONYMOUS')]).map((r) => r.error), [null]);
  assert.equal(await fetchAs(leader.port, 2, topic), 0);
});
