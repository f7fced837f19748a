/**
 * Request and response headers (https://kafka.apache.org/protocol#protocol_messages,
 * RequestHeader.json, ResponseHeader.json):
 *
 *   Request Header v1 => request_api_key request_api_version correlation_id client_id
 *     request_api_key     => INT16
 *     request_api_version => INT16
 *     correlation_id      => INT32
 *     client_id           => NULLABLE_STRING
 *   Request Header v2 => request_api_key request_api_version correlation_id client_id TAG_BUFFER
 *     client_id stays an INT16-length NULLABLE_STRING even here ("flexibleVersions": "none"),
 *     so that any broker can read the header of an ApiVersions request of any version.
 *
 *   Response (framed) => Size correlation_id [TAG_BUFFER, header v1 only] body
 */
import {
  requestHeaderVersion,
  type RequestHeaderVersion,
  type ResponseHeaderVersion,
} from './api-keys.js';
import { NO_TAGGED_FIELDS, Reader, type TaggedFields } from './reader.js';

export interface RequestHeader {
  /** Any INT16; check it with isApiKey() before dispatching. */
  readonly apiKey: number;
  readonly apiVersion: number;
  readonly correlationId: number;
  readonly clientId: string | null;
  readonly headerVersion: RequestHeaderVersion;
  /** Header tags (v2 only; empty for v1). No header tag is defined for requests today. */
  readonly taggedFields: TaggedFields;
}

export interface DecodedRequestHeader {
  readonly header: RequestHeader;
  /** Positioned at the first byte of the request body. */
  readonly body: Reader;
}

/**
 * Decodes the header of one frame (without its size prefix). Throws KafkaDecodeError when
 * the frame is too short or malformed; the header version follows from the key and version
 * just read (requestHeaderVersion).
 */
export function decodeRequestHeader(frame: Buffer): DecodedRequestHeader {
  const reader = new Reader(frame);
  const apiKey = reader.int16('request_api_key');
  const apiVersion = reader.int16('request_api_version');
  const correlationId = reader.int32('correlation_id');
  const clientId = reader.nullableString('client_id');
  const headerVersion = requestHeaderVersion(apiKey, apiVersion);
  const taggedFields = headerVersion === 2 ? reader.taggedFields('request header') : NO_TAGGED_FIELDS;
  return {
    header: { apiKey, apiVersion, correlationId, clientId, headerVersion, taggedFields },
    body: reader,
  };
}

/**
 * Frames one response: size prefix, correlation id, for header v1 an empty tag buffer, then
 * the body. Pick the header version with responseHeaderVersion(); ApiVersions is always v0.
 */
export function encodeResponseFrame(correlationId: number, headerVersion: ResponseHeaderVersion, body: Uint8Array): Buffer {
  const headerBytes = headerVersion === 1 ? 5 : 4;
  const size = headerBytes + body.length;
  if (size > 0x7fffffff) throw new RangeError(`Response of ${size} bytes does not fit a Kafka frame`);
  const frame = Buffer.allocUnsafe(4 + size);
  frame.writeInt32BE(size, 0);
  frame.writeInt32BE(correlationId, 4);
  if (headerVersion === 1) frame[8] = 0;
  frame.set(body, 4 + headerBytes);
  return frame;
}

/**
 * Frames one response given as several buffers (a Fetch body with zero-copy record
 * chunks): returns the header as a new buffer followed by the body chunks, uncopied.
 */
export function encodeResponseFrameChunks(correlationId: number, headerVersion: ResponseHeaderVersion, body: readonly Buffer[]): Buffer[] {
  const headerBytes = headerVersion === 1 ? 5 : 4;
  const bodyBytes = body.reduce((n, b) => n + b.length, 0);
  const size = headerBytes + bodyBytes;
  if (size > 0x7fffffff) throw new RangeError(`Response of ${size} bytes does not fit a Kafka frame`);
  const head = Buffer.allocUnsafe(4 + headerBytes);
  head.writeInt32BE(size, 0);
  head.writeInt32BE(correlationId, 4);
  if (headerVersion === 1) head[8] = 0;
  return [head, ...body];
}
