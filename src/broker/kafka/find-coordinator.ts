/**
 * FindCoordinator. On a single broker, this broker coordinates every group of its region,
 * so every group key is answered with this broker. In a region cluster the coordinator of a
 * group is the leader of its partition of `__meridian_offsets` (cluster/group-offsets.ts),
 * answered at its registered address by every broker alike; the first ask creates the
 * topic (through the controller), and while it or the partition's leader is missing the
 * key gets COORDINATOR_NOT_AVAILABLE, which clients retry. v4+ batches keys
 * (coordinatorKeys, one answer each); v0-v3 carry one key. Transaction keys (keyType 1) get
 * the transactions-unsupported error with its message (transactions-unsupported.ts);
 * any other key type is INVALID_REQUEST, as Kafka answers. A group key needs DESCRIBE on the
 * group (GROUP_AUTHORIZATION_FAILED), a transaction key DESCRIBE on the transactional id
 * (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), as in Kafka (authorize.ts).
 */
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import { kafkaCode, toKafkaError } from '../../protocol/kafka/error-mapping.js';
import type { FindCoordinatorRequest, FindCoordinatorResponse } from '../../protocol/kafka/messages/find-coordinator.js';
import { advertisedEndpoint, type KafkaApiDeps } from '../kafka-api.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';
import { AclOperation, denial, may, ResourceType, UNKNOWN_REQUESTER, type Requester } from './authorize.js';
import { logTransactionalRefusal, TRANSACTIONS_UNSUPPORTED_CODE, transactionsUnsupportedMessage } from './transactions-unsupported.js';
import { metadataBrokers } from './topics.js';

export const COORDINATOR_APIS: readonly KafkaApiEntry[] = [
  {
    key: ApiKey.FindCoordinator,
    versions: [0, 6],
    handle: (d, c, req, v) => (d.groupOffsets === undefined ? handleFindCoordinator(d, req, v, c.header.clientId, c.listener, c) : handleClusterFindCoordinator(d, req, v, c.header.clientId, c.listener, c)),
  },
];

const KeyType = { group: 0, transaction: 1 } as const;

interface Answer {
  nodeId: number;
  host: string;
  port: number;
  errorCode: number;
  errorMessage: string | null;
}

/** `listener`: the one the request came in on, whose endpoint is the coordinator's address. */
export function handleFindCoordinator(
  deps: KafkaApiDeps,
  req: FindCoordinatorRequest,
  version: number,
  clientId: string | null = null,
  listener?: string,
  who: Requester = UNKNOWN_REQUESTER,
): FindCoordinatorResponse {
  return respond(req, version, (key) => answerKey(deps, req, key, clientId, who, () => ({ nodeId: deps.config.nodeId, ...advertisedEndpoint(deps, listener), errorCode: 0, errorMessage: null })));
}

/**
 * FindCoordinator in a region cluster: each group key is answered with the leader of its
 * offsets partition (ClusterOffsets.coordinatorFor), the keys of a batch concurrently.
 */
export async function handleClusterFindCoordinator(
  deps: KafkaApiDeps,
  req: FindCoordinatorRequest,
  version: number,
  clientId: string | null = null,
  listener?: string,
  who: Requester = UNKNOWN_REQUESTER,
): Promise<FindCoordinatorResponse> {
  const offsets = deps.groupOffsets!;
  // The coordinator's address on the listener this request came in on, as Metadata gives it.
  const onListener = (nodeId: number) => metadataBrokers(deps, listener).find((b) => b.nodeId === nodeId);
  const keys = version >= 4 ? req.coordinatorKeys : [req.key];
  const found = new Map<string, Answer>();
  await Promise.all(
    [...new Set(keys)].map(async (key) => {
      if (req.keyType !== KeyType.group || !may(deps, who, AclOperation.Describe, ResourceType.Group, key)) return;
      const c = await offsets.coordinatorFor(key);
      if ('error' in c) {
        const e = toKafkaError(c.error);
        found.set(key, { nodeId: -1, host: '', port: -1, errorCode: e.code, errorMessage: e.message });
      } else {
        const at = onListener(c.nodeId);
        if (at === undefined) {
          found.set(key, { nodeId: -1, host: '', port: -1, errorCode: kafkaCode('COORDINATOR_NOT_AVAILABLE'), errorMessage: `the coordinator of ${key} (broker ${c.nodeId}) has no listener ${listener ?? ''} registered` });
        } else {
          found.set(key, { nodeId: c.nodeId, host: at.host, port: at.port, errorCode: 0, errorMessage: null });
        }
      }
    }),
  );
  return respond(req, version, (key) => answerKey(deps, req, key, clientId, who, () => found.get(key)!));
}

/** One key's answer: refusals and other key types as on a single broker, a group key from `group`. */
function answerKey(deps: KafkaApiDeps, req: FindCoordinatorRequest, key: string, clientId: string | null, who: Requester, group: () => Answer): Answer {
  const none = { nodeId: -1, host: '', port: -1 };
  const resource = req.keyType === KeyType.group ? ResourceType.Group : req.keyType === KeyType.transaction ? ResourceType.TransactionalId : null;
  if (resource !== null && !may(deps, who, AclOperation.Describe, resource, key)) {
    const e = toKafkaError(denial(who, AclOperation.Describe, resource, key));
    return { ...none, errorCode: e.code, errorMessage: e.message };
  }
  if (req.keyType === KeyType.group) return group();
  if (req.keyType === KeyType.transaction) {
    logTransactionalRefusal(deps.logger, 'FindCoordinator', clientId, key);
    return { ...none, errorCode: TRANSACTIONS_UNSUPPORTED_CODE, errorMessage: transactionsUnsupportedMessage(key) };
  }
  return { ...none, errorCode: kafkaCode('INVALID_REQUEST'), errorMessage: `unknown coordinator key type ${req.keyType} (0 is group, 1 is transaction)` };
}

function respond(req: FindCoordinatorRequest, version: number, answer: (key: string) => Answer): FindCoordinatorResponse {
  if (version >= 4) {
    return { throttleTimeMs: 0, errorCode: 0, errorMessage: null, nodeId: 0, host: '', port: 0, coordinators: req.coordinatorKeys.map((key) => ({ key, ...answer(key) })) };
  }
  const a = answer(req.key);
  // v0 has no message field (not ignorable there): the code alone goes back.
  return { throttleTimeMs: 0, ...a, errorMessage: version >= 1 ? a.errorMessage : null, coordinators: [] };
}
