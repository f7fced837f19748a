/**
 * Riding through an etcd outage (src/cluster/README.md, "etcd unavailable for everyone"):
 * the question a leader whose lease window is ending asks the other brokers, and its answer.
 *
 *   EtcdContact (internal API key 32004, v0, on the Kafka port, never advertised; ClusterAction
 *   with authorization on, like the other broker-to-broker requests):
 *     request:  nodeId INT32 (the asker),
 *               led ARRAY<[topic STRING, partition INT32, leaderEpoch INT32, partitionEpoch INT32]>
 *               (what it leads, as it knows each partition's state)
 *     response: errorCode INT16, errorMessage NULLABLE_STRING, nodeId INT32 (the answerer),
 *               inContact BOOLEAN, conflict NULLABLE_STRING
 *
 * `conflict` says the answerer knows one of the asker's partitions otherwise (another leader
 * or epoch, or not at all): the asker's view is stale (a preferred-leader election or a
 * reassignment it missed before etcd went away), so it must not ride on it.
 *
 * `inContact` is true while the answerer's lease window is open and its last etcd call
 * succeeded; false once a call failed (etcd gone: its watches drop at once) or its window
 * closed. Its own window may still be open: every broker's closes at its own time. A broker
 * that answered false does not start
 * acting as the leader of a partition (at an epoch it did not act at before) until
 * `graceMs` has passed since that answer (Membership.coolingUntil, ReplicaManager): so a
 * leader that rides on a round of "no contact" answers, for `rideMs` (< graceMs) from when it
 * sent that round, has stopped before any broker it asked can have become a new leader.
 */
import { ErrorCode, MeridianError } from '../errors.js';
import type { Reader } from '../protocol/kafka/reader.js';
import type { Writer } from '../protocol/kafka/writer.js';
import { LinkClient } from '../replication/link-client.js';
import { ReplicationApiKey } from '../replication/replication-api.js';
import type { LinkSecurityConfig } from '../config/schema.js';
import type { HostPort } from './partition-state.js';

export const ETCD_CONTACT_API_KEY = ReplicationApiKey.EtcdContact;

export interface LedPartition {
  readonly topic: string;
  readonly partition: number;
  readonly leaderEpoch: number;
  readonly partitionEpoch: number;
}

/** The key a ride covers a leadership by (Membership.mayLead). */
export function ledKey(topic: string, partition: number, leaderEpoch: number): string {
  return `${topic}\0${partition}\0${leaderEpoch}`;
}

export interface ContactRequest {
  readonly nodeId: number;
  readonly led: readonly LedPartition[];
}

export interface ContactResponse {
  errorCode: number;
  errorMessage: string | null;
  nodeId: number;
  inContact: boolean;
  conflict: string | null;
}

export function writeContactRequest(w: Writer, req: ContactRequest): void {
  w.int32(req.nodeId).int32(req.led.length);
  for (const l of req.led) w.string(l.topic).int32(l.partition).int32(l.leaderEpoch).int32(l.partitionEpoch);
}

export function readContactRequest(r: Reader): ContactRequest {
  const nodeId = r.int32('nodeId');
  const led: LedPartition[] = [];
  for (let n = r.int32('led'); n > 0; n--) led.push({ topic: r.string('topic'), partition: r.int32('partition'), leaderEpoch: r.int32('leaderEpoch'), partitionEpoch: r.int32('partitionEpoch') });
  return { nodeId, led };
}

export function writeContactResponse(w: Writer, res: ContactResponse): void {
  w.int16(res.errorCode).nullableString(res.errorMessage).int32(res.nodeId).boolean(res.inContact).nullableString(res.conflict);
}

export function readContactResponse(r: Reader): ContactResponse {
  return { errorCode: r.int16('errorCode'), errorMessage: r.nullableString('errorMessage'), nodeId: r.int32('nodeId'), inContact: r.boolean('inContact'), conflict: r.nullableString('conflict') };
}

/**
 * The outcome of one round: every peer asked said it has no contact with etcd and agreed on
 * the leaderships asked about (`covers`, by ledKey; absent: every one), or why not.
 */
export type RoundOutcome = { readonly allOut: true; readonly covers?: ReadonlySet<string> } | { readonly allOut: false; readonly why: string };

export interface ContactPeersOptions {
  readonly nodeId: number;
  /** What to ask now: the partitions this broker leads, and the brokers that could be elected in its place. */
  readonly question: () => { peers: Iterable<number>; led: readonly LedPartition[] };
  /** Every broker registered in the region (the last this broker saw): asked when `question` names none. */
  readonly members: () => Iterable<number>;
  /** A peer's registered Kafka address (the last this broker saw), or undefined. */
  readonly address: (nodeId: number) => HostPort | undefined;
  readonly security?: LinkSecurityConfig;
}

/** Asks peers whether they are in contact with etcd, over one connection per peer. */
export class ContactPeers {
  readonly #o: ContactPeersOptions;
  readonly #clients = new Map<number, { address: string; client: LinkClient }>();

  constructor(o: ContactPeersOptions) {
    this.#o = o;
  }

  /**
   * One round: every peer answers within `timeoutMs` and says it has no contact, or the
   * round fails naming the first peer that did not (in contact, unreachable, unknown).
   */
  async round(timeoutMs: number): Promise<RoundOutcome> {
    const q = this.#o.question();
    const others = (ids: Iterable<number>) => [...new Set(ids)].filter((id) => id !== this.#o.nodeId).sort((a, b) => a - b);
    // Leading only partitions of one replica (or nothing): the rest of the region answers,
    // so a broker cut off alone still stops. No other broker at all: no ride.
    let peers = others(q.peers);
    if (peers.length === 0) peers = others(this.#o.members());
    if (peers.length === 0) return { allOut: false, why: 'no other broker of the region to ask' };
    const req: ContactRequest = { nodeId: this.#o.nodeId, led: q.led };
    const answers = await Promise.all(peers.map((id) => this.#ask(id, req, timeoutMs).then((r) => ({ id, r }), (err: unknown) => ({ id, r: err as Error }))));
    for (const { id, r } of answers) {
      if (r instanceof Error) return { allOut: false, why: `broker ${id} did not answer (${r.message})` };
      if (r.errorCode !== 0) return { allOut: false, why: `broker ${id} refused the question (${r.errorMessage ?? r.errorCode})` };
      if (r.nodeId !== id) return { allOut: false, why: `the broker registered as ${id} answered as ${r.nodeId}` };
      if (r.inContact) return { allOut: false, why: `broker ${id} is in contact with etcd` };
      if (r.conflict !== null) return { allOut: false, why: r.conflict };
    }
    return { allOut: true, covers: new Set(q.led.map((l) => ledKey(l.topic, l.partition, l.leaderEpoch))) };
  }

  async #ask(id: number, req: ContactRequest, timeoutMs: number): Promise<ContactResponse> {
    const a = this.#o.address(id);
    if (a === undefined) throw new MeridianError(ErrorCode.LinkUnreachable, 'no registered address');
    const address = `${a.host}:${a.port}`;
    let c = this.#clients.get(id);
    if (c === undefined || c.address !== address) {
      c?.client.close();
      c = { address, client: new LinkClient({ address, clientId: `meridian-contact-${this.#o.nodeId}`, ...(this.#o.security ? { security: this.#o.security } : {}), connectTimeoutMs: timeoutMs, requestTimeoutMs: timeoutMs }) };
      this.#clients.set(id, c);
    }
    return readContactResponse(await c.client.request(ETCD_CONTACT_API_KEY, 0, (w) => writeContactRequest(w, req)));
  }

  close(): void {
    for (const { client } of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}
