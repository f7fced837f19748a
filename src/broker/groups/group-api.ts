/**
 * The plain-object requests and results of the group coordinator, one pair per Kafka API.
 *
 * They carry the fields of the newest version the Kafka handlers decode (JoinGroup v9,
 * SyncGroup v5, OffsetCommit v9, ...) in version-neutral form; a handler for an older
 * version fills the missing fields with Kafka's defaults and drops what its version cannot
 * encode. Errors are values, `error: MeridianError | null` (null: none), because a Kafka
 * group response has an error field per member or partition rather than failing whole; the
 * codes are the group coordinator's in src/README.md, and the handlers turn them into Kafka
 * codes in the one mapping (protocol/kafka/error-mapping.ts). Where a result says `null`
 * but the wire field is not nullable in some version (protocolName before JoinGroup v7), the
 * handler writes "".
 */
import type { MeridianError } from '../../errors.js';

export const GroupState = {
  Empty: 'Empty',
  PreparingRebalance: 'PreparingRebalance',
  CompletingRebalance: 'CompletingRebalance',
  Stable: 'Stable',
  Dead: 'Dead',
} as const;
export type GroupState = (typeof GroupState)[keyof typeof GroupState];

export interface GroupProtocol {
  readonly name: string;
  /** Opaque to the broker (ConsumerProtocolSubscription for "consumer" groups). */
  readonly metadata: Buffer;
}

export interface JoinGroupRequest {
  readonly groupId: string;
  /** "" on a member's first join. */
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  readonly protocolType: string;
  readonly protocols: readonly GroupProtocol[];
  readonly sessionTimeoutMs: number;
  /** JoinGroup v0 has none: the v0 handler passes the session timeout (brod#465). */
  readonly rebalanceTimeoutMs: number;
  readonly clientId: string;
  readonly clientHost: string;
  /** True for JoinGroup v4+ (KIP-394): a first join gets MEMBER_ID_REQUIRED and an id. */
  readonly requireKnownMemberId: boolean;
  /** Why the member (re)joins (JoinGroup v8+, KIP-800): logged with the rebalance it starts. */
  readonly reason?: string | null;
}

export interface JoinGroupMember {
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  readonly metadata: Buffer;
}

export interface JoinGroupResult {
  /** Why the join failed; null when it succeeded, and when `memberIdRequired`. */
  readonly error: MeridianError | null;
  /**
   * KIP-394 (JoinGroup v4+): a first join is handed `memberId` and must join again with it.
   * A step of the protocol, not a failure, so it is no error code of Meridian's; the handler
   * answers it with Kafka's MEMBER_ID_REQUIRED.
   */
  readonly memberIdRequired: boolean;
  readonly generationId: number;
  readonly protocolType: string | null;
  readonly protocolName: string | null;
  readonly leader: string;
  readonly memberId: string;
  /** Filled for the leader only; followers get []. */
  readonly members: readonly JoinGroupMember[];
}

export interface SyncGroupRequest {
  readonly groupId: string;
  readonly generationId: number;
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  /** SyncGroup v5+ only; null skips the check. */
  readonly protocolType: string | null;
  readonly protocolName: string | null;
  /** The leader's assignments; [] from followers. */
  readonly assignments: readonly { readonly memberId: string; readonly assignment: Buffer }[];
}

export interface SyncGroupResult {
  readonly error: MeridianError | null;
  readonly protocolType: string | null;
  readonly protocolName: string | null;
  readonly assignment: Buffer;
}

export interface HeartbeatRequest {
  readonly groupId: string;
  readonly generationId: number;
  readonly memberId: string;
  readonly groupInstanceId: string | null;
}

export interface HeartbeatResult {
  readonly error: MeridianError | null;
}

export interface LeaveGroupRequest {
  readonly groupId: string;
  /** v0-2 callers pass the one member of their request; `reason` is LeaveGroup v5+'s (KIP-800), logged. */
  readonly members: readonly { readonly memberId: string; readonly groupInstanceId: string | null; readonly reason?: string | null }[];
}

