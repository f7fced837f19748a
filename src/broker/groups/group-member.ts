/**
 * One member of a classic consumer group and its session timer.
 *
 * Lifecycle: created by a JoinGroup, removed by LeaveGroup, by a rebalance it did not rejoin,
 * or when its session expires. Every accepted request calls `touch()`, which restarts the
 * timer. While the broker holds one of the member's requests (a JoinGroup waiting for the
 * rebalance, a SyncGroup waiting for the leader) the member cannot heartbeat on that
 * connection, so it is kept alive, as in Kafka's MemberMetadata.hasSatisfiedHeartbeat; the
 * rebalance timeout and the leader's own session bound those waits instead.
 */
import type { GroupProtocol, JoinGroupRequest, JoinGroupResult, SyncGroupResult } from './group-api.js';

export const EMPTY_BYTES: Buffer = Buffer.alloc(0);

export class GroupMember {
  /** Changes only when a static member rejoins and is given a fresh id. */
  memberId: string;
  readonly groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  protocols: readonly GroupProtocol[];
  /** What the leader gave this member in the current generation. */
  assignment: Buffer = EMPTY_BYTES;
  /** The held JoinGroup of the current rebalance. */
  joinWaiter: ((result: JoinGroupResult) => void) | undefined;
  /** The held SyncGroup, while the leader has not assigned yet. */
  syncWaiter: ((result: SyncGroupResult) => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #timerMs = 0;
  #onExpire: (member: GroupMember) => void;

  constructor(memberId: string, req: JoinGroupRequest, onExpire: (member: GroupMember) => void) {
    this.memberId = memberId;
    this.groupInstanceId = req.groupInstanceId;
    this.clientId = req.clientId;
    this.clientHost = req.clientHost;
    this.sessionTimeoutMs = req.sessionTimeoutMs;
    this.rebalanceTimeoutMs = req.rebalanceTimeoutMs;
    this.protocols = copyProtocols(req.protocols);
    this.#onExpire = onExpire;
  }

  /** Takes the fields a rejoin may change. */
  update(req: JoinGroupRequest): void {
    this.clientId = req.clientId;
    this.clientHost = req.clientHost;
    this.sessionTimeoutMs = req.sessionTimeoutMs;
    this.rebalanceTimeoutMs = req.rebalanceTimeoutMs;
    this.protocols = copyProtocols(req.protocols);
  }

  supports(protocolName: string): boolean {
    return this.protocols.some((p) => p.name === protocolName);
  }

  metadataFor(protocolName: string | null): Buffer {
    return this.protocols.find((p) => p.name === protocolName)?.metadata ?? EMPTY_BYTES;
  }

  /** Same protocols in the same order with the same bytes: a rejoin that changes nothing. */
  sameProtocols(protocols: readonly GroupProtocol[]): boolean {
    return (
      protocols.length === this.protocols.length &&
      protocols.every((p, i) => p.name === this.protocols[i].name && p.metadata.equals(this.protocols[i].metadata))
    );
  }

  /** Restarts the session timer. */
  touch(): void {
    if (this.#timer !== undefined && this.#timerMs === this.sessionTimeoutMs) {
      this.#timer.refresh();
      return;
    }
    clearTimeout(this.#timer);
    this.#timerMs = this.sessionTimeoutMs;
    this.#timer = setTimeout(() => this.#expired(), this.sessionTimeoutMs);
    this.#timer.unref();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #expired(): void {
    if (this.joinWaiter !== undefined || this.syncWaiter !== undefined) {
      this.touch();
      return;
    }
    this.#timer = undefined;
    this.#onExpire(this);
  }
}

/** Request buffers may be views of a connection's read buffer; keep our own bytes. */
function copyProtocols(protocols: readonly GroupProtocol[]): GroupProtocol[] {
  return protocols.map((p) => ({ name: p.name, metadata: Buffer.from(p.metadata) }));
}
