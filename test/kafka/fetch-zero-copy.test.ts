/**
 * Fetch from local segments copies record bytes once between disk and socket (issue 15): the
 * pread into a pooled read buffer. The response handed to the socket references that buffer
 * (no Buffer.concat, no slice copy of the records), and the buffer goes back to the pool only
 * once the socket has taken the response.
 *
 * Driven through the real Kafka request handler (dispatcher, Fetch handler, log views, real
 * partition logs on disk) with a minimal stand-in for the connection: its context, where the
 * chunks the socket would get are visible. The stand-in's deps carry only what a
 * single-broker Fetch reads (no security, quotas, sessions or cluster), said here because
 * they are cast rather than built whole.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { createKafkaHandler } from '../../src/broker/kafka/dispatcher.js';
import type { KafkaApiDeps } from '../../src/broker/kafka-api.js';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import type { RequestContext } from '../../src/protocol/kafka/connection.js';
import type { FetchResponse } from '../../src/protocol/kafka/messages/fetch.js';
import { messageCodecs } from '../../src/protocol/kafka/messages/index.js';
import { Reader } from '../../src/protocol/kafka/reader.js';
import { Writer } from '../../src/protocol/kafka/writer.js';
import { BufferPool } from '../../src/storage/buffer-pool.js';
import { LogViews } from '../../src/storage/log-view.js';
import { defaultLogOptions } from '../../src/storage/partition-log.js';
import { encodeBatch } from '../../src/storage/record-batch.js';
import { TopicManager } from '../../src/storage/topic-manager.js';
import { decodeResponse } from '../helpers/raw-kafka.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const cleanups: Array<() => void | Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A pool that remembers which buffers it handed out and which came back. */
class WatchedPool extends BufferPool {
  readonly out = new Set<ArrayBufferLike>();
  readonly back = new Set<ArrayBufferLike>();
  override acquire(size: number): Buffer {
    const b = super.acquire(size);
    this.out.add(b.buffer);
    return b;
  }
  override release(buf: Buffer): void {
    this.back.add(buf.buffer);
    super.release(buf);
  }
}

const ZERO = '00000000-0000-0000-0000-000000000000';

test('a Fetch of sealed and active segments hands the socket views of the pooled read buffers, released after the write', async () => {
  const t = tmpDir('meridian-fetch-zero-copy-');
  cleanups.push(t.cleanup);
  const topics = await TopicManager.open(path.join(t.dir, 'logs'), { ...defaultLogOptions, segmentBytes: 256 * 1024, flushMode: 'interval' });
  cleanups.push(() => topics.close());
  await topics.createTopic('z', 2);
  // 64 KiB batches: sealed segments on partition 0 (their reads check CRCs), active only on 1.
  const value = (i: number) => Buffer.alloc(64 * 1024, i);
  for (let i = 0; i < 6; i++) await topics.partition('z', 0)!.append(encodeBatch({ records: [{ value: value(i) }] }), { sync: false });
  await topics.partition('z', 1)!.append(encodeBatch({ records: [{ value: value(9) }] }), { sync: false });
  await topics.partition('z', 0)!.flush(); // seals run behind the writer
  assert.ok(topics.partition('z', 0)!.segments()[0].sealed, 'partition 0 has a sealed segment');

  const pool = new WatchedPool();
  const deps = { logger: pino({ level: 'silent' }), topics, logs: new LogViews(topics), readBuffers: pool } as unknown as KafkaApiDeps;
  const afterWrite: Array<() => void> = [];
  const ctx = {
    session: { authenticated: true, expiresAt: 0, listener: 'PLAINTEXT', principal: 'User:ANONYMOUS' },
    principal: 'User:ANONYMOUS',
    header: { apiKey: ApiKey.Fetch, apiVersion: 12, correlationId: 7, clientId: 'zero-copy' },
    connectionId: 1,
    clientHost: '127.0.0.1',
    signal: new AbortController().signal,
    afterWrite: (fn: () => void) => afterWrite.push(fn),
    release: () => {},
    mute: () => {},
    closeAfterResponse: () => {},
  } as unknown as RequestContext;
  const body = new Writer();
  messageCodecs.get(ApiKey.Fetch)!.encodeRequest(body, 12, {
    clusterId: null,
    replicaId: -1,
    replicaState: { replicaId: -1, replicaEpoch: -1n },
    maxWaitMs: 0,
    minBytes: 1,
    maxBytes: 4 << 20,
    isolationLevel: 0,
    sessionId: 0,
    sessionEpoch: -1,
    topics: [
      {
        topic: 'z',
        topicId: ZERO,
        partitions: [0, 1].map((partition) => ({ partition, currentLeaderEpoch: -1, fetchOffset: 0n, lastFetchedEpoch: -1, logStartOffset: -1n, partitionMaxBytes: 1 << 20, replicaDirectoryId: ZERO })),
      },
    ],
    forgottenTopicsData: [],
    rackId: '',
  } as never);

  const chunks = await createKafkaHandler(deps)(ctx, new Reader(body.toBuffer()));
  assert.ok(chunks !== null);
  // What the client decodes: every batch, byte for byte as stored.
  const frame = Buffer.concat(chunks).subarray(4);
  const res = decodeResponse<FetchResponse>(ApiKey.Fetch, 12, frame).body;
  const parts = res.responses[0].partitions;
  assert.deepEqual(parts.map((p) => p.errorCode), [0, 0]);
  for (const [i, p] of parts.entries()) {
    const stored = await topics.partition('z', i)!.read(0n, 1 << 20);
    assert.ok(p.records!.length > 0 && p.records!.equals(stored.records), `partition ${i}: the stored batches`);
    // The socket gets a chunk that is that record set itself, a view of a pooled read buffer.
    const records = p.records!;
    const chunk: Buffer | undefined = chunks.find((c: Buffer) => c.length === records.length && c.equals(records));
    assert.ok(chunk !== undefined, `partition ${i}: the records are one chunk of the response, not copied into a larger one`);
    assert.ok(pool.out.has(chunk.buffer), `partition ${i}: that chunk is the buffer the pread filled (no copy in between)`);
    assert.equal(pool.back.has(chunk.buffer), false, `partition ${i}: not back in the pool while the response is unwritten`);
  }
  for (const fn of afterWrite) fn();
  for (const c of chunks) if (pool.out.has(c.buffer)) assert.ok(pool.back.has(c.buffer), 'back in the pool once the socket took the response');
});
