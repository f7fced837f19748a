/**
 * Partition reassignment requests in etcd, as any broker of the region sees them (the admin
 * API's side; the controller executes them in etcd-controller-work.ts).
 *
 * A request is the key `reassignments/<topic>/<p>` = `{ target, original, requestedAt }`,
 * written by whichever broker the operator asked, after checking it against etcd (the topic
 * and partition exist, every target broker is registered). It is not on a lease: the
 * operator's CLI may go away (`--no-wait`) and a controller change must not lose it. The
 * controller deletes it in the transaction that completes the move; until then GET lists it
 * with the partition's current state and what the move waits for.
 *
 * Writing the request key rather than a forwarded RPC keeps etcd the only channel between
 * brokers, as for topic creation ("Topic creation from any broker" in the README), and the
 * request is already the record of the reassignment in progress (KIP-455 keeps it in the
 * partition state; here the adding and removing sets follow from target and replicas).
 */
import { ErrorCode, MeridianError } from '../errors.js';
import type { EtcdRegion, OpOptions } from './etcd-region.js';
import { parseBrokerInfo, parsePartitionState, parseTopicRecord, type PartitionState } from './partition-state.js';
import { parseReassignment, reassignmentSets, validateTarget, type Reassignment } from './reassign-plan.js';

/** A partition as the admin API shows it: its state, and its reassignment when one is in progress. */
export interface PartitionReassignmentView {
  readonly topic: string;
  readonly partition: number;
  readonly replicas: readonly number[];
  readonly leader: number;
  readonly leaderEpoch: number;
  readonly isr: readonly number[];
  readonly reassignment: ReassignmentProgress | null;
}

export interface ReassignmentProgress {
  readonly target: readonly number[];
  /** Cancelled: going back to `original`. */
  readonly cancelled: boolean;
  readonly original: readonly number[];
  /** Target brokers not among the replicas yet (the controller adds them first). */
  readonly adding: readonly number[];
  /** Current replicas outside the target (removed once every target replica is in sync). */
  readonly removing: readonly number[];
  /** Target replicas not in the ISR yet: what the move waits for. */
  readonly waitingFor: readonly number[];
  readonly requestedAt: number;
}

/** What `request` did: asked the controller, found the same request in progress, or had nothing to do. */
export type RequestOutcome = 'requested' | 'already-requested' | 'unchanged';

function progress(state: Pick<PartitionState, 'replicas' | 'isr'>, r: Reassignment): ReassignmentProgress {
  const cancelled = r.cancelled === true;
  const goal = cancelled ? r.original : r.target;
  const { adding, removing } = reassignmentSets(state.replicas, goal);
  return { target: r.target, cancelled, original: r.original, adding, removing, waitingFor: cancelled ? [] : r.target.filter((id) => !state.isr.includes(id)), requestedAt: r.requestedAt };
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => b[i] === x);
}

export class ReassignmentStore {
  readonly #region: EtcdRegion;

  constructor(region: EtcdRegion) {
    this.#region = region;
  }

  /**
   * Asks for `topic`-`partition` to end on `target` (the first leads). UNKNOWN_TOPIC for a
   * topic or partition etcd does not have, INVALID_REPLICA_ASSIGNMENT for a bad target,
   * REASSIGNMENT_IN_PROGRESS when another target is being applied (the same target again
   * is accepted: a retried request).
   */
  async request(topic: string, partition: number, target: readonly number[], options: OpOptions = {}): Promise<{ outcome: RequestOutcome; view: PartitionReassignmentView }> {
    const { client, keys } = this.#region;
    const view = await this.describe(topic, partition, options);
    const brokers = await this.#region.getPrefix(keys.brokersPrefix, parseBrokerInfo, options);
    validateTarget(topic, partition, target, new Set([...brokers.entries.values()].map((v) => v.value.nodeId)));
    if (view.reassignment !== null) {
      if (sameList(view.reassignment.target, target) && !view.reassignment.cancelled) return { outcome: 'already-requested', view };
      throw new MeridianError(
        ErrorCode.ReassignmentInProgress,
        `${topic}-${partition} is being reassigned to [${view.reassignment.target.join(', ')}] (asked at ${new Date(view.reassignment.requestedAt).toISOString()}); wait until it completes (meridian partitions list-reassignments), then ask again`,
      );
    }
    if (sameList(view.replicas, target)) return { outcome: 'unchanged', view };
    const key = keys.reassignment(topic, partition);
    const value: Reassignment = { target: [...target], original: [...view.replicas], requestedAt: Date.now() };
    const res = await this.#region.run(`request the reassignment of ${topic}-${partition}`, () => client.if(key, 'Create', '==', 0).then(client.put(key).value(JSON.stringify(value))).else(client.get(key)).commit(), options);
    if (!res.succeeded) {
      // Written meanwhile: by us (a retried call whose answer was lost), or by someone else.
      const kv = res.responses[0]?.response_range?.kvs[0];
      const other = kv === undefined ? undefined : parseReassignment(key, kv.value);
      if (other !== undefined && !sameList(other.target, target)) {
        throw new MeridianError(ErrorCode.ReassignmentInProgress, `${topic}-${partition} is being reassigned to [${other.target.join(', ')}]; wait until it completes, then ask again`);
      }
    }
    this.#region.logger?.info({ topic, partition, from: view.replicas, to: target }, 'partition reassignment requested');
    return { outcome: 'requested', view: { ...view, reassignment: progress(view, value) } };
  }

