/**
 * The Kafka request dispatcher: version check, decode, handle, encode, frame.
 *
 * Unsupported versions never close the socket (a client that ignored ApiVersions gets a
 * clear error, not a dead connection):
 * - ApiVersions at a version we do not speak gets a v0-shaped body with error 35 and our
 *   ranges, which is exactly what librdkafka and KafkaJS step down on;
 * - any other unknown key or version gets a body that starts with error 35 (as INT16).
 *   Clients only send those if they ignored ApiVersions; they get a clear error and the
 *   connection keeps working.
 * A body that cannot be decoded throws, and the connection closes (Kafka does the same).
 */
import { ApiKey, apiKeyName, responseHeaderVersion } from '../../protocol/kafka/api-keys.js';
import type { RequestContext, RequestHandler } from '../../protocol/kafka/connection.js';
import { messageCodecs } from '../../protocol/kafka/messages/index.js';
import type { Reader } from '../../protocol/kafka/reader.js';
import { encodeResponseFrame, encodeResponseFrameChunks } from '../../protocol/kafka/request-header.js';
import { Writer } from '../../protocol/kafka/writer.js';
import { isReplicationApi } from '../../replication/replication-api.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import { apiVersionsResponse, UNSUPPORTED_VERSION } from './api-versions.js';
import { isSupported, KAFKA_APIS } from './apis.js';
import { handleReplication } from './replication.js';

export function createKafkaHandler(deps: KafkaApiDeps): RequestHandler {
  return async (ctx: RequestContext, body: Reader): Promise<Buffer[] | null> => {
    const { apiKey, apiVersion, correlationId } = ctx.header;
    if (isReplicationApi(apiKey) && apiVersion === 0) return handleReplication(deps, ctx, body);
    if (!isSupported(apiKey, apiVersion)) return [unsupported(deps, ctx)];
    const codec = messageCodecs.get(apiKey)!;
    const req = codec.decodeRequest(body, apiVersion);
    const res = await KAFKA_APIS.get(apiKey)!.handle(deps, ctx, req, apiVersion);
    if (res === null) return null;
    // Fetch bodies carry stored record batches: hand them to the socket uncopied.
    const w = apiKey === ApiKey.Fetch ? new Writer(4096, { zeroCopyFrom: 8192 }) : new Writer(256);
    codec.encodeResponse(w, apiVersion, res);
    return encodeResponseFrameChunks(correlationId, responseHeaderVersion(apiKey, apiVersion), w.toBuffers());
  };
}

function unsupported(deps: KafkaApiDeps, ctx: RequestContext): Buffer {
  const { apiKey, apiVersion, correlationId, clientId } = ctx.header;
  deps.logger.info({ api: apiKeyName(apiKey) ?? `unknown key ${apiKey}`, version: apiVersion, clientId }, 'unsupported API key or version: answered UNSUPPORTED_VERSION');
  const w = new Writer(256);
  if (apiKey === ApiKey.ApiVersions) {
    messageCodecs.get(ApiKey.ApiVersions)!.encodeResponse(w, 0, apiVersionsResponse(KAFKA_APIS, UNSUPPORTED_VERSION));
    return encodeResponseFrame(correlationId, 0, w.toBuffer());
  }
  w.int16(UNSUPPORTED_VERSION);
  return encodeResponseFrame(correlationId, 0, w.toBuffer());
}
