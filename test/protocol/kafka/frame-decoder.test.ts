import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { KafkaFrameError } from '../../../src/protocol/kafka/codec-errors.js';
import { FrameDecoder } from '../../../src/protocol/kafka/frame-decoder.js';

function frame(body: Uint8Array): Buffer {
  const out = Buffer.alloc(4 + body.length);
  out.writeInt32BE(body.length, 0);
  out.set(body, 4);
  return out;
}

function split(stream: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const p of [...points, stream.length]) {
    chunks.push(stream.subarray(start, p));
    start = p;
  }
  return chunks;
}

function decodeAll(decoder: FrameDecoder, chunks: readonly Buffer[]): Buffer[] {
  return chunks.flatMap((chunk) => decoder.push(chunk));
}

function frameError(code: string, size: number) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof KafkaFrameError, String(error));
    assert.equal(error.code, code);
    assert.equal(error.size, size);
    assert.equal(error.retriable, false);
    return true;
  };
}

const bodies = [Buffer.from('first'), Buffer.alloc(0), Buffer.from([0, 0, 0, 4]), Buffer.alloc(300, 7)];
const stream = Buffer.concat(bodies.map(frame));

describe('FrameDecoder', () => {
  it('returns the same frames whichever byte the stream is split at', () => {
    for (let at = 0; at <= stream.length; at++) {
      const frames = decodeAll(new FrameDecoder({ maxFrameBytes: 1024 }), [stream.subarray(0, at), stream.subarray(at)]);
      assert.deepEqual(frames, bodies, `split at ${at}`);
    }
  });

  it('assembles frames delivered one byte at a time', () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 1024 });
    const chunks = [...stream].map((b) => Buffer.from([b]));
    assert.deepEqual(decodeAll(decoder, chunks), bodies);
    assert.equal(decoder.bufferedBytes, 0);
  });

  it('returns every frame of a chunk that holds many, as views of that chunk', () => {
    const many = Array.from({ length: 1000 }, (_, i) => Buffer.from(`request-${i}`));
    const chunk = Buffer.concat(many.map(frame));
    const frames = new FrameDecoder({ maxFrameBytes: 64 }).push(chunk);
    assert.deepEqual(frames, many);
    assert.ok(frames.every((f) => f.buffer === chunk.buffer));
  });

  it('splits any stream of frames cut at any points (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (payloads, cuts) => {
          const expected = payloads.map((p) => Buffer.from(p));
          const all = Buffer.concat(expected.map(frame));
          const frames = decodeAll(new FrameDecoder({ maxFrameBytes: 80 }), split(all, cuts));
          assert.deepEqual(frames, expected);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('keeps a partial frame across pushes and reports what it holds', () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 100 });
    assert.deepEqual(decoder.push(Buffer.from([0, 0])), []);
    assert.equal(decoder.bufferedBytes, 2);
    assert.deepEqual(decoder.push(Buffer.from([0, 3, 1])), []);
    assert.equal(decoder.bufferedBytes, 5);
    assert.deepEqual(decoder.push(Buffer.from([2, 3, 0, 0])), [Buffer.from([1, 2, 3])]);
    assert.equal(decoder.bufferedBytes, 2);
  });

  it('assembles a large frame from socket-sized chunks', () => {
    const body = Buffer.alloc(300 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
    const stream = Buffer.concat([frame(Buffer.from('before')), frame(body), frame(Buffer.from('after'))]);
    const decoder = new FrameDecoder({ maxFrameBytes: 1024 * 1024 });
    const chunks = Array.from({ length: Math.ceil(stream.length / 65536) }, (_, i) => stream.subarray(i * 65536, (i + 1) * 65536));
    const frames = decodeAll(decoder, chunks);
    assert.equal(frames.length, 3);
    assert.ok(frames[1].equals(body));
    assert.equal(decoder.bufferedBytes, 0);
  });

  it('counts a partly received frame by what arrived, not what was announced, and drops it on discard', () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 100 * 1024 * 1024 });
    const head = Buffer.alloc(4);
    head.writeInt32BE(100 * 1024 * 1024, 0);
    assert.deepEqual(decoder.push(head), []);
    assert.equal(decoder.bufferedBytes, 4);
    assert.deepEqual(decoder.push(Buffer.alloc(2 * 1024 * 1024)), []);
    assert.equal(decoder.bufferedBytes, 4 + 2 * 1024 * 1024);
    decoder.discard();
    assert.throws(() => decoder.push(Buffer.alloc(1)), /after discard/);
  });

  it('accepts a frame of exactly maxFrameBytes', () => {
    const body = Buffer.alloc(100, 1);
    assert.deepEqual(new FrameDecoder({ maxFrameBytes: 100 }).push(frame(body)), [body]);
  });

  it('rejects an oversize frame as soon as its size prefix arrives', () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 100 });
    assert.throws(() => decoder.push(Buffer.from([0, 0, 0, 101])), frameError('KAFKA_FRAME_TOO_LARGE', 101));
    assert.throws(() => decoder.push(Buffer.alloc(101)), frameError('KAFKA_FRAME_TOO_LARGE', 101), 'stays failed');
  });

  it('rejects a 2 GiB frame from an HTTP or TLS client without buffering it', () => {
    // "GET " read as a size prefix is 1195725856 bytes.
    const decoder = new FrameDecoder({ maxFrameBytes: 100 * 1024 * 1024 });
    assert.throws(() => decoder.push(Buffer.from('GET / HTTP/1.1\r\n')), frameError('KAFKA_FRAME_TOO_LARGE', 0x47455420));
  });

  it('rejects negative size prefixes, even split across chunks', () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 100 });
    assert.deepEqual(decoder.push(Buffer.from([0xff, 0xff])), []);
    assert.throws(() => decoder.push(Buffer.from([0xff, 0xff])), frameError('KAFKA_FRAME_INVALID', -1));
    assert.throws(
      () => new FrameDecoder({ maxFrameBytes: 100 }).push(Buffer.from([0x80, 0, 0, 0])),
      frameError('KAFKA_FRAME_INVALID', -(2 ** 31)),
    );
  });

  it('fails the whole push when good frames and a bad prefix share a chunk: the connection is closing anyway', () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 10 });
    assert.deepEqual(decoder.push(frame(Buffer.from('ok'))), [Buffer.from('ok')]);
    assert.throws(() => decoder.push(Buffer.concat([frame(Buffer.from('ok')), Buffer.from([0, 0, 1, 0])])), KafkaFrameError);
  });

  it('refuses a nonsensical limit', () => {
    assert.throws(() => new FrameDecoder({ maxFrameBytes: -1 }), RangeError);
    assert.throws(() => new FrameDecoder({ maxFrameBytes: 2 ** 31 }), RangeError);
  });
});
