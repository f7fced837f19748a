/**
 * FindCoordinator: this broker coordinates every group of its region (one broker per
 * region), so every key is answered with this broker.
 */
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import type { FindCoordinatorRequest, FindCoordinatorResponse } from '../../protocol/kafka/messages/find-coordinator.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';

export const COORDINATOR_APIS: readonly KafkaApiEntry[] = [{ key: ApiKey.FindCoordinator, versions: [0, 2], handle: (d, _c, req) => handleFindCoordinator(d, req) }];

export function handleFindCoordinator(deps: KafkaApiDeps, req: FindCoordinatorRequest): FindCoordinatorResponse {
  const node = { nodeId: deps.config.nodeId, host: deps.advertisedHost, port: deps.advertisedPort };
  return {
    throttleTimeMs: 0,
    errorCode: 0,
    errorMessage: null,
    ...node,
    coordinators: req.coordinatorKeys.map((key) => ({ key, ...node, errorCode: 0, errorMessage: null })),
  };
}

