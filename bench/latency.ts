/**
 * Latency at a fixed cadence, for bench:kafka: messages fall due at a steady rate and, each
 * millisecond, the due ones go out together (linger ≈ 1 ms). Two subjects run the same
 * schedule:
 * - `produceLatency`: a minimal Kafka producer, acks=-1, one batch per tick, up to 5 requests
 *   in flight on one connection (as librdkafka pipelines); a message's latency runs from its
 *   due time to the acknowledgement of its request;
 * - `rawFsyncLatency`: the disk's own answer to the same schedule: each tick's bytes are
 *   appended to a file with one write, and fdatasync runs as a group commit (one at a time,
 *   covering everything written before it began), as the partition log does; a message's
 *   latency runs from its due time to the end of the fdatasync that covered it.
 * Both return latencies in ms, sorted ascending.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ApiKey } from '../src/protocol/kafka/api-keys.js';
import { messageCodecs } from '../src/protocol/kafka/messages/index.js';
import { FrameDecoder } from '../src/protocol/kafka/frame-decoder.js';
import { Reader } from '../src/protocol/kafka/reader.js';
import { Writer } from '../src/protocol/kafka/writer.js';
import { encodeBatch } from '../src/storage/record-batch.js';

const MAX_IN_FLIGHT = 5;

/**
 * Runs the schedule: every ~1 ms, hands `submit` the due times of the messages due since the
 * last tick (when `ready()` allows), until `rate * seconds` messages went out; then waits for
 * `idle()`.
 */
async function cadence(rate: number, seconds: number, ready: () => boolean, submit: (dues: number[]) => void, idle: () => boolean): Promise<void> {
  const start = performance.now();
  const total = Math.floor(rate * seconds);
  let sent = 0;
  while (sent < total) {
    const now = performance.now();
    const dueCount = Math.min(total, Math.floor(((now - start) / 1000) * rate)) - sent;
    if (dueCount > 0 && ready()) {
      submit(Array.from({ length: dueCount }, (_, i) => start + ((sent + i) / rate) * 1000));
      sent += dueCount;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  while (!idle()) await new Promise((r) => setTimeout(r, 2));
}

export async function produceLatency(port: number, topic: string, rate: number, seconds: number, messageBytes: number): Promise<number[]> {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  sock.setNoDelay(true);
  const inflight = new Map<number, number[]>();
  const latencies: number[] = [];
  const frames = new FrameDecoder({ maxFrameBytes: 0x7fffffff });
  let failure: Error | undefined;
  sock.on('data', (d: Buffer) => {
    for (const frame of frames.push(d)) {
      const r = new Reader(frame);
      const corr = r.int32();
      const res = messageCodecs.get(ApiKey.Produce)!.decodeResponse(r, 7) as { responses: Array<{ partitionResponses: Array<{ errorCode: number }> }> };
      const code = res.responses[0].partitionResponses[0].errorCode;
      if (code !== 0) failure ??= new Error(`produce failed in the latency run with error code ${code}`);
      const now = performance.now();
      for (const due of inflight.get(corr)!) latencies.push(now - due);
      inflight.delete(corr);
    }
  });
  const value = Buffer.alloc(messageBytes - 30, 0x6c);
  let corr = 0;
  await cadence(
    rate,
    seconds,
    () => inflight.size < MAX_IN_FLIGHT,
    (dues) => {
      const batch = encodeBatch({ records: dues.map(() => ({ value })) });
      const w = new Writer(batch.length + 128);
      const size = w.reserveInt32();
      w.int16(ApiKey.Produce).int16(7).int32(++corr).nullableString('bench-latency');
      messageCodecs.get(ApiKey.Produce)!.encodeRequest(w, 7, { transactionalId: null, acks: -1, timeoutMs: 30_000, topicData: [{ name: topic, partitionData: [{ index: 0, records: batch }] }] } as never);
      w.setInt32(size, w.length - 4);
      inflight.set(corr, dues);
      sock.write(w.toBuffer());
    },
    () => inflight.size === 0 || failure !== undefined,
  );
  sock.destroy();
  if (failure) throw failure;
  return latencies.sort((a, b) => a - b);
}

let rawRun = 0;

export async function rawFsyncLatency(dir: string, rate: number, seconds: number, messageBytes: number): Promise<number[]> {
  const file = path.join(dir, `raw-cadence-${rawRun++}.dat`);
  const fd = fs.openSync(file, 'w');
  const latencies: number[] = [];
  let position = 0;
  let writing = 0;
  /** Written, waiting for an fdatasync to begin. */
  let written: number[] = [];
  let syncing = false;
  let failure: Error | undefined;
  const sync = () => {
    if (syncing || written.length === 0) return;
    syncing = true;
    const covered = written;
    written = [];
    fs.fdatasync(fd, (err) => {
      syncing = false;
      if (err) failure ??= err;
      const now = performance.now();
      for (const due of covered) latencies.push(now - due);
      sync();
    });
  };
  try {
    await cadence(
      rate,
      seconds,
      () => true,
      (dues) => {
        const buf = Buffer.alloc(dues.length * messageBytes, 0x72);
        writing++;
        fs.write(fd, buf, 0, buf.length, position, (err) => {
          writing--;
          if (err) failure ??= err;
          written.push(...dues);
          sync();
        });
        position += buf.length;
      },
      () => (writing === 0 && written.length === 0 && !syncing) || failure !== undefined,
    );
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  if (failure) throw failure;
  return latencies.sort((a, b) => a - b);
}
