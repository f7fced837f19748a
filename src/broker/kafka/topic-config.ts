/**
 * Kafka topic configs accepted by CreateTopics, mapped to Meridian's per-topic overrides.
 * Unknown or unsupported names are refused with INVALID_CONFIG rather than ignored, so a
 * client never believes a setting took effect when it did not.
 */
import { ErrorCode, MeridianError } from '../../errors.js';
import type { TopicConfig } from '../../storage/topic-manager.js';

type Setter = (c: TopicConfig, v: string) => void;

function int(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new MeridianError(ErrorCode.InvalidConfig, `topic config ${name}=${v}: expected an integer >= ${min}`);
  return n;
}

function bool(name: string, v: string): boolean {
  if (v !== 'true' && v !== 'false') throw new MeridianError(ErrorCode.InvalidConfig, `topic config ${name}=${v}: expected true or false`);
  return v === 'true';
}

const SETTERS: Record<string, Setter> = {
  'retention.ms': (c, v) => (c.retentionMs = int('retention.ms', v, -1)),
  'retention.bytes': (c, v) => (c.retentionBytes = int('retention.bytes', v, -1)),
  'segment.bytes': (c, v) => (c.segmentBytes = Math.min(int('segment.bytes', v, 1024), 2 ** 31 - 1)),
  'segment.ms': (c, v) => (c.segmentMs = int('segment.ms', v, 1)),
  'max.message.bytes': (c, v) => (c.maxBatchBytes = int('max.message.bytes', v, 1)),
  'remote.storage.enable': (c, v) => (c.remoteStorage = bool('remote.storage.enable', v)),
  // Kafka's -2 means "same as retention": here that is "keep local copies" (-1).
  'local.retention.bytes': (c, v) => (c.localRetentionBytes = Math.max(-1, int('local.retention.bytes', v, -2))),
  'local.retention.ms': (c, v) => (c.localRetentionMs = Math.max(-1, int('local.retention.ms', v, -2))),
};

export const SUPPORTED_TOPIC_CONFIGS = Object.keys(SETTERS);

export function topicConfigFrom(configs: ReadonlyArray<{ name: string; value: string | null }>): TopicConfig {
  const out: TopicConfig = {};
  for (const { name, value } of configs) {
    const set = SETTERS[name];
    if (!set) throw new MeridianError(ErrorCode.InvalidConfig, `topic config ${name} is not supported; supported: ${SUPPORTED_TOPIC_CONFIGS.join(', ')}`);
    if (value === null) continue;
    set(out, value);
  }
  return out;
}