export interface LeaveGroupResult {
  /** Group-level error. A v0-2 handler sends this if there is one, else members[0].error. */
  readonly error: MeridianError | null;
  readonly members: readonly { readonly memberId: string; readonly groupInstanceId: string | null; readonly error: MeridianError | null }[];
}

export interface OffsetCommitRequest {
  readonly groupId: string;
  /**
   * -1 with memberId "" is a "simple" commit (no group management), as OffsetCommit v0
   * always is. v9+ (KIP-848) calls it the member epoch; for a classic group it is the
   * generation.
   */
  readonly generationIdOrMemberEpoch: number;
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  /**
   * OffsetCommit v9+: a commit with a generation for a group that does not exist gets
   * GROUP_NOT_FOUND; older versions get ILLEGAL_GENERATION (Kafka keeps both for compatibility).
   */
  readonly unknownGroupIsNotFound?: boolean;
  readonly topics: readonly {
    readonly name: string;
    readonly partitions: readonly {
      readonly partitionIndex: number;
      /** The next offset to read, stored opaquely. */
      readonly committedOffset: bigint;
      readonly committedLeaderEpoch: number;
      readonly committedMetadata: string | null;
      /** OffsetCommit v1's commit time (ms since the epoch); absent or -1: the coordinator's clock. */
      readonly commitTimestamp?: number;
    }[];
  }[];
}

export interface OffsetCommitResult {
  readonly topics: readonly { readonly name: string; readonly partitions: readonly { readonly partitionIndex: number; readonly error: MeridianError | null }[] }[];
}

export interface OffsetFetchRequest {
  readonly groupId: string;
  /** null = every partition the group has committed. */
  readonly topics: readonly { readonly name: string; readonly partitionIndexes: readonly number[] }[] | null;
}

export interface FetchedPartitionOffset {
  readonly partitionIndex: number;
  /** -1n when nothing is committed. */
  readonly committedOffset: bigint;
  readonly committedLeaderEpoch: number;
  readonly metadata: string | null;
}

export interface OffsetFetchResult {
  /** A fetch fails whole (the coordinator closed) or not at all: no partition has an error of its own. */
  readonly error: MeridianError | null;
  readonly topics: readonly { readonly name: string; readonly partitions: readonly FetchedPartitionOffset[] }[];
}

export interface DeletedGroup {
  readonly groupId: string;
  /** GROUP_NOT_FOUND, NON_EMPTY_GROUP, INVALID_GROUP_ID... or null: the group and its offsets are gone, durably. */
  readonly error: MeridianError | null;
}

export interface OffsetDeleteRequest {
  readonly groupId: string;
  readonly topics: readonly { readonly name: string; readonly partitionIndexes: readonly number[] }[];
}

export interface OffsetDeleteResult {
  /** Group-level: GROUP_NOT_FOUND, NON_EMPTY_GROUP, ...; `topics` is then empty. */
  readonly error: MeridianError | null;
  /** Per partition: null (deleted, or nothing was committed) or GROUP_SUBSCRIBED_TO_TOPIC. */
  readonly topics: readonly { readonly name: string; readonly partitions: readonly { readonly partitionIndex: number; readonly error: MeridianError | null }[] }[];
}

export interface DescribedGroupMember {
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  readonly clientId: string;
  readonly clientHost: string;
  /** The metadata for the chosen protocol, in Stable only (Kafka's GroupMetadata.summary). */
  readonly memberMetadata: Buffer;
  /** In Stable only. */
  readonly memberAssignment: Buffer;
}

export interface DescribedGroup {
  readonly error: MeridianError | null;
  readonly groupId: string;
  readonly groupState: GroupState;
  /** "" when unknown. */
  readonly protocolType: string;
  /** The chosen protocol in Stable, else "". */
  readonly protocolData: string;
  readonly members: readonly DescribedGroupMember[];
}

export interface ListedGroup {
  readonly groupId: string;
  readonly protocolType: string;
  readonly groupState: GroupState;
}
