/**
 * A minimal Kafka client for bench:scale: one socket, pipelined requests matched by
 * correlation id, and the three requests the bench times or checks itself: Metadata for
 * every topic, Produce of one-record batches to many partitions in one request, and
 * ListOffsets (latest) for many partitions. Everything else goes through kcat and KafkaJS.
 *
 * It speaks only the public wire protocol, at non-flexible versions (request header v1,
 * response header v0), so it does not depend on how the broker is built.
 */
import net from 'node:net';
import { ApiKey } from '../src/protocol/kafka/api-keys.js';
import { FrameDecoder } from '../src/protocol/kafka/frame-decoder.js';
import { messageCodecs } from '../src/protocol/kafka/messages/index.js';
import type { ListOffsetsResponse } from '../src/protocol/kafka/messages/list-offsets.js';
import type { MetadataResponse } from '../src/protocol/kafka/messages/metadata.js';
import { Reader } from '../src/protocol/kafka/reader.js';
import { Writer } from '../src/protocol/kafka/writer.js';
import { encodeBatch } from '../src/storage/record-batch.js';

const METADATA_VERSION = 8;
const PRODUCE_VERSION = 7;
const LIST_OFFSETS_VERSION = 4;

export interface PartitionRef {
  topic: string;
  partition: number;
}

export class ScaleClient {
  readonly #sock: net.Socket;
  readonly #frames = new FrameDecoder({ maxFrameBytes: 0x7fffffff });
  readonly #pending = new Map<number, { resolve: (r: { body: Reader; bytes: number }) => void; reject: (e: Error) => void }>();
  #corr = 0;
  #closed: Error | undefined;

