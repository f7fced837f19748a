/**
 * Request frames assembled in pooled buffers (src/protocol/kafka/frame-decoder.ts, and
 * RequestContext.freeFrameAfter in connection.ts): a large frame's memory serves a later
 * request only after its handler said nothing refers to it any more, and never while it
 * does. A real socket and a real Connection; the handler keeps views of each body, as
 * Produce's log queues do, and checks them byte for byte after later frames arrived.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import { Connection, type RequestContext } from '../../../src/protocol/kafka/connection.js';
import { FrameDecoder, POOLED_MAX_BYTES, POOLED_MIN_BYTES } from '../../../src/protocol/kafka/frame-decoder.js';
import type { Reader } from '../../../src/protocol/kafka/reader.js';
import { RequestBudget } from '../../../src/protocol/kafka/request-budget.js';
import { BufferPool } from '../../../src/storage/buffer-pool.js';

const BODY_BYTES = 200 * 1024; // several socket reads: assembled, so pooled
const CLASS_BYTES = 256 * 1024;

/** A request frame (size prefix, header v1 of Produce v3, then `fill` repeated). */
function frame(correlationId: number, fill: number): Buffer {
  const client = Buffer.from('frame-pool-test');
  const header = Buffer.alloc(10 + client.length);
  header.writeInt16BE(0, 0); // Produce
  header.writeInt16BE(3, 2);
  header.writeInt32BE(correlationId, 4);
  header.writeInt16BE(client.length, 8);
  client.copy(header, 10);
  const size = Buffer.alloc(4);
  size.writeInt32BE(header.length + BODY_BYTES);
  return Buffer.concat([size, header, Buffer.alloc(BODY_BYTES, fill)]);
}

interface Seen {
  view: Buffer;
  fill: number;
  free: () => void;
}

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));

async function setUp(handle: (ctx: RequestContext, view: Buffer, settled: Promise<void>) => void) {
  const pool = new BufferPool({ maxPooledBytes: 8 * 1024 * 1024, maxBufferBytes: POOLED_MAX_BYTES });
  const seen: Seen[] = [];
  let wake = () => {};
  const handler = async (ctx: RequestContext, body: Reader): Promise<Buffer[] | null> => {
    const view = body.rawBytes(body.remaining);
    let free!: () => void;
    const settled = new Promise<void>((r) => (free = r));
    handle(ctx, view, settled);
    seen.push({ view, fill: view[0], free });
    wake();
    return null; // no response, as acks=0
  };
  const server = net.createServer((socket) => {
    new Connection(1, socket, handler, { maxFrameBytes: 8 * 1024 * 1024, maxQueuedBytes: 8 * 1024 * 1024, budget: new RequestBudget(64 * 1024 * 1024), idleMs: 60_000, receiveTimeoutMs: 60_000, now: () => performance.now(), onSelfClose: () => {}, onBudgetPause: () => {}, framePool: pool }, () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((r) => client.once('connect', r));
  cleanups.push(() => {
    client.destroy();
    server.close();
  });
  let correlation = 0;
  const send = async (fill: number): Promise<Seen> => {
    const n = seen.length;
    const arrived = new Promise<void>((r) => (wake = r));
    client.write(frame(++correlation, fill));
    await arrived;
    assert.equal(seen.length, n + 1);
    return seen[n];
  };
  const intact = (s: Seen, what: string) => assert.ok(s.view.every((b) => b === s.fill), `${what}: its bytes were overwritten`);
  return { pool, send, intact };
}

test('a large frame is assembled in a pooled buffer and reused only once its handler has freed it', async () => {
  const { pool, send, intact } = await setUp((ctx, _view, settled) => ctx.freeFrameAfter(settled));
  const a = await send(0xa1);
  const b = await send(0xb2);
  assert.notEqual(b.view.buffer, a.view.buffer, 'a frame still referred to is not reused');
  intact(a, 'the first frame, still held');
  assert.equal(a.view.buffer.byteLength, CLASS_BYTES, 'assembled in a pooled class buffer');

  a.free();
  await new Promise((r) => setImmediate(r));
  assert.equal(pool.pooledBytes, CLASS_BYTES, 'the freed frame went back to the pool');
  const c = await send(0xc3);
  assert.equal(c.view.buffer, a.view.buffer, 'the freed frame serves the next request');
  intact(c, 'the frame that reused the memory');
  intact(b, 'the second frame, still held');
  assert.equal(pool.pooledBytes, 0);

  b.free();
  c.free();
  await new Promise((r) => setImmediate(r));
  assert.equal(pool.pooledBytes, 2 * CLASS_BYTES);
});

test('a frame whose handler never frees it is never reused; freeing twice gives it back once', async () => {
  let calls = 0;
  const { pool, send, intact } = await setUp((ctx, _view, settled) => {
    calls++;
    if (calls === 1) return; // this handler keeps its frame
    ctx.freeFrameAfter(settled);
    ctx.freeFrameAfter(settled); // a second call must not put the buffer in the pool twice
  });
  const kept = await send(0x11);
  const d = await send(0x22);
  d.free();
  await new Promise((r) => setImmediate(r));
  assert.equal(pool.pooledBytes, CLASS_BYTES, 'given back once');
  const e = await send(0x33);
  assert.equal(e.view.buffer, d.view.buffer);
  const f = await send(0x44);
  assert.notEqual(f.view.buffer, e.view.buffer, 'two live frames never share memory');
  for (const [s, what] of [[kept, 'the kept frame'], [e, 'e'], [f, 'f']] as const) intact(s, what);
  assert.notEqual(kept.view.buffer, e.view.buffer);
  assert.notEqual(kept.view.buffer, f.view.buffer);
});

test('the decoder pools only assembled frames of the pooled sizes', () => {
  const pool = new BufferPool({ maxPooledBytes: 64 * 1024 * 1024, maxBufferBytes: POOLED_MAX_BYTES });
  const d = new FrameDecoder({ maxFrameBytes: 16 * 1024 * 1024, pool });
  const push = (size: number, split: boolean) => {
    const f = Buffer.alloc(4 + size, 7);
    f.writeInt32BE(size, 0);
    const out = split ? [...d.push(f.subarray(0, 100)), ...d.push(f.subarray(100))] : d.push(f);
    assert.equal(out.length, 1);
    return out[0];
  };
  assert.equal(d.takePooled(push(POOLED_MIN_BYTES - 1, true)), undefined, 'too small to pool');
  const big = push(POOLED_MIN_BYTES, true);
  assert.equal(d.takePooled(big)?.length, POOLED_MIN_BYTES, 'a pooled class buffer');
  assert.equal(d.takePooled(big), undefined, 'handed out once');
  assert.equal(d.takePooled(push(POOLED_MAX_BYTES + 1, true)), undefined, 'too large to pool');
  assert.equal(d.takePooled(push(POOLED_MIN_BYTES * 2, false)), undefined, 'within one chunk: a view of it, nothing assembled');
});
