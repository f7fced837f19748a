/**
 * `meridian offload status|trigger [--topic T] [--wait]`: tiered storage of the region
 * addressed (GET /v1/tiered/status, POST /v1/tiered/offload).
 *
 * `trigger --wait` is done when the object store holds everything the trigger queued: the
 * 202 names, per partition, the offset the store must reach (`targetEndOffset`, the high
 * watermark when the active segment was sealed), and the wait polls GET /v1/tiered/status
 * until every partition's `remoteEndOffset` (one past the last offset in the store) is
 * there. Bytes uploaded since the trigger drive the bar; the offsets decide completion, so
 * an upload the offload timer started on its own cannot end the wait early. Progress goes
 * to stderr (a bar on a terminal, a line every 2 s elsewhere), the result to stdout.
 */
import cliProgress from 'cli-progress';
import { COMMON_USAGE, helpOrUsage, CommandFailed, ExitCode, UsageError, connect, parse, positionals, printJson, type CliIo, type Command, type CommandContext } from './context.js';
import { bytes, table } from './format.js';

const USAGE = `Usage:
  meridian offload status [--topic T]
                          the object store and, per partition, segments and bytes local
                          and remote, the offsets in the store, upload state and errors.
                          Exit 1 when the store is unavailable or a partition's uploads
                          are failing.
  meridian offload trigger [--topic T] [--wait [--timeout SECONDS]]
                          seal the active segments and upload every sealed segment not
                          yet in the store, for topic T or every tiered topic; --wait
                          shows progress until the store holds all of it (exit 1 if it
                          does not within --timeout, default 600)

${COMMON_USAGE}`;

const POLL_MS = 250;

interface PartitionStatus {
  topic: string;
  partition: number;
  localSegments: number;
  localBytes: number;
  remoteSegments: number;
  remoteBytes: number;
  remoteStartOffset: string;
  remoteEndOffset: string;
  highWatermark?: string;
  state: string;
  copying: string | null;
  uploadedSegments: number;
  uploadedBytes: number;
  lastError: string | null;
}

interface TieredStatus {
  enabled: boolean;
  store: string | null;
  unavailable: string | null;
  partitions: PartitionStatus[];
  cache: Record<string, number> | null;
}

interface OffloadQueued {
  topics: string[];
  segmentsQueued: number;
  bytesQueued: number;
  partitions: Array<{ topic: string; partition: number; targetEndOffset: string }>;
}

const key = (p: { topic: string; partition: number }) => `${p.topic}\0${p.partition}`;

export const offloadCommand: Command = {
  name: 'offload',
  usage: USAGE,
  async run(args: string[], io: CliIo) {
    const { values, positionals: [sub, ...given] } = parse(args, { topic: { type: 'string' }, wait: { type: 'boolean' }, timeout: { type: 'string' } });
    if (values.help || sub === undefined) return helpOrUsage(io, USAGE, values.help === true);
    positionals(given, []);
    if (values.topic === '') throw new UsageError('--topic needs a value');
    if (sub !== 'trigger' && (values.wait || values.timeout !== undefined)) throw new UsageError('--wait and --timeout are options of offload trigger');
    if (values.timeout !== undefined && !values.wait) throw new UsageError('--timeout goes with --wait');
    const timeoutS = values.timeout === undefined ? 600 : Number(values.timeout);
    if (!(timeoutS > 0)) throw new UsageError(`--timeout: expected a number of seconds, got ${JSON.stringify(values.timeout)}`);
    const ctx: CommandContext = { client: connect(values, io), json: values.json === true, io };
    switch (sub) {
      case 'status':
        return status(ctx, values.topic);
      case 'trigger':
        return trigger(ctx, values.topic, values.wait === true, timeoutS * 1000);
      default:
        throw new UsageError(`unknown subcommand "offload ${sub}" (status, trigger)`);
    }
  },
};

async function status(ctx: CommandContext, topic: string | undefined): Promise<ExitCode> {
  const s = await ctx.client.get<TieredStatus>('/v1/tiered/status');
  const partitions = topic === undefined ? s.partitions : s.partitions.filter((p) => p.topic === topic);
  if (topic !== undefined && partitions.length === 0 && s.enabled) {
    throw new CommandFailed(`topic ${topic} is not tiered in ${ctx.client.address} (it does not exist, or remote.storage.enable is false)`);
  }
  const failing = partitions.filter((p) => p.state === 'backing-off' && p.lastError !== null);
  const code = s.unavailable !== null || failing.length > 0 ? ExitCode.Failed : ExitCode.Ok;
  if (ctx.json) {
    printJson(ctx.io, { ...s, partitions });
    return code;
  }
  if (!s.enabled) {
    ctx.io.stdout.write(`tiered storage is not enabled in ${ctx.client.address} (tiered.enabled: false)\n`);
    return code;
  }
  let out = '';
  if (s.unavailable !== null) out += `PROBLEM  the object store is unavailable: ${s.unavailable}\n`;
  for (const p of failing) out += `PROBLEM  ${p.topic}/${p.partition}: uploads failing, retrying: ${p.lastError}\n`;
  out += `store   ${s.store ?? '-'}\n`;
  if (s.cache !== null) {
    const c = s.cache;
    out += `cache   ${c.hits ?? 0} hits, ${c.misses ?? 0} misses${c.hitRatio === undefined ? '' : ` (${Math.round(c.hitRatio * 100)}% hits)`}, ${bytes(c.bytesCached)} of ${bytes(c.capacityBytes)}\n`;
  }
  const local = partitions.reduce((n, p) => n + p.localBytes, 0);
  const remote = partitions.reduce((n, p) => n + p.remoteBytes, 0);
  out += `bytes   ${bytes(local)} local, ${bytes(remote)} in the store\n\n`;
  out +=
    partitions.length === 0
      ? 'no tiered partitions\n'
      : table(
          ['topic', 'partition>', 'local segs>', 'local>', 'remote segs>', 'remote>', 'remote offsets', 'state', 'error'],
          partitions.map((p) => [p.topic, p.partition, p.localSegments, bytes(p.localBytes), p.remoteSegments, bytes(p.remoteBytes), `${p.remoteStartOffset}..${p.remoteEndOffset}`, p.state, p.lastError ?? '-']),
        );
  ctx.io.stdout.write(out);
  return code;
}

