/**
 * Riding through an etcd outage (src/cluster/README.md, "etcd unavailable for everyone"):
 * the question a leader whose lease window is ending asks the other brokers, and its answer.
 *
 *   EtcdContact (internal API key 32004, v0, on the Kafka port, never advertised; ClusterAction
 *   with authorization on, like the other broker-to-broker requests):
 *     request:  nodeId INT32 (the asker)
 *     response: errorCode INT16, errorMessage NULLABLE_STRING, nodeId INT32 (the answerer),
 *               inContact BOOLEAN
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

export interface ContactResponse {
  errorCode: number;
  errorMessage: string | null;
  nodeId: number;
  inContact: boolean;
}

export function writeContactRequest(w: Writer, nodeId: number): void {
  w.int32(nodeId);
}

export function readContactRequest(r: Reader): { nodeId: number } {
  return { nodeId: r.int32('nodeId') };
}

export function writeContactResponse(w: Writer, res: ContactResponse): void {
  w.int16(res.errorCode).nullableString(res.errorMessage).int32(res.nodeId).boolean(res.inContact);
}

export function readContactResponse(r: Reader): ContactResponse {
  return { errorCode: r.int16('errorCode'), errorMessage: r.nullableString('errorMessage'), nodeId: r.int32('nodeId'), inContact: r.boolean('inContact') };
}

/** The outcome of one round: every peer asked said it has no contact with etcd, or why not. */
export type RoundOutcome = { readonly allOut: true } | { readonly allOut: false; readonly why: string };

export interface ContactPeersOptions {
  readonly nodeId: number;
  /** The peers to ask now: the in-sync replicas of every partition this broker leads, itself excluded. */
  readonly peers: () => Iterable<number>;
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
    const peers = [...new Set(this.#o.peers())].filter((id) => id !== this.#o.nodeId).sort((a, b) => a - b);
    const answers = await Promise.all(peers.map((id) => this.#ask(id, timeoutMs).then((r) => ({ id, r }), (err: unknown) => ({ id, r: err as Error }))));
    for (const { id, r } of answers) {
      if (r instanceof Error) return { allOut: false, why: `broker ${id} did not answer (${r.message})` };
      if (r.errorCode !== 0) return { allOut: false, why: `broker ${id} refused the question (${r.errorMessage ?? r.errorCode})` };
      if (r.nodeId !== id) return { allOut: false, why: `the broker registered as ${id} answered as ${r.nodeId}` };
      if (r.inContact) return { allOut: false, why: `broker ${id} is in contact with etcd` };
    }
    return { allOut: true };
  }

  async #ask(id: number, timeoutMs: number): Promise<ContactResponse> {
    const a = this.#o.address(id);
    if (a === undefined) throw new MeridianError(ErrorCode.LinkUnreachable, 'no registered address');
    const address = `${a.host}:${a.port}`;
    let c = this.#clients.get(id);
    if (c === undefined || c.address !== address) {
      c?.client.close();
      c = { address, client: new LinkClient({ address, clientId: `meridian-contact-${this.#o.nodeId}`, ...(this.#o.security ? { security: this.#o.security } : {}), connectTimeoutMs: timeoutMs, requestTimeoutMs: timeoutMs }) };
      this.#clients.set(id, c);
    }
    return readContactResponse(await c.client.request(ETCD_CONTACT_API_KEY, 0, (w) => writeContactRequest(w, this.#o.nodeId)));
  }

  close(): void {
    for (const { client } of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}