  private constructor(sock: net.Socket) {
    this.#sock = sock;
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => {
      for (const frame of this.#frames.push(d)) {
        const r = new Reader(frame);
        const corr = r.int32();
        const p = this.#pending.get(corr);
        this.#pending.delete(corr);
        p?.resolve({ body: r, bytes: frame.length + 4 });
      }
    });
    const fail = (err: Error) => {
      this.#closed = err;
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('connection closed by the broker')));
  }

  /** Connects, or rejects when the port refuses (the broker is not up yet). */
  static connect(port: number, host = '127.0.0.1'): Promise<ScaleClient> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(port, host);
      sock.once('connect', () => {
        sock.removeListener('error', reject);
        resolve(new ScaleClient(sock));
      });
      sock.once('error', reject);
    });
  }

  #request(apiKey: number, version: number, body: unknown): Promise<{ body: Reader; bytes: number }> {
    if (this.#closed) return Promise.reject(this.#closed);
    const corr = ++this.#corr;
    const w = new Writer(1024);
    const size = w.reserveInt32();
    w.int16(apiKey).int16(version).int32(corr).nullableString('bench-scale');
    messageCodecs.get(apiKey)!.encodeRequest(w, version, body as never);
    w.setInt32(size, w.length - 4);
    return new Promise((resolve, reject) => {
      this.#pending.set(corr, { resolve, reject });
      this.#sock.write(w.toBuffer());
    });
  }

  /** Metadata for every topic; the decoded response and its size on the wire. */
  async metadata(): Promise<{ response: MetadataResponse; bytes: number }> {
    const r = await this.#request(ApiKey.Metadata, METADATA_VERSION, {
      topics: null,
      allowAutoTopicCreation: false,
      includeClusterAuthorizedOperations: false,
      includeTopicAuthorizedOperations: false,
    });
    return { response: messageCodecs.get(ApiKey.Metadata)!.decodeResponse(r.body, METADATA_VERSION) as MetadataResponse, bytes: r.bytes };
  }

  /**
   * Produces one record to each of `records` (acks=all), all partitions in one request;
   * the key of each record is its `key`, the value `value`, the timestamp now. Rejects
   * when any partition answers an error.
   */
  async produce(records: Array<PartitionRef & { key: string }>, value: Buffer): Promise<void> {
    const byTopic = new Map<string, Array<{ index: number; records: Buffer }>>();
    for (const r of records) {
      const list = byTopic.get(r.topic) ?? [];
      if (list.length === 0) byTopic.set(r.topic, list);
      list.push({ index: r.partition, records: encodeBatch({ records: [{ key: Buffer.from(r.key), value }] }) });
    }
    const topicData = [...byTopic].map(([name, partitionData]) => ({ name, partitionData }));
    const r = await this.#request(ApiKey.Produce, PRODUCE_VERSION, { transactionalId: null, acks: -1, timeoutMs: 30_000, topicData });
    const res = messageCodecs.get(ApiKey.Produce)!.decodeResponse(r.body, PRODUCE_VERSION) as {
      responses: Array<{ name: string; partitionResponses: Array<{ index: number; errorCode: number }> }>;
    };
    for (const t of res.responses) {
      for (const p of t.partitionResponses) if (p.errorCode !== 0) throw new Error(`produce to ${t.name}[${p.index}] failed with error code ${p.errorCode}`);
    }
  }

  /**
   * The whole Produce request (acks=all) carrying one batch for each of `batches`, framed
   * and ready to send with `sendProduce` (its correlation id is filled in then). Built ahead
   * by a benchmark whose clock should not include the client's encoding.
   */
  static produceFrame(batches: Array<PartitionRef & { batch: Buffer }>): Buffer {
    const byTopic = new Map<string, Array<{ index: number; records: Buffer }>>();
    let bytes = 0;
    for (const b of batches) {
      const list = byTopic.get(b.topic) ?? [];
      if (list.length === 0) byTopic.set(b.topic, list);
      list.push({ index: b.partition, records: b.batch });
      bytes += b.batch.length + b.topic.length + 32;
    }
    const topicData = [...byTopic].map(([name, partitionData]) => ({ name, partitionData }));
    const w = new Writer(bytes + 128);
    const size = w.reserveInt32();
    w.int16(ApiKey.Produce).int16(PRODUCE_VERSION).int32(0).nullableString('bench-scale');
    messageCodecs.get(ApiKey.Produce)!.encodeRequest(w, PRODUCE_VERSION, { transactionalId: null, acks: -1, timeoutMs: 30_000, topicData } as never);
    w.setInt32(size, w.length - 4);
    return w.toBuffer();
  }

  /**
   * Sends a request built by `produceFrame` (its correlation id is written into it) without
   * waiting for others: the caller pipelines. Rejects when any partition answers an error.
   */
  async sendProduce(frame: Buffer): Promise<void> {
    if (this.#closed) throw this.#closed;
    const corr = ++this.#corr;
    frame.writeInt32BE(corr, 8); // after the size, the api key and the version
    const r = await new Promise<{ body: Reader; bytes: number }>((resolve, reject) => {
      this.#pending.set(corr, { resolve, reject });
      this.#sock.write(frame);
    });
    this.#checkProduce(r.body);
  }

  #checkProduce(body: Reader): void {
    const res = messageCodecs.get(ApiKey.Produce)!.decodeResponse(body, PRODUCE_VERSION) as {
      responses: Array<{ name: string; partitionResponses: Array<{ index: number; errorCode: number }> }>;
    };
    for (const t of res.responses) {
      for (const p of t.partitionResponses) if (p.errorCode !== 0) throw new Error(`produce to ${t.name}[${p.index}] failed with error code ${p.errorCode}`);
    }
  }

  /** The latest offset (high watermark) of each partition. */
  async highWatermarks(partitions: PartitionRef[]): Promise<Map<string, bigint>> {
    const byTopic = new Map<string, number[]>();
    for (const p of partitions) byTopic.set(p.topic, [...(byTopic.get(p.topic) ?? []), p.partition]);
    const topics = [...byTopic].map(([name, ps]) => ({ name, partitions: ps.map((partitionIndex) => ({ partitionIndex, currentLeaderEpoch: -1, timestamp: -1n, maxNumOffsets: 1 })) }));
    const r = await this.#request(ApiKey.ListOffsets, LIST_OFFSETS_VERSION, { replicaId: -1, isolationLevel: 0, topics, timeoutMs: 30_000 });
    const res = messageCodecs.get(ApiKey.ListOffsets)!.decodeResponse(r.body, LIST_OFFSETS_VERSION) as ListOffsetsResponse;
    const out = new Map<string, bigint>();
    for (const t of res.topics) {
      for (const p of t.partitions) {
        if (p.errorCode !== 0) throw new Error(`ListOffsets of ${t.name}[${p.partitionIndex}] failed with error code ${p.errorCode}`);
        out.set(`${t.name}/${p.partitionIndex}`, p.offset);
      }
    }
    return out;
  }

  close(): void {
    this.#sock.destroy();
  }
}

/**
 * bench:scale's lag probes: `total` one-record produces at `rate` a second, round-robin over
 * `partitions` (probe i has key `p<i>`), each millisecond's due ones in one request, up to 5
 * requests in flight on `producer`. Resolves with each probe's acknowledgement time
 * (performance.now()) once every request is answered.
 */
export async function produceProbes(producer: ScaleClient, partitions: readonly PartitionRef[], rate: number, total: number, value: Buffer): Promise<Float64Array> {
  const acked = new Float64Array(total).fill(NaN);
  const start = performance.now();
  let sent = 0;
  let inFlight = 0;
  const pending: Array<Promise<void>> = [];
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate)) - sent;
    if (due > 0 && inFlight < 5) {
      const first = sent;
      const n = Math.min(due, partitions.length);
      const records = Array.from({ length: n }, (_, i) => ({ ...partitions[(first + i) % partitions.length], key: `p${first + i}` }));
      sent += n;
      inFlight++;
      pending.push(
        producer.produce(records, value).then(() => {
          const t = performance.now();
          for (let i = first; i < first + n; i++) acked[i] = t;
          inFlight--;
        }),
      );
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  await Promise.all(pending);
  return acked;
}
