import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { defaultLogOptions } from '../../src/storage/partition-log.js';
import { TopicManager } from '../../src/storage/topic-manager.js';
import { makeBatch } from '../helpers/batches.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));
function dir(): string {
  const t = tmpDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

test('topics are created with N partitions, persisted, and reopened with their data', async () => {
  const d = dir();
  let tm = await TopicManager.open(d, defaultLogOptions);
  const info = await tm.createTopic('orders', 3);
  await tm.createTopic('audit.log_v2-x', 1, { retentionMs: -1 });
  assert.equal(info.partitions, 3);
  assert.match(info.id, /^[0-9a-f-]{36}$/);
  for (let p = 0; p < 3; p++) await tm.partition('orders', p)!.append(makeBatch(`o${p}`, p + 1));
  await tm.close();

  tm = await TopicManager.open(d, defaultLogOptions);
  assert.deepEqual(tm.listTopics().map((x) => x.name).sort(), ['audit.log_v2-x', 'orders']);
  assert.equal(tm.getTopic('orders')!.id, info.id);
  assert.deepEqual(tm.getTopic('audit.log_v2-x')!.config, { retentionMs: -1 });
  assert.equal(tm.partition('audit.log_v2-x', 0)!.options.retentionMs, -1);
  for (let p = 0; p < 3; p++) assert.equal(tm.partition('orders', p)!.highWatermark, BigInt(p + 1));
  assert.equal(tm.partition('orders', 3), undefined);
  await tm.close();
});

test('bad names, bad counts and duplicates are refused with a clear error', async () => {
  const tm = await TopicManager.open(dir(), defaultLogOptions);
  for (const name of ['', '.', '..', 'a/b', 'spaces here', 'x'.repeat(250), 'ünïcode']) {
    await assert.rejects(tm.createTopic(name, 1), (e: any) => e.code === 'INVALID_TOPIC' && e.message.includes('invalid topic name'));
  }
  for (const n of [0, -1, 1.5, 10_001]) await assert.rejects(tm.createTopic('t', n), { code: 'INVALID_PARTITIONS' });
  await tm.createTopic('t', 1);
  await assert.rejects(tm.createTopic('t', 1), { code: 'TOPIC_EXISTS' });
  await assert.rejects(tm.deleteTopic('nope'), { code: 'UNKNOWN_TOPIC' });
  await tm.close();
});

test('delete removes the topic, its directories and its metadata; the name can be reused', async () => {
  const d = dir();
  const tm = await TopicManager.open(d, defaultLogOptions);
  await tm.createTopic('gone', 2);
  await tm.partition('gone', 0)!.append(makeBatch('x', 5));
  await tm.deleteTopic('gone');
  assert.equal(tm.getTopic('gone'), undefined);
  assert.deepEqual(fs.readdirSync(path.join(d, 'logs')), []);
  await tm.createTopic('gone', 1);
  assert.equal(tm.partition('gone', 0)!.highWatermark, 0n);
  await tm.close();
});

test('concurrent creates of one name: exactly one wins', async () => {
  const tm = await TopicManager.open(dir(), defaultLogOptions);
  const results = await Promise.allSettled(Array.from({ length: 5 }, () => tm.createTopic('race', 2)));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  await tm.close();
});

test('leftovers of an interrupted create or delete are cleaned up; logs without metadata are never deleted', async () => {
  const d = dir();
  const tm = await TopicManager.open(d, defaultLogOptions);
  await tm.createTopic('keep', 1);
  await tm.close();
  fs.mkdirSync(path.join(d, 'logs', 'half-created-0'));
  const tm2 = await TopicManager.open(d, defaultLogOptions);
  assert.deepEqual(fs.readdirSync(path.join(d, 'logs')), ['keep-0']);
  await tm2.close();
  fs.rmSync(path.join(d, 'topics.json'));
  await assert.rejects(TopicManager.open(d, defaultLogOptions), /topics.json is missing/);
  assert.ok(fs.existsSync(path.join(d, 'logs', 'keep-0')));
});

test('maintenance applies retention across all partitions', async () => {
  const tm = await TopicManager.open(dir(), { ...defaultLogOptions, segmentBytes: 2048, retentionBytes: 0, retentionMs: -1 });
  await tm.createTopic('r', 2);
  for (let i = 0; i < 10; i++) for (let p = 0; p < 2; p++) await tm.partition('r', p)!.append(makeBatch(`m${i}`, 1, 800));
  const sealed: string[] = [];
  tm.onSegmentSealed((topic, p, s) => sealed.push(`${topic}-${p}@${s.baseOffset}`));
  await tm.partition('r', 0)!.roll();
  assert.deepEqual(sealed.filter((s) => s.startsWith('r-0@')).length, 1);
  const deleted = await tm.maintain();
  assert.ok(deleted > 4);
  for (let p = 0; p < 2; p++) assert.equal(tm.partition('r', p)!.segments().length, 1);
  await tm.close();
});
