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
 * Both return latencies in ms, sorted ascending, and this process's own GC pauses during the
 * run.
 *
 * The client is kept out of its own results:
 * - it allocates nothing per tick that the garbage collector has to chase: its request
 *   frames are copied into one preallocated ring, the raw loop writes slices of one
 *   constant buffer. A fresh 10-50 KB Buffer per tick (as this file did until 2026-12-06)
 *   grew V8's external memory by tens of MB/s, and V8 answered with a mark-compact every
 *   0.4-0.5 s (up to 7 ms each with the benchmark's other state on the heap): the produce
 *   run's "tail" was episodes of 5-20 ms every 0.4-0.5 s, each starting at one of the
 *   client's own GC pauses, while the broker's event loop and GC stayed under 1.5 ms;
 * - `inChild` runs either subject in a fresh process (bench/latency-run.ts), so that the
 *   garbage the benchmark made before (KafkaJS, earlier runs' results) is not collected in
 *   the middle of a measured run: in-process, each produce run still began with a 7 ms
 *   mark-compact. The child first runs the same schedule for WARM_UP_SECONDS, discarded,
 *   so that the measured run does not start with code being compiled, collects its garbage
 *   before the measured run, and runs without V8's memory reducer (CHILD_FLAGS).
 * Each run reports the client's own GC pauses (`clientGc`) so that a reader can tell.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ApiKey } from '../src/protocol/kafka/api-keys.js';
import { messageCodecs } from '../src/protocol/kafka/messages/index.js';
import { FrameDecoder } from '../src/protocol/kafka/frame-decoder.js';
import { Reader } from '../src/protocol/kafka/reader.js';
import { Writer } from '../src/protocol/kafka/writer.js';
import { encodeBatch } from '../src/storage/record-batch.js';

const MAX_IN_FLIGHT = 5;
/**
 * The request frames' ring: far more than MAX_IN_FLIGHT frames of the largest tick, so a
 * region is written again only long after its request was answered (an answer means the
 * request left the socket's buffer).
 */
const RING_BYTES = 8 * 1024 * 1024;
/**
 * Whole request frames (correlation id 0) by topic, message size and batch size, built the
 * first time a tick sends that many (the warm-up run builds most of them). Built once per
 * process: rebuilding them every second to keep their record timestamps fresh was itself
 * 10 MB/s of new buffers at 50,000 msg/s, and a mark-compact every second.
 */
const frames = new Map<string, Buffer>();
/** The request frames' ring (RING_BYTES), one per process. */
let ring: Buffer | undefined;

/** This process's GC pauses over one run. */
export interface ClientGc {
  count: number;
  maxMs: number;
  totalMs: number;
}

export interface LatencyRun {
  /** ms, sorted ascending. */
  latencies: number[];
  clientGc: ClientGc;
}

/** Collects this process's GC pauses until `stop()`. */
function watchGc(): { stop: () => ClientGc } {
  const gc: ClientGc = { count: 0, maxMs: 0, totalMs: 0 };
  const add = (entries: readonly PerformanceEntry[]) => {
    for (const e of entries) {
      gc.count++;
      gc.totalMs += e.duration;
      gc.maxMs = Math.max(gc.maxMs, e.duration);
    }
  };
  const obs = new PerformanceObserver((list) => add(list.getEntries()));
  obs.observe({ entryTypes: ['gc'] });
  return {
    stop: () => {
      add(obs.takeRecords());
      obs.disconnect();
      return gc;
    },
  };
}

/**
 * Runs the schedule: every ~1 ms, hands `submit` the messages due since the last tick (when
 * `ready()` allows) as the index of the first and their count, until `rate * seconds`
 * messages went out; then waits for `idle()`. Message i falls due at `dueOf(i)`.
 */
async function cadence(total: number, dueOf: (i: number) => number, ready: () => boolean, submit: (first: number, count: number) => void, idle: () => boolean): Promise<void> {
  const start = dueOf(0);
  const rate = total / (dueOf(total) - start); // messages per ms
  let sent = 0;
  while (sent < total) {
    const dueCount = Math.min(total, Math.floor((performance.now() - start) * rate)) - sent;
    if (dueCount > 0 && ready()) {
      submit(sent, dueCount);
      sent += dueCount;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  while (!idle()) await new Promise((r) => setTimeout(r, 2));
}

/** The schedule of `rate` messages/s over `seconds`, starting now: the count and each message's due time. */
function schedule(rate: number, seconds: number): { total: number; dueOf: (i: number) => number } {
  const start = performance.now();
  return { total: Math.floor(rate * seconds), dueOf: (i) => start + (i / rate) * 1000 };
}

/** Sorted latencies of the first `n` entries. */
function sorted(latencies: Float64Array, n: number): number[] {
  return Array.from(latencies.subarray(0, n)).sort((a, b) => a - b);
}

export async function produceLatency(port: number, topic: string, rate: number, seconds: number, messageBytes: number): Promise<LatencyRun> {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  sock.setNoDelay(true);
  const { total, dueOf } = schedule(rate, seconds);
  const latencies = new Float64Array(total);
  let answered = 0;
  /** Correlation id → [first message, count], in send order (answers come back in it). */
  const inflight = new Map<number, [number, number]>();
  const decoder = new FrameDecoder({ maxFrameBytes: 0x7fffffff });
  let failure: Error | undefined;
  sock.on('data', (d: Buffer) => {
    for (const frame of decoder.push(d)) {
      const r = new Reader(frame);
      const corr = r.int32();
      const res = messageCodecs.get(ApiKey.Produce)!.decodeResponse(r, 7) as { responses: Array<{ partitionResponses: Array<{ errorCode: number }> }> };
      const code = res.responses[0].partitionResponses[0].errorCode;
      if (code !== 0) failure ??= new Error(`produce failed in the latency run with error code ${code}`);
      const now = performance.now();
      const [first, count] = inflight.get(corr)!;
      for (let i = first; i < first + count; i++) latencies[answered++] = now - dueOf(i);
      inflight.delete(corr);
    }
  });
  const value = Buffer.alloc(messageBytes - 30, 0x6c);
  const frameOf = (count: number): Buffer => {
    const key = `${topic}\0${messageBytes}\0${count}`;
    let f = frames.get(key);
    if (f === undefined) {
      const batch = encodeBatch({ records: Array.from({ length: count }, () => ({ value })) });
      const w = new Writer(batch.length + 128);
      const size = w.reserveInt32();
      w.int16(ApiKey.Produce).int16(7).int32(0).nullableString('bench-latency');
      messageCodecs.get(ApiKey.Produce)!.encodeRequest(w, 7, { transactionalId: null, acks: -1, timeoutMs: 30_000, topicData: [{ name: topic, partitionData: [{ index: 0, records: batch }] }] } as never);
      w.setInt32(size, w.length - 4);
      frames.set(key, (f = w.toBuffer()));
    }
    return f;
  };
  ring ??= Buffer.allocUnsafeSlow(RING_BYTES);
  let at = 0;
  let corr = 0;
  const gc = watchGc();
  await cadence(
    total,
    dueOf,
    () => inflight.size < MAX_IN_FLIGHT,
    (first, count) => {
      const f = frameOf(count);
      let out: Buffer;
      if (f.length > RING_BYTES / (4 * MAX_IN_FLIGHT)) {
        out = Buffer.from(f); // a tick far behind its schedule: its own copy
      } else {
        if (at + f.length > RING_BYTES) at = 0;
        out = ring!.subarray(at, at + f.length);
        at += f.length;
        f.copy(out);
      }
      out.writeInt32BE(++corr, 8); // after the size, api key and version
      inflight.set(corr, [first, count]);
      sock.write(out);
    },
    () => inflight.size === 0 || failure !== undefined,
  );
  const clientGc = gc.stop();
  sock.destroy();
  if (failure) throw failure;
  return { latencies: sorted(latencies, answered), clientGc };
}

let rawRun = 0;

export async function rawFsyncLatency(dir: string, rate: number, seconds: number, messageBytes: number): Promise<LatencyRun> {
  const file = path.join(dir, `raw-cadence-${rawRun++}.dat`);
  const fd = fs.openSync(file, 'w');
  const { total, dueOf } = schedule(rate, seconds);
  const latencies = new Float64Array(total);
  let answered = 0;
  // Every tick writes a slice of this one buffer: its bytes never change.
  let bytes = Buffer.alloc(64 * messageBytes, 0x72);
  let position = 0;
  let writing = 0;
  /** Written, waiting for an fdatasync to begin: [first message, count] runs. */
  let written: Array<[number, number]> = [];
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
      for (const [first, count] of covered) for (let i = first; i < first + count; i++) latencies[answered++] = now - dueOf(i);
      sync();
    });
  };
  const gc = watchGc();
  try {
    await cadence(
      total,
      dueOf,
      () => true,
      (first, count) => {
        const length = count * messageBytes;
        if (length > bytes.length) bytes = Buffer.alloc(2 * length, 0x72);
        writing++;
        fs.write(fd, bytes, 0, length, position, (err) => {
          writing--;
          if (err) failure ??= err;
          written.push([first, count]);
          sync();
        });
        position += length;
      },
      () => (writing === 0 && written.length === 0 && !syncing) || failure !== undefined,
    );
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  const clientGc = gc.stop();
  if (failure) throw failure;
  return { latencies: sorted(latencies, answered), clientGc };
}

/** What `inChild` runs: one subject, with its schedule. */
export type LatencySpec =
  | { subject: 'produce'; port: number; topic: string; rate: number; seconds: number; messageBytes: number }
  | { subject: 'raw'; dir: string; rate: number; seconds: number; messageBytes: number };

/** Seconds of the same schedule run (and discarded) before the measured run in a fresh process: its code is compiled by then. */
const WARM_UP_SECONDS = 1;

/** Runs `spec` in this process after a warm-up of the same schedule (bench/latency-run.ts calls this in the child). */
export async function runHere(spec: LatencySpec): Promise<LatencyRun> {
  const run = (seconds: number) =>
    spec.subject === 'produce' ? produceLatency(spec.port, spec.topic, spec.rate, seconds, spec.messageBytes) : rawFsyncLatency(spec.dir, spec.rate, seconds, spec.messageBytes);
  await run(WARM_UP_SECONDS);
  // What the warm-up left is collected now, not in the measured run (CHILD_FLAGS expose gc).
  (globalThis as { gc?: () => void }).gc?.();
  return run(spec.seconds);
}

const RUN_SCRIPT = fileURLToPath(new URL('./latency-run.ts', import.meta.url));
/**
 * V8's memory reducer starts mark-compacts in a process that allocates little, 8 s after
 * start and then every 0.5 s (three of 3-5 ms each in a 10 s run of the raw loop): the
 * client's, not the broker's or the disk's, so it is off in the client. `gc()` collects
 * the warm-up's garbage before the measured run.
 */
const CHILD_FLAGS = ['--no-memory-reducer', '--expose-gc'];

/**
 * Runs `spec` in a fresh Node process: its latencies come back as a file of float64s in
 * `scratchDir` (deleted after), its GC summary on stdout.
 */
export function inChild(spec: LatencySpec, scratchDir: string): Promise<LatencyRun> {
  const out = path.join(scratchDir, `latency-${process.pid}-${rawRun++}.f64`);
  return new Promise<LatencyRun>((resolve, reject) => {
    const child = spawn(process.execPath, [...CHILD_FLAGS, '--import', 'tsx', RUN_SCRIPT, JSON.stringify(spec), out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child.once('error', reject);
    child.once('exit', (code) => {
      try {
        if (code !== 0) throw new Error(`latency run (${spec.subject}) exited ${code}: ${stderr}`);
        const bytes = fs.readFileSync(out);
        const latencies = Array.from(new Float64Array(bytes.buffer, bytes.byteOffset, bytes.length / 8));
        resolve({ latencies, clientGc: JSON.parse(stdout) as ClientGc });
      } catch (err) {
        reject(err);
      } finally {
        fs.rmSync(out, { force: true });
      }
    });
  });
}