async function trigger(ctx: CommandContext, topic: string | undefined, wait: boolean, timeoutMs: number): Promise<ExitCode> {
  const before = wait ? await ctx.client.get<TieredStatus>('/v1/tiered/status') : undefined;
  const queued = await ctx.client.post<OffloadQueued>('/v1/tiered/offload', topic === undefined ? {} : { topic });
  const what = `${queued.segmentsQueued} segment${queued.segmentsQueued === 1 ? '' : 's'} (${bytes(queued.bytesQueued)}) of ${queued.topics.join(', ') || 'no topics'}`;
  if (!wait) {
    if (ctx.json) printJson(ctx.io, queued);
    else ctx.io.stdout.write(`queued ${what} for upload from ${ctx.client.address}; follow with meridian offload status\n`);
    return ExitCode.Ok;
  }
  const baseline = new Map(before!.partitions.map((p) => [key(p), p.uploadedBytes]));
  const targets = new Map(queued.partitions.map((p) => [key(p), BigInt(p.targetEndOffset)]));
  const bar = new cliProgress.SingleBar(
    {
      stream: ctx.io.stderr,
      format: `offload [{bar}] {percentage}% | {done} of {all} | {partitionsDone}/{partitions} partitions{note}`,
      hideCursor: true,
      noTTYOutput: true,
      notTTYSchedule: 2000,
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  );
  const total = Math.max(queued.bytesQueued, 1);
  const payload = (uploaded: number, partitionsDone: number, note: string) => ({ done: bytes(Math.min(uploaded, queued.bytesQueued)), all: bytes(queued.bytesQueued), partitionsDone, partitions: targets.size, note });
  bar.start(total, 0, payload(0, 0, ''));
  const deadline = Date.now() + timeoutMs;
  let last: TieredStatus | undefined;
  let pending: string[] = [];
  try {
    for (;;) {
      last = await ctx.client.get<TieredStatus>('/v1/tiered/status');
      const byKey = new Map(last.partitions.map((p) => [key(p), p]));
      pending = [];
      let uploaded = 0;
      const problems: string[] = [];
      for (const [k, target] of targets) {
        const p = byKey.get(k);
        if (p === undefined) {
          pending.push(k);
          problems.push(`${k.replace('\0', '/')} is no longer tiered`);
          continue;
        }
        uploaded += Math.max(0, p.uploadedBytes - (baseline.get(k) ?? 0));
        if (BigInt(p.remoteEndOffset) < target) {
          pending.push(k);
          if (p.lastError !== null && p.state === 'backing-off') problems.push(`${p.topic}/${p.partition}: ${p.lastError}`);
        }
      }
      if (last.unavailable !== null) problems.unshift(`store unavailable: ${last.unavailable}`);
      const complete = pending.length === 0;
      const note = problems.length > 0 ? ` | retrying: ${problems[0]}` : '';
      bar.update(complete ? total : Math.min(uploaded, total - 1), payload(complete ? queued.bytesQueued : uploaded, targets.size - pending.length, note));
      if (complete) break;
      if (Date.now() > deadline) {
        throw new CommandFailed(
          `the object store did not receive everything queued within ${timeoutMs / 1000} s: ${pending.length} partition(s) behind (${pending.slice(0, 5).map((k) => k.replace('\0', '/')).join(', ')})${problems.length > 0 ? `; ${problems.join('; ')}` : ''}`,
        );
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } finally {
    bar.stop();
  }
  const byKey = new Map(last.partitions.map((p) => [key(p), p]));
  const result = {
    ...queued,
    complete: true,
    partitions: queued.partitions.map((p) => {
      const s = byKey.get(key(p))!;
      return { ...p, remoteEndOffset: s.remoteEndOffset, remoteSegments: s.remoteSegments, remoteBytes: s.remoteBytes };
    }),
  };
  if (ctx.json) printJson(ctx.io, result);
  else {
    const remote = result.partitions.reduce((n, p) => n + p.remoteBytes, 0);
    ctx.io.stdout.write(`offloaded ${what} from ${ctx.client.address}; the store now holds ${bytes(remote)} of these topics\n`);
  }
  return ExitCode.Ok;
}
