/**
 * Topics as the bucket knows them: each tiered topic's descriptor (`topic.json`: name, id,
 * partitions, config) is written when the topic is attached, so that a broker on an empty
 * disk can recreate the topic from the bucket alone (restore), and is deleted first when the
 * topic is, so that no restore brings a deleted topic back.
 */
import type { TopicInfo, TopicManager } from '../storage/topic-manager.js';
import { loadManifest, remoteEndOffset } from './manifest.js';
import { ObjectKeys } from './object-keys.js';
import type { TierIo } from './partition-tier.js';
import { withRetry, type RetryPolicy } from './retry.js';
import { listKeys } from './segment-objects.js';

interface TopicDescriptor {
  name: string;
  id: string;
  partitions: number;
  config: TopicInfo['config'];
}

export async function writeTopicDescriptor(io: TierIo, info: TopicInfo, retry: RetryPolicy): Promise<void> {
  const descriptor: TopicDescriptor = { name: info.name, id: info.id, partitions: info.partitions, config: info.config };
  await withRetry(() => io.store.put(ObjectKeys.topicDescriptor(info.name), Buffer.from(JSON.stringify(descriptor)), { signal: io.signal }), retry);
}

/**
 * Recreates the topics the bucket describes and the disk lacks (same id and config), each
 * partition's local log starting at the end of its remote history. Returns per-topic
 * failures (the others proceed); throws only when the bucket cannot be listed.
 */
export async function restoreTopics(io: TierIo, topics: TopicManager, retry: RetryPolicy): Promise<string[]> {
  const { store, signal } = io;
  const failures: string[] = [];
  for await (const key of listKeys(store, ObjectKeys.topicsPrefix(), signal, retry)) {
    const name = ObjectKeys.topicOfDescriptor(key);
    if (name === null || topics.getTopic(name)) continue;
    try {
      const d = JSON.parse((await withRetry(() => store.get(key, { signal }), retry)).toString('utf8')) as TopicDescriptor;
      const starts: bigint[] = [];
      for (let p = 0; p < d.partitions; p++) {
        const m = await withRetry(() => loadManifest(store, { topic: d.name, topicId: d.id, partition: p }, signal), retry);
        starts.push(m ? remoteEndOffset(m) : 0n);
      }
      await topics.createTopic(d.name, d.partitions, d.config ?? {}, { id: d.id, startOffsets: starts });
      io.log?.info({ topic: d.name, partitions: d.partitions, startOffsets: starts.map(String) }, 'topic restored from the bucket');
    } catch (err) {
      failures.push(`restoring ${name}: ${(err as Error).message}`);
    }
  }
  return failures;
}

/** The topic is gone: so is its remote data (descriptor first, so no restore finds it). */
export async function deleteTopicObjects(io: TierIo, info: TopicInfo): Promise<void> {
  const { store, signal, retry } = io;
  await store.delete(ObjectKeys.topicDescriptor(info.name), { signal });
  for (let p = 0; p < info.partitions; p++) {
    const prefix = ObjectKeys.partitionPrefix({ topic: info.name, topicId: info.id, partition: p });
    for await (const key of listKeys(store, prefix, signal, retry)) {
      await withRetry(() => store.delete(key, { signal }), retry);
    }
  }
}
