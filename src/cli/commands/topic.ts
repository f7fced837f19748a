/**
 * `meridian topic create|list|describe|delete`: the topics of the region addressed, through
 * /v1/topics. `--json` prints the admin API's v1 bodies as they are (src/admin/README.md),
 * so a script reads the same fields as a dashboard.
 */
import { COMMON_USAGE, helpOrUsage, ExitCode, UsageError, connect, parse, positionals, printJson, type CliIo, type Command } from './context.js';
import { bytes, table } from './format.js';

const USAGE = `Usage:
  meridian topic list                          every topic: partitions, bytes local and tiered
  meridian topic create NAME [-p N] [-c name=value]...
                                               create a topic with N partitions (default: the
                                               broker's topics.defaultPartitions) and Kafka
                                               topic configs, e.g. -c retention.ms=86400000
  meridian topic describe NAME                 configs and per-partition offsets and bytes;
                                               NOT-DURABLE: records not fdatasync'd yet (the
                                               interval flush mode, between fdatasyncs)
  meridian topic delete NAME                   delete the topic, its data in both tiers and
                                               its committed group offsets

${COMMON_USAGE}`;

interface TopicSummary {
  name: string;
  partitions: number;
  localBytes: number;
  tieredBytes: number;
  replicationPolicy?: string | null;
  replicated: boolean;
  configs: Record<string, string>;
}

export interface TopicDetail {
  name: string;
  id: string;
  replicationPolicy?: string | null;
  configs: Array<{ name: string; value: string | null; source: string; readOnly: boolean }>;
  partitions: Array<{
    partition: number;
    logStartOffset: string;
    highWatermark: string;
    /** One past the last record fdatasync'd (absent from brokers before 2026-12-06). */
    durableOffset?: string;
    localBytes: number;
    tieredBytes: number;
    remoteStartOffset: string | null;
    remoteEndOffset: string | null;
  }>;
}

const path = (name: string) => `/v1/topics/${encodeURIComponent(name)}`;

export const topicCommand: Command = {
  name: 'topic',
  usage: USAGE,
  async run(args: string[], io: CliIo) {
    const { values, positionals: [sub, ...given] } = parse(args, {
      partitions: { type: 'string', short: 'p' },
      config: { type: 'string', short: 'c', multiple: true },
    });
    if (values.help || sub === undefined) return helpOrUsage(io, USAGE, values.help === true);
    if (sub !== 'create' && (values.partitions !== undefined || values.config !== undefined)) {
      throw new UsageError(`-p and -c are options of topic create, not topic ${sub}`);
    }
    const client = connect(values, io);
    const json = values.json === true;
    switch (sub) {
      case 'list': {
        positionals(given, []);
        const topics = await client.get<TopicSummary[]>('/v1/topics');
        if (json) printJson(io, topics);
        else if (topics.length === 0) io.stdout.write('no topics\n');
        else
          io.stdout.write(
            table(
              ['topic', 'partitions>', 'local>', 'tiered>', 'replication', 'configs'],
              topics.map((t) => [
                t.name,
                t.partitions,
                bytes(t.localBytes),
                bytes(t.tieredBytes),
                t.replicationPolicy ?? (t.replicated ? 'yes' : '-'),
                Object.entries(t.configs).map(([k, v]) => `${k}=${v}`).join(',') || '-',
              ]),
            ),
          );
        return ExitCode.Ok;
      }
      case 'create': {
        const [name] = positionals(given, ['NAME']);
        const body: { name: string; partitions?: number; configs?: Record<string, string> } = { name };
        if (values.partitions !== undefined) {
          const n = Number(values.partitions);
          if (!Number.isInteger(n) || n < 1) throw new UsageError(`-p: expected a number of partitions (1 or more), got ${JSON.stringify(values.partitions)}`);
          body.partitions = n;
        }
        if (values.config !== undefined) body.configs = configsOf(values.config);
        const topic = await client.post<TopicDetail>('/v1/topics', body);
        if (json) printJson(io, topic);
        else io.stdout.write(`created topic ${topic.name} with ${topic.partitions.length} partition${topic.partitions.length === 1 ? '' : 's'} in ${client.address}\n`);
        return ExitCode.Ok;
      }
      case 'describe': {
        const [name] = positionals(given, ['NAME']);
        const topic = await client.get<TopicDetail>(path(name));
        if (json) printJson(io, topic);
        else io.stdout.write(describeText(topic));
        return ExitCode.Ok;
      }
      case 'delete': {
        const [name] = positionals(given, ['NAME']);
        await client.delete(path(name));
        if (json) printJson(io, { deleted: name });
        else io.stdout.write(`deleted topic ${name} in ${client.address}\n`);
        return ExitCode.Ok;
      }
      default:
        throw new UsageError(`unknown subcommand "topic ${sub}" (create, list, describe, delete)`);
    }
  },
};

/** `-c name=value` repeated; the value may itself contain `=`. */
function configsOf(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`-c: expected name=value, got ${JSON.stringify(item)}`);
    out[item.slice(0, eq).trim()] = item.slice(eq + 1).trim();
  }
  return out;
}

function describeText(t: TopicDetail): string {
  const overrides = t.configs.filter((c) => c.source === 'DYNAMIC_TOPIC_CONFIG');
  const head = [
    `topic        ${t.name}`,
    `id           ${t.id}`,
    `partitions   ${t.partitions.length}`,
    `replication  ${t.replicationPolicy ?? '-'}`,
    `overrides    ${overrides.map((c) => `${c.name}=${c.value ?? ''}`).join(', ') || '-'}`,
  ].join('\n');
  const parts = table(
    ['partition>', 'log-start>', 'high-watermark>', 'not-durable>', 'local>', 'tiered>', 'remote-offsets'],
    t.partitions.map((p) => [
      p.partition,
      p.logStartOffset,
      p.highWatermark,
      // Records a power loss would take (the interval flush mode, between fdatasyncs).
      p.durableOffset === undefined ? '?' : String(BigInt(p.highWatermark) - BigInt(p.durableOffset)),
      bytes(p.localBytes),
      bytes(p.tieredBytes),
      p.remoteEndOffset === null ? '-' : `${p.remoteStartOffset ?? '?'}..${p.remoteEndOffset}`,
    ]),
  );
  const configs = table(
    ['config', 'value', 'source'],
    t.configs.map((c) => [c.name, c.value ?? '(null)', `${c.source}${c.readOnly ? ' (read-only)' : ''}`]),
  );
  return `${head}\n\n${parts}\n${configs}`;
}
