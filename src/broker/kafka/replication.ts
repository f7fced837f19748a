/**
 * The internal replication API on the Kafka port (see replication/replication-api.ts for
 * the wire format): decode, hand to the ReplicationTarget, frame the answer with response
 * header v0. Appends release the connection once their offsets are assigned, as Produce
 * does, so requests for other partitions on the same link share the next fsync.
 */
import type { RequestContext } from '../../protocol/kafka/connection.js';
import { toKafkaError } from '../../protocol/kafka/error-mapping.js';
import type { Reader } from '../../protocol/kafka/reader.js';
import { encodeResponseFrameChunks } from '../../protocol/kafka/request-header.js';
import { Writer } from '../../protocol/kafka/writer.js';
import {
  readAppendRequest,
  readHandshakeRequest,
  ReplicationApiKey,
  writeAppendResponse,
  writeHandshakeResponse,
} from '../../replication/replication-api.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import { ErrorCode, MeridianError } from '../../errors.js';
import { readOffsetSyncRequest, readProbeRequest, writeHead, writeProbeResponse } from '../../dr/dr-api.js';

export async function handleReplication(deps: KafkaApiDeps, ctx: RequestContext, body: Reader): Promise<Buffer[]> {
  const { apiKey, correlationId } = ctx.header;
  const w = new Writer(64);
  if (apiKey === ReplicationApiKey.Handshake) {
    writeHandshakeResponse(w, withErrorCode(await deps.replication.handshake(readHandshakeRequest(body))));
  } else if (apiKey === ReplicationApiKey.OffsetSync) {
    const req = readOffsetSyncRequest(body);
    const error = deps.dr === undefined ? new MeridianError(ErrorCode.RemoteUnavailable, 'disaster recovery is not running in this region') : await deps.dr.handleOffsetSync(req);
    writeHead(w, withErrorCode({ error }));
  } else if (apiKey === ReplicationApiKey.DrProbe) {
    const req = readProbeRequest(body);
    const r = deps.dr === undefined ? { error: new MeridianError(ErrorCode.RemoteUnavailable, 'disaster recovery is not running in this region'), primary: '', epoch: -1, since: 0, partitions: [] } : await deps.dr.handleProbe(req);
    writeProbeResponse(w, withErrorCode(r));
  } else {
    const begun = await deps.replication.append(readAppendRequest(body));
    ctx.release();
    writeAppendResponse(w, withErrorCode(await begun.done));
  }
  return encodeResponseFrameChunks(correlationId, 0, w.toBuffers());
}

/** The target's result with its error as the response's error code and message. */
function withErrorCode<T extends { error: Error | null }>({ error, ...rest }: T): Omit<T, 'error'> & { errorCode: number; errorMessage: string | null } {
  if (error === null) return { ...rest, errorCode: 0, errorMessage: null };
  const e = toKafkaError(error);
  return { ...rest, errorCode: e.code, errorMessage: e.message };
}
