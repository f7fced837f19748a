/**
 * The errors the group coordinator answers with (their codes, retriability and Kafka errors:
 * src/README.md). Results carry them as values; the Kafka handlers turn each into Kafka's
 * code through protocol/kafka/error-mapping.ts, so nothing in broker/groups knows Kafka's
 * numbers. The checks that raise them follow Kafka's GroupCoordinator.scala, in its order.
 */
import { ErrorCode, MeridianError } from '../../errors.js';
import { OffsetStoreErrorCode } from './offset-store.js';

export function invalidGroupId(): MeridianError {
  return new MeridianError(ErrorCode.InvalidGroupId, 'the group id must not be empty');
}

export function invalidSessionTimeout(sessionTimeoutMs: number, minMs: number, maxMs: number): MeridianError {
  return new MeridianError(ErrorCode.InvalidSessionTimeout, `session timeout ${sessionTimeoutMs} ms is outside ${minMs}..${maxMs} ms`);
}

export function unknownMember(groupId: string, memberId: string): MeridianError {
  return new MeridianError(ErrorCode.UnknownMember, `member "${memberId}" is not in group ${groupId}`);
}

export function illegalGeneration(groupId: string, generationId: number, current: number | null): MeridianError {
  const now = current === null ? 'the group is gone' : `its generation is ${current}`;
  return new MeridianError(ErrorCode.IllegalGeneration, `generation ${generationId} of group ${groupId} is not current: ${now}`);
}

export function rebalanceInProgress(groupId: string): MeridianError {
  return new MeridianError(ErrorCode.RebalanceInProgress, `group ${groupId} is rebalancing; rejoin`);
}

export function inconsistentProtocol(groupId: string): MeridianError {
  return new MeridianError(ErrorCode.InconsistentProtocol, `the protocol type or protocols do not match group ${groupId}'s`);
}

export function fencedInstance(groupId: string, groupInstanceId: string): MeridianError {
  return new MeridianError(ErrorCode.FencedInstance, `group.instance.id ${groupInstanceId} of group ${groupId} belongs to another member id`);
}

export function groupTooLarge(groupId: string, maxGroupSize: number): MeridianError {
  return new MeridianError(ErrorCode.GroupTooLarge, `group ${groupId} is at its limit of ${maxGroupSize} members`);
}

export function offsetMetadataTooLarge(bytes: number, maxBytes: number): MeridianError {
  return new MeridianError(ErrorCode.OffsetMetadataTooLarge, `offset metadata of ${bytes} bytes exceeds ${maxBytes}`);
}

export function groupNotFound(groupId: string): MeridianError {
  return new MeridianError(ErrorCode.GroupNotFound, `group ${groupId} has no members and no committed offsets`);
}

export function nonEmptyGroup(groupId: string, state: string): MeridianError {
  return new MeridianError(ErrorCode.NonEmptyGroup, `group ${groupId} has members (${state}); it can be deleted once they have left`);
}

export function groupSubscribedToTopic(groupId: string, topic: string): MeridianError {
  return new MeridianError(ErrorCode.GroupSubscribedToTopic, `group ${groupId} is subscribed to topic ${topic}; its offsets can be deleted once no member subscribes to it`);
}

export function coordinatorClosed(): MeridianError {
  return new MeridianError(ErrorCode.CoordinatorClosed, 'the group coordinator is closed');
}

/** A request that reached a group as it was being unloaded (Kafka's Dead state). */
export function groupUnloaded(groupId: string): MeridianError {
  return new MeridianError(ErrorCode.CoordinatorBusy, `group ${groupId} is being unloaded`);
}

/**
 * What an OffsetCommit (or a DeleteGroups or OffsetDelete, with `what` saying so) answers
 * when the offset store refused or failed its record, after
 * Kafka's GroupMetadataManager.storeOffsets: a full queue is transient, an oversized request
 * is the request's fault, a closed store is the coordinator closing, and anything else is
 * the disk (retriable if it may clear, such as a full disk, as the cause says).
 */
export function commitFailure(err: unknown, what = 'offsets not committed'): MeridianError {
  const code = err instanceof MeridianError ? err.code : undefined;
  const detail = err instanceof Error ? err.message : String(err);
  switch (code) {
    // A region cluster's backend (cluster/group-offsets.ts) already says what the client
    // should do: find the coordinator again, wait for the load, or retry later.
    case ErrorCode.NotCoordinator:
    case ErrorCode.CoordinatorLoading:
    case ErrorCode.CoordinatorUnavailable:
    case ErrorCode.CommitTooLarge:
      return err as MeridianError;
    case OffsetStoreErrorCode.QueueFull:
      return new MeridianError(ErrorCode.CoordinatorBusy, detail, { cause: err });
    case ErrorCode.BatchTooLarge:
      return new MeridianError(ErrorCode.CommitTooLarge, detail, { cause: err });
    case ErrorCode.LogClosed:
      return new MeridianError(ErrorCode.CoordinatorClosed, detail, { cause: err });
    default:
      return new MeridianError(ErrorCode.OffsetStoreIo, `${what}: ${detail}`, { cause: err });
  }
}

/**
 * What a SyncGroup answers when the group's generation could not be stored (a region
 * cluster's GROUP_METADATA record not acknowledged by the in-sync replicas), as Kafka's
 * GroupCoordinator does after storeGroup fails: NOT_COORDINATOR (find it again) and
 * COORDINATOR_NOT_AVAILABLE (retry later) pass through; anything else, COORDINATOR_LOADING
 * included, is COORDINATOR_NOT_AVAILABLE. Kafka's storeGroup never answers
 * COORDINATOR_LOAD_IN_PROGRESS, and the Java client's SyncGroup handler treats it as an
 * unexpected error (it rejoins only on NOT_AVAILABLE / NOT_COORDINATOR and the like).
 */
export function generationNotStored(err: unknown, groupId: string, generationId: number): MeridianError {
  const code = err instanceof MeridianError ? err.code : undefined;
  if (code === ErrorCode.NotCoordinator || code === ErrorCode.CoordinatorUnavailable || code === ErrorCode.CoordinatorClosed) return err as MeridianError;
  const detail = err instanceof Error ? err.message : String(err);
  return new MeridianError(ErrorCode.CoordinatorUnavailable, `generation ${generationId} of group ${groupId} was not stored (${detail}); rejoin`, { cause: err });
}
