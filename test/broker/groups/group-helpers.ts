/**
 * Helpers for the coordinator tests: request builders with the defaults a KafkaJS consumer
 * sends, and small drivers for "join until stable". Not a mock: every call goes to a real
 * GroupCoordinator over a real offset store in a temp directory.
 */
import assert from 'node:assert/strict';
import type { MeridianError } from '../../../src/errors.js';
import { GroupCoordinator, type GroupCoordinatorOptions } from '../../../src/broker/groups/group-coordinator.js';
import type { JoinGroupRequest, JoinGroupResult, OffsetCommitRequest } from '../../../src/broker/groups/group-api.js';
import { tmpDir } from '../../helpers/tmp-dir.js';

const cleanups: Array<() => Promise<void> | void> = [];

// The coordinator's timers are unref'd (in a broker the listening socket keeps the process
// alive), so a test awaiting a held JoinGroup needs something else to keep the loop running.
const keepAlive = setInterval(() => undefined, 60_000);
cleanups.push(() => clearInterval(keepAlive));

/** Runs in `after()`: closes every coordinator and removes every directory. */
export async function cleanupAll(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c();
}

export function freshDir(): string {
  const t = tmpDir('meridian-groups-');
  cleanups.push(t.cleanup);
  return t.dir;
}

export async function openCoordinator(options: Partial<GroupCoordinatorOptions> = {}): Promise<GroupCoordinator> {
  const gc = await GroupCoordinator.open({
    dir: options.dir ?? freshDir(),
    initialRebalanceDelayMs: 20,
    minSessionTimeoutMs: 10,
    ...options,
  });
  cleanups.push(() => gc.close());
  return gc;
}

export function joinReq(overrides: Partial<JoinGroupRequest> = {}): JoinGroupRequest {
  return {
    groupId: 'g',
    memberId: '',
    groupInstanceId: null,
    protocolType: 'consumer',
    protocols: [{ name: 'range', metadata: Buffer.from(`meta-${overrides.clientId ?? 'c'}`) }],
    sessionTimeoutMs: 10_000,
    rebalanceTimeoutMs: 1_000,
    clientId: 'c',
    clientHost: '/127.0.0.1',
    requireKnownMemberId: true,
    ...overrides,
  };
}

/** The code of a result's error, or null for none: what the tests compare. */
export function codeOf(error: MeridianError | null): string | null {
  return error?.code ?? null;
}

/** KIP-394's first round trip: MEMBER_ID_REQUIRED with a fresh id. */
export async function getMemberId(gc: GroupCoordinator, req: JoinGroupRequest): Promise<string> {
  const r = await gc.joinGroup(req);
  assert.equal(r.memberIdRequired, true, 'MEMBER_ID_REQUIRED');
  assert.equal(r.error, null);
  assert.ok(r.memberId.startsWith(`${req.clientId}-`), r.memberId);
  return r.memberId;
}

/** True if `p` settled within a few event-loop turns. */
export async function isSettled(p: Promise<unknown>, ms = 30): Promise<boolean> {
  let settled = false;
  void p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await sleep(ms);
  return settled;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface Joined {
  memberId: string;
  generationId: number;
  leader: string;
  result: JoinGroupResult;
}

/** Every request rejoins at once; returns the join results in request order. */
export async function rejoinAll(gc: GroupCoordinator, reqs: JoinGroupRequest[]): Promise<Joined[]> {
  const results = await Promise.all(reqs.map((r) => gc.joinGroup(r)));
  return results.map((result) => {
    assert.equal(result.error, null, `join error ${result.error?.message}`);
    return { memberId: result.memberId, generationId: result.generationId, leader: result.leader, result };
  });
}

/** Syncs every member, the leader last, giving each `assign-<memberId>`; returns assignments. */
export async function syncAll(gc: GroupCoordinator, joined: Joined[], groupId = 'g'): Promise<string[]> {
  const leader = joined.find((j) => j.memberId === j.leader);
  assert.ok(leader, 'one member is the leader');
  const followers = joined.filter((j) => j !== leader);
  const waits = followers.map((j) =>
    gc.syncGroup({ groupId, generationId: j.generationId, memberId: j.memberId, groupInstanceId: null, protocolType: null, protocolName: null, assignments: [] }),
  );
  const assignments = joined.map((j) => ({ memberId: j.memberId, assignment: Buffer.from(`assign-${j.memberId}`) }));
  const mine = await gc.syncGroup({ groupId, generationId: leader.generationId, memberId: leader.memberId, groupInstanceId: null, protocolType: null, protocolName: null, assignments });
  const theirs = await Promise.all(waits);
  for (const r of [mine, ...theirs]) assert.equal(r.error, null, `sync error ${r.error?.message}`);
  const byId = new Map([[leader.memberId, mine], ...followers.map((f, i) => [f.memberId, theirs[i]] as const)]);
  return joined.map((j) => (byId.get(j.memberId)?.assignment ?? Buffer.alloc(0)).toString());
}

/** Forms a Stable group of members named by `clientIds`; returns the join requests (with ids) and results. */
export async function stableGroup(
  gc: GroupCoordinator,
  clientIds: string[],
  overrides: Partial<JoinGroupRequest> = {},
): Promise<{ reqs: JoinGroupRequest[]; joined: Joined[] }> {
  const reqs: JoinGroupRequest[] = [];
  for (const clientId of clientIds) {
    const req = joinReq({ clientId, ...overrides });
    reqs.push({ ...req, memberId: await getMemberId(gc, req) });
  }
  const joined = await rejoinAll(gc, reqs);
  await syncAll(gc, joined, reqs[0].groupId);
  return { reqs, joined };
}

/** The heartbeat's error code, or null when accepted. */
export function heartbeat(gc: GroupCoordinator, j: { memberId: string; generationId: number }, groupId = 'g'): string | null {
  return codeOf(gc.heartbeat({ groupId, generationId: j.generationId, memberId: j.memberId, groupInstanceId: null }).error);
}

export function commitReq(
  groupId: string,
  generation: number,
  memberId: string,
  offsets: Array<[topic: string, partition: number, offset: bigint, metadata?: string | null]>,
): OffsetCommitRequest {
  const topics = new Map<string, OffsetCommitRequest['topics'][number]['partitions'][number][]>();
  for (const [topic, partition, offset, metadata] of offsets) {
    const list = topics.get(topic) ?? [];
    list.push({ partitionIndex: partition, committedOffset: offset, committedLeaderEpoch: 3, committedMetadata: metadata === undefined ? null : metadata });
    topics.set(topic, list);
  }
  return { groupId, generationIdOrMemberEpoch: generation, memberId, groupInstanceId: null, topics: [...topics].map(([name, partitions]) => ({ name, partitions })) };
}

/** Every partition's error code of a commit result (null: committed), flattened. */
export function commitCodes(result: { topics: readonly { partitions: readonly { error: MeridianError | null }[] }[] }): Array<string | null> {
  return result.topics.flatMap((t) => t.partitions.map((p) => codeOf(p.error)));
}
