import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiKey, responseHeaderVersion } from '../../../src/protocol/kafka/api-keys.js';
import { KafkaDecodeError } from '../../../src/protocol/kafka/codec-errors.js';
import { FrameDecoder } from '../../../src/protocol/kafka/frame-decoder.js';
import { decodeRequestHeader, encodeResponseFrame } from '../../../src/protocol/kafka/request-header.js';
import { Writer } from '../../../src/protocol/kafka/writer.js';

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

const ascii = (text: string): string => Buffer.from(text, 'latin1').toString('hex');

/** ApiVersions v3 as librdkafka 2.0.2 sends it first on every connection: header v2, body flexible. */
const librdkafkaApiVersions = hex(`
  0012 0003 00000001
  0007 ${ascii('rdkafka')}
  00
  0b ${ascii('librdkafka')}
  06 ${ascii('2.0.2')}
  00`);

describe('decodeRequestHeader', () => {
  it('decodes the header v2 of librdkafka ApiVersions v3 and leaves the body reader at the body', () => {
    const { header, body } = decodeRequestHeader(librdkafkaApiVersions);
    assert.deepEqual(header, {
      apiKey: ApiKey.ApiVersions,
      apiVersion: 3,
      correlationId: 1,
      clientId: 'rdkafka',
      headerVersion: 2,
      taggedFields: new Map(),
    });
    assert.equal(body.offset, 2 + 2 + 4 + 2 + 7 + 1);
    assert.equal(body.compactString('client_software_name'), 'librdkafka');
    assert.equal(body.compactString('client_software_version'), '2.0.2');
    body.skipTaggedFields();
    assert.equal(body.remaining, 0);
  });

  it('decodes the header v1 of KafkaJS ApiVersions v2 (empty body)', () => {
    const { header, body } = decodeRequestHeader(hex(`0012 0002 7fffffff 0006 ${ascii('my-app')}`));
    assert.equal(header.headerVersion, 1);
    assert.equal(header.apiVersion, 2);
    assert.equal(header.correlationId, 0x7fffffff);
    assert.equal(header.clientId, 'my-app');
    assert.equal(header.taggedFields.size, 0);
    assert.equal(body.remaining, 0);
  });

  it('decodes kcat Metadata v4 (header v1) with a null topic array', () => {
    const { header, body } = decodeRequestHeader(hex(`0003 0004 00000002 0007 ${ascii('rdkafka')} ffffffff 01`));
    assert.equal(header.apiKey, ApiKey.Metadata);
    assert.equal(header.headerVersion, 1);
    assert.equal(body.nullableArray((r) => r.string(), 'topics'), null);
    assert.equal(body.boolean('allow_auto_topic_creation'), true);
    assert.equal(body.remaining, 0);
  });

  it('accepts a null client_id, and header tags in v2', () => {
    const { header, body } = decodeRequestHeader(hex('0012 0003 00000009 ffff 01 05 02 abcd 00'));
    assert.equal(header.clientId, null);
    assert.deepEqual(header.taggedFields, new Map([[5, hex('abcd')]]));
    assert.equal(body.remaining, 1);
  });

  it('keeps client_id an INT16-length string in header v2, never a compact one', () => {
    // 0x08 as a compact length would mean 7 bytes; read as the INT16 0x0008 it means 8.
    const { header } = decodeRequestHeader(hex(`0012 0003 00000001 0008 ${ascii('rdkafka!')} 00`));
    assert.equal(header.clientId, 'rdkafka!');
  });

  it('uses header v1 below the first flexible version and for unknown API keys', () => {
    assert.equal(decodeRequestHeader(hex('0000 0008 00000001 ffff')).header.headerVersion, 1);
    assert.equal(decodeRequestHeader(hex('0000 0009 00000001 ffff 00')).header.headerVersion, 2);
    const unknown = decodeRequestHeader(hex('03e8 0005 0000002a ffff 0102'));
    assert.equal(unknown.header.apiKey, 1000);
    assert.equal(unknown.header.correlationId, 42);
    assert.equal(unknown.header.headerVersion, 1);
    assert.equal(unknown.body.remaining, 2);
  });

  it('throws KafkaDecodeError for every truncation of a header', () => {
    const headerLength = 2 + 2 + 4 + 2 + 7 + 1;
    for (let cut = 0; cut < headerLength; cut++) {
      assert.throws(
        () => decodeRequestHeader(librdkafkaApiVersions.subarray(0, cut)),
        (error: unknown) => error instanceof KafkaDecodeError,
        `cut at ${cut}`,
      );
    }
    assert.throws(() => decodeRequestHeader(Buffer.alloc(0)), /request_api_key/);
    assert.throws(() => decodeRequestHeader(hex('0012 0003 00000001 0007 7264')), /client_id/);
  });
});

describe('encodeResponseFrame', () => {
  it('writes size and correlation id for header v0', () => {
    assert.deepEqual(encodeResponseFrame(7, 0, hex('aabb')), hex('00000006 00000007 aabb'));
  });

  it('adds an empty tag buffer for header v1', () => {
    assert.deepEqual(encodeResponseFrame(-1, 1, hex('aabb')), hex('00000007 ffffffff 00 aabb'));
  });

  it('frames an ApiVersions v3 response with header v0, readable by FrameDecoder', () => {
    const body = new Writer()
      .int16(0)
      .compactArray([[ApiKey.ApiVersions, 0, 3]], (w, [key, min, max]) => {
        w.int16(key).int16(min).int16(max).taggedFields();
      })
      .int32(0)
      .taggedFields()
      .toBuffer();
    const version = responseHeaderVersion(ApiKey.ApiVersions, 3);
    assert.equal(version, 0);
    const out = encodeResponseFrame(1, version, body);
    assert.deepEqual(out, hex('00000013 00000001 0000 02 0012 0000 0003 00 00000000 00'));
    const [frame] = new FrameDecoder({ maxFrameBytes: 1024 }).push(out);
    assert.equal(frame.readInt32BE(0), 1);
    assert.deepEqual(frame.subarray(4), body);
  });
});
