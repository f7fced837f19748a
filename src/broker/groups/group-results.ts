/**
 * Results that carry no membership, shaped as Kafka's own coordinator shapes them
 * (JoinGroupResult(memberId, error): generation -1, no protocol, no leader, no members).
 */
import type { MeridianError } from '../../errors.js';
import type { JoinGroupResult, SyncGroupResult } from './group-api.js';
import { EMPTY_BYTES } from './group-member.js';

export function joinError(memberId: string, error: MeridianError): JoinGroupResult {
  return { error, memberIdRequired: false, generationId: -1, protocolType: null, protocolName: null, leader: '', memberId, members: [] };
}

/** KIP-394's first round trip: the member is handed `memberId` and joins again with it. */
export function memberIdRequired(memberId: string): JoinGroupResult {
  return { error: null, memberIdRequired: true, generationId: -1, protocolType: null, protocolName: null, leader: '', memberId, members: [] };
}

export function syncError(error: MeridianError): SyncGroupResult {
  return { error, protocolType: null, protocolName: null, assignment: EMPTY_BYTES };
}
