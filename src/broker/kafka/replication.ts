/**
 * The internal replication API on the Kafka port (see replication/replication-api.ts for
 * the wire format): decode, hand to the ReplicationTarget, frame the answer with response
 * header v0. Appends release the connection once their offsets are assigned, as Produce
 * does, so requests for other partitions on the same link share the next fsync.
 */
import type { RequestContext } from '../../protocol/kafka/connection.js';
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

export async function handleReplication(deps: KafkaApiDeps, ctx: RequestContext, body: Reader): Promise<Buffer[]> {
  const { apiKey, correlationId } = ctx.header;
  const w = new Writer(64);
  if (apiKey === ReplicationApiKey.Handshake) {
    writeHandshakeResponse(w, await deps.replication.handshake(readHandshakeRequest(body)));
  } else {
    const begun = await deps.replication.append(readAppendRequest(body));
    ctx.release();
    writeAppendResponse(w, await begun.done);
  }
  return encodeResponseFrameChunks(correlationId, 0, w.toBuffers());
}
