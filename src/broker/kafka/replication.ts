/**
 * The internal replication API on the Kafka port (see replication/replication-api.ts for
 * the wire format): decode, hand to the ReplicationTarget, frame the answer with response
 * header v0. Appends release the connection once their offsets are assigned, as Produce
 * does, so requests for other partitions on the same link share the next fsync; a v1 append
 * (several partitions) once every item's offsets are assigned, each item judged alone.
 * Handshakes release it at once, so a sender's many handshakes are handled concurrently.
 *
 * Every request of the five keys (handshake, append, OffsetSync, DrProbe, EtcdContact) is first checked
 * against its connection's principal: with authorization on, it needs ClusterAction on the
 * cluster (Kafka's permission for broker-to-broker requests), else CLUSTER_AUTHORIZATION_FAILED;
 * a region the registry binds to a principal is taken only from that principal
 * (REPLICATION_UNAUTHORIZED). Handshakes and appends are then checked against the policies
 * (the target's source check). A refusal writes nothing, answers the error with a message
 * and logs a warn line with the principal, its address and the region it claimed.
 */
import type { RequestContext } from '../../protocol/kafka/connection.js';
import { toKafkaError } from '../../protocol/kafka/error-mapping.js';
import type { Reader } from '../../protocol/kafka/reader.js';
import { encodeResponseFrameChunks } from '../../protocol/kafka/request-header.js';
import { Writer } from '../../protocol/kafka/writer.js';
import {
  APPEND_VERSIONS,
  readAppendRequest,
  readAppendRequestV1,
  readHandshakeRequest,
  ReplicationApiKey,
  REPLICATION_API_NAMES,
  writeAppendResponse,
  writeAppendResponseV1,
  writeHandshakeResponse,
  type MultiAppendRequest,
} from '../../replication/replication-api.js';
import type { AppendResult } from '../../replication/replication-target.js';
import { AclOperation } from '../../security/acl.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import { ErrorCode, MeridianError } from '../../errors.js';
import { readOffsetSyncRequest, readProbeRequest, writeHead, writeProbeResponse } from '../../dr/dr-api.js';
import { readContactRequest, writeContactResponse } from '../../cluster/etcd-contact.js';

const DR_NOT_RUNNING = () => new MeridianError(ErrorCode.RemoteUnavailable, 'disaster recovery is not running in this region');

/** Whether this broker serves `version` of the internal API `apiKey` (the dispatcher routes those here). */
export function servesReplicationVersion(apiKey: number, version: number): boolean {
  if (apiKey === ReplicationApiKey.Append) return version >= APPEND_VERSIONS.min && version <= APPEND_VERSIONS.max;
  return version === 0;
}

export async function handleReplication(deps: KafkaApiDeps, ctx: RequestContext, body: Reader): Promise<Buffer[]> {
  const { apiKey, apiVersion, correlationId } = ctx.header;
  const w = new Writer(64);
  if (apiKey === ReplicationApiKey.Handshake) {
    const req = readHandshakeRequest(body);
    // A handshake does not depend on what follows it on the connection (a worker appends
    // only once answered), and one that creates a topic waits for the disk: the connection
    // goes on with the requests behind it, so a thousand topics' handshakes are pipelined.
    ctx.release();
    const refused = admit(deps, ctx, req.senderRegion, req.topic);
    const res = refused === null ? await deps.replication.handshake(req) : { error: refused, region: deps.replication.region, partitionCount: -1, partitions: [] };
    noteUnauthorized(deps, ctx, req.senderRegion, req.topic, res.error);
    writeHandshakeResponse(w, { ...withErrorCode(res), maxAppendVersion: APPEND_VERSIONS.max });
  } else if (apiKey === ReplicationApiKey.Append && apiVersion === 1) {
    const results = await appendV1(deps, ctx, readAppendRequestV1(body));
    writeAppendResponseV1(w, results.map(withErrorCode));
  } else if (apiKey === ReplicationApiKey.OffsetSync) {
    const req = readOffsetSyncRequest(body);
    const error = admit(deps, ctx, req.senderRegion) ?? (deps.dr === undefined ? DR_NOT_RUNNING() : await deps.dr.handleOffsetSync(req));
    noteUnauthorized(deps, ctx, req.senderRegion, undefined, error);
    writeHead(w, withErrorCode({ error }));
  } else if (apiKey === ReplicationApiKey.EtcdContact) {
    const req = readContactRequest(body);
    let refused = admit(deps, ctx, deps.replication.region) ?? (deps.cluster === undefined || deps.replicaManager === undefined ? new MeridianError(ErrorCode.MetadataUnavailable, `broker ${deps.config.nodeId} is not in a region cluster`) : null);
    // Not "no" before it can keep the promise a "no" makes (registered, its record attached).
    const inContact = refused === null ? deps.cluster!.answerContact() : undefined;
    if (refused === null && inContact === undefined) refused = new MeridianError(ErrorCode.MetadataUnavailable, `broker ${deps.config.nodeId} is starting: it cannot answer for its contact with etcd yet`);
    noteUnauthorized(deps, ctx, deps.replication.region, undefined, refused);
    const conflict = refused === null ? deps.replicaManager!.contradicts(req.nodeId, req.led) : null;
    writeContactResponse(w, { ...withErrorCode({ error: refused }), nodeId: deps.config.nodeId, inContact: inContact ?? true, conflict });
  } else if (apiKey === ReplicationApiKey.DrProbe) {
    const req = readProbeRequest(body);
    const refused = admit(deps, ctx, req.senderRegion, req.topic) ?? (deps.dr === undefined ? DR_NOT_RUNNING() : null);
    const r = refused !== null ? { error: refused, primary: '', epoch: -1, since: 0, partitions: [] } : await deps.dr!.handleProbe(req);
    noteUnauthorized(deps, ctx, req.senderRegion, req.topic, r.error);
    writeProbeResponse(w, withErrorCode(r));
  } else {
    const req = readAppendRequest(body);
    const refused = admit(deps, ctx, req.senderRegion, req.topic);
    const begun = refused === null ? await deps.replication.append(req) : null;
    ctx.release();
    const res = begun === null ? { error: refused, senderCursor: -1n, appendedBatches: 0, duplicateBatches: 0 } : await begun.done;
    noteUnauthorized(deps, ctx, req.senderRegion, req.topic, res.error);
    writeAppendResponse(w, withErrorCode(res));
  }
  return encodeResponseFrameChunks(correlationId, 0, w.toBuffers());
}

