/**
 * Results that carry only an error, shaped as Kafka's own coordinator shapes them
 * (JoinGroupResult(memberId, error): generation -1, no protocol, no leader, no members).
 */
import type { JoinGroupResult, SyncGroupResult } from './group-api.js';
import { EMPTY_BYTES } from './group-member.js';

export function joinError(memberId: string, errorCode: number): JoinGroupResult {
  return { errorCode, generationId: -1, protocolType: null, protocolName: null, leader: '', memberId, members: [] };
}

export function syncError(errorCode: number): SyncGroupResult {
  return { errorCode, protocolType: null, protocolName: null, assignment: EMPTY_BYTES };
}