  /**
   * Cancels the partition's reassignment in progress: the controller puts the original
   * replicas back (reassign-plan.ts). NO_REASSIGNMENT_IN_PROGRESS when there is none; a
   * second cancellation is accepted.
   */
  async cancel(topic: string, partition: number, options: OpOptions = {}): Promise<PartitionReassignmentView> {
    const { client, keys } = this.#region;
    const key = keys.reassignment(topic, partition);
    for (;;) {
      const view = await this.describe(topic, partition, options);
      const cur = await this.#region.getJson(key, parseReassignment, options);
      if (cur === undefined) throw new MeridianError(ErrorCode.NoReassignmentInProgress, `${topic}-${partition} is not being reassigned (its replicas are [${view.replicas.join(', ')}]); nothing to cancel`);
      if (cur.value.cancelled === true) return view;
      const value: Reassignment = { ...cur.value, cancelled: true };
      // On the revision read: a request the controller completed (deleted) meanwhile is not revived.
      const res = await this.#region.run(`cancel the reassignment of ${topic}-${partition}`, () => client.if(key, 'Mod', '==', cur.modRevision.toString()).then(client.put(key).value(JSON.stringify(value))).commit(), options);
      if (res.succeeded) {
        this.#region.logger?.info({ topic, partition, target: cur.value.target, back: cur.value.original }, 'partition reassignment cancelled');
        return { ...view, reassignment: progress(view, value) };
      }
    }
  }

  /** One partition's state and its reassignment in progress (UNKNOWN_TOPIC when etcd has no such partition). */
  async describe(topic: string, partition: number, options: OpOptions = {}): Promise<PartitionReassignmentView> {
    const { client, keys } = this.#region;
    const [topicKey, stateKey, requestKey] = [keys.topic(topic), keys.partition(topic, partition), keys.reassignment(topic, partition)];
    // One transaction: the three reads at one revision.
    const res = await this.#region.run(`read ${topic}-${partition}`, () => client.if(topicKey, 'Create', '>', 0).then(client.get(topicKey), client.get(stateKey), client.get(requestKey)).commit(), options);
    const kvs = res.succeeded ? res.responses.map((r) => r.response_range?.kvs[0]) : [];
    const record = kvs[0] === undefined ? undefined : parseTopicRecord(topicKey, kvs[0].value);
    if (record === undefined) throw new MeridianError(ErrorCode.UnknownTopic, `topic ${topic} does not exist in region ${this.#region.region}`);
    if (!Number.isInteger(partition) || partition < 0 || partition >= record.partitions || kvs[1] === undefined) {
      throw new MeridianError(ErrorCode.UnknownTopic, `topic ${topic} has no partition ${partition} (it has ${record.partitions}: 0 to ${record.partitions - 1})`);
    }
    const state = parsePartitionState(stateKey, kvs[1].value);
    const r = kvs[2] === undefined ? undefined : parseReassignment(requestKey, kvs[2].value);
    return { topic, partition, replicas: state.replicas, leader: state.leader, leaderEpoch: state.leaderEpoch, isr: state.isr, reassignment: r === undefined ? null : progress(state, r) };
  }

  /** Every reassignment in progress in the region, with its partition's current state. */
  async list(options: OpOptions = {}): Promise<PartitionReassignmentView[]> {
    const { keys } = this.#region;
    const requests = await this.#region.getPrefix(keys.reassignmentsPrefix, parseReassignment, options);
    const out: PartitionReassignmentView[] = [];
    for (const [key, v] of requests.entries) {
      const tp = keys.reassignmentOf(key);
      if (tp === undefined) continue;
      const state = await this.#region.getJson(keys.partition(tp.topic, tp.partition), parsePartitionState, options);
      // A request whose partition is gone (topic deleted) is left out.
      if (state === undefined) continue;
      const st = state.value;
      out.push({ ...tp, replicas: st.replicas, leader: st.leader, leaderEpoch: st.leaderEpoch, isr: st.isr, reassignment: progress(st, v.value) });
    }
    return out.sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
  }
}