/**
 * ReplicatedAppend v1: each item is a v0 append of its own, judged alone. Items of different
 * partitions start together; items of the same partition one after the other, in request
 * order (each continues from the one before). The connection goes on with its next request
 * once every item's offsets are assigned, as for v0, and the answer waits for all of them.
 */
async function appendV1(deps: KafkaApiDeps, ctx: RequestContext, req: MultiAppendRequest): Promise<AppendResult[]> {
  const none = { senderCursor: -1n, appendedBatches: 0, duplicateBatches: 0 };
  // The principal speaks for one region in the whole request: checked once.
  const refused = admit(deps, ctx, req.senderRegion, req.partitions[0]?.topic);
  if (refused !== null) {
    ctx.release();
    noteUnauthorized(deps, ctx, req.senderRegion, undefined, refused);
    return req.partitions.map(() => ({ error: refused, ...none }));
  }
  const last = new Map<string, Promise<unknown>>();
  const begun = req.partitions.map((p) => {
    const key = `${p.topic}\0${p.partition}`;
    const start = () =>
      deps.replication.append({ targetRegion: req.targetRegion, senderRegion: req.senderRegion, ...p }).catch((err: unknown) => ({ done: Promise.resolve<AppendResult>({ error: err instanceof Error ? err : new Error(String(err)), ...none }) }));
    const prev = last.get(key);
    const b = prev === undefined ? start() : prev.then(start);
    last.set(key, b);
    return b;
  });
  const started = await Promise.all(begun);
  ctx.release();
  // The batches are views of the request's frame, held by the log's queue until written (or
  // refused; markers are encoded apart): after that nothing refers to it, and its memory may
  // serve the next request.
  ctx.freeFrameAfter(Promise.allSettled(started.map((b) => b.done)));
  const results = await Promise.all(started.map((b) => b.done));
  results.forEach((r, i) => noteUnauthorized(deps, ctx, req.senderRegion, req.partitions[i].topic, r.error));
  return results;
}

/**
 * The principal's checks: ClusterAction (with authorization on), then the registry's
 * binding of regions to principals. Null when the request may go on to the target.
 */
function admit(deps: KafkaApiDeps, ctx: RequestContext, claimed: string, topic?: string): MeridianError | null {
  const who = { principal: ctx.principal, clientHost: ctx.clientHost };
  if (deps.security !== undefined && !deps.security.authorizeCluster(who, AclOperation.ClusterAction)) {
    const api = REPLICATION_API_NAMES[ctx.header.apiKey];
    return new MeridianError(
      ErrorCode.ClusterAuthorizationFailed,
      `${ctx.principal} may not use the replication API (${api}${topic === undefined ? '' : ` for topic ${topic}`}, claiming region ${claimed}) of region ${deps.replication.region}: it needs ClusterAction on the cluster there`,
    );
  }
  return deps.replication.admitSender(claimed, ctx.principal);
}

/** A refusal for the principal or the claimed region: a warn line and a count (the target's). */
function noteUnauthorized(deps: KafkaApiDeps, ctx: RequestContext, claimed: string, topic: string | undefined, error: Error | null): void {
  if (!(error instanceof MeridianError) || (error.code !== ErrorCode.ClusterAuthorizationFailed && error.code !== ErrorCode.ReplicationUnauthorized)) return;
  deps.replication.noteRefused(error, { principal: ctx.principal, clientHost: ctx.clientHost, claimedRegion: claimed, ...(topic === undefined ? {} : { topic }), api: REPLICATION_API_NAMES[ctx.header.apiKey] ?? String(ctx.header.apiKey) });
}

/** The target's result with its error as the response's error code and message. */
function withErrorCode<T extends { error: Error | null }>({ error, ...rest }: T): Omit<T, 'error'> & { errorCode: number; errorMessage: string | null } {
  if (error === null) return { ...rest, errorCode: 0, errorMessage: null };
  const e = toKafkaError(error);
  return { ...rest, errorCode: e.code, errorMessage: e.message };
}
