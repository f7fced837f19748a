/**
 * `meridian partitions reassign|cancel-reassignment|list-reassignments|describe`: moving a
 * partition's replicas between the brokers of a region cluster, as Kafka's
 * kafka-reassign-partitions does (POST /v1/partitions/reassign, DELETE
 * /v1/partitions/T/P/reassignment, GET /v1/partitions/reassign, GET /v1/partitions/T/P).
 *
 * `reassign` asks for the move, then (unless `--no-wait`) follows it until the partition's
 * replicas are the target and no reassignment is left: one line on stderr each time what it
 * waits for changes (replicas added, which ones are not in sync yet, leadership moved), the
 * final state on stdout. Ctrl-C stops the waiting, not the move: the controller carries it
 * on (it is stored in etcd), and `list-reassignments` shows it.
 */
import { COMMON_USAGE, helpOrUsage, CommandFailed, ExitCode, UsageError, connect, parse, positionals, printJson, type CliIo, type Command } from './context.js';
import { table } from './format.js';

const USAGE = `Usage:
  meridian partitions reassign --topic T --partition P --replicas 1,2,4 [--no-wait]
                          move the partition's replicas to these brokers (the first leads):
                          the new ones copy the log and join the ISR, then the old ones
                          leave. Shows progress until done (exit 1 if it has not finished
                          within --timeout SECONDS, default none); --no-wait returns once
                          the controller has the request
  meridian partitions cancel-reassignment --topic T --partition P [--no-wait]
                          stop a move in progress: the partition goes back to the replicas
                          it had (shows progress until it has, unless --no-wait)
  meridian partitions list-reassignments
                          every reassignment in progress: target, adding, removing and
                          the replicas not in sync yet
  meridian partitions describe --topic T --partition P
                          the partition's replicas, leader and ISR in etcd

${COMMON_USAGE}`;

const POLL_MS = 300;

export interface PartitionView {
  topic: string;
  partition: number;
  replicas: number[];
  leader: number;
  leaderEpoch: number;
  isr: number[];
  reassignment: { target: number[]; cancelled: boolean; original: number[]; adding: number[]; removing: number[]; waitingFor: number[]; requestedAt: number } | null;
}

function ids(list: readonly number[]): string {
  return `[${list.join(',')}]`;
}

function partitionOf(values: { topic?: string; partition?: string }): { topic: string; partition: number } {
  if (values.topic === undefined || values.topic === '') throw new UsageError('--topic T is required');
  if (values.partition === undefined || !/^\d+$/.test(values.partition)) throw new UsageError('--partition P is required: a partition number (0, 1, ...)');
  return { topic: values.topic, partition: Number(values.partition) };
}

function replicasOf(text: string | undefined): number[] {
  if (text === undefined || text.trim() === '') throw new UsageError('--replicas is required: broker node ids, comma-separated, the preferred leader first (e.g. 1,2,4)');
  const parts = text.split(',').map((s) => s.trim());
  if (!parts.every((p) => /^\d+$/.test(p))) throw new UsageError(`--replicas ${JSON.stringify(text)}: expected broker node ids separated by commas (e.g. 1,2,4)`);
  const out = parts.map(Number);
  if (new Set(out).size !== out.length) throw new UsageError(`--replicas ${text}: a broker is named twice`);
  return out;
}

/** One line saying where a move stands (stderr). */
function progressLine(v: PartitionView): string {
  const r = v.reassignment;
  const state = `replicas ${ids(v.replicas)} leader ${v.leader} isr ${ids(v.isr)}`;
  if (r === null) return state;
  if (r.cancelled) return `${state}: cancelled, going back to ${ids(r.original)}`;
  if (r.adding.length > 0) return `${state}: asking the controller to add ${ids(r.adding)}`;
  if (r.waitingFor.length > 0) return `${state}: waiting for ${ids(r.waitingFor)} to catch up and join the ISR`;
  return `${state}: every target replica in sync; moving leadership and removing ${ids(r.removing)}`;
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => b[i] === x);
}

export const partitionsCommand: Command = {
  name: 'partitions',
  usage: USAGE,
  async run(args: string[], io: CliIo) {
    const { values, positionals: [sub, ...given] } = parse(args, {
      topic: { type: 'string' },
      partition: { type: 'string' },
      replicas: { type: 'string' },
      'no-wait': { type: 'boolean' },
      timeout: { type: 'string' },
    });
    if (values.help || sub === undefined) return helpOrUsage(io, USAGE, values.help === true);
    positionals(given, []);
    const client = connect(values, io);
    switch (sub) {
      case 'list-reassignments': {
        const list = await client.get<PartitionView[]>('/v1/partitions/reassign');
        if (values.json) printJson(io, list);
        else if (list.length === 0) io.stdout.write('no reassignment in progress\n');
        else {
          io.stdout.write(
            table(
              ['topic', 'partition>', 'replicas', 'target', 'adding', 'removing', 'not in sync', 'leader>', 'isr'],
              list.map((v) => {
                const r = v.reassignment!;
                return [v.topic, v.partition, ids(v.replicas), ids(r.target), ids(r.adding), ids(r.removing), ids(r.waitingFor), v.leader, ids(v.isr)];
              }),
            ),
          );
        }
        return ExitCode.Ok;
      }
      case 'describe': {
        const { topic, partition } = partitionOf(values);
        const v = await client.get<PartitionView>(`/v1/partitions/${encodeURIComponent(topic)}/${partition}`);
        if (values.json) printJson(io, v);
        else io.stdout.write(`${topic}-${partition}: ${progressLine(v)}\n`);
        return ExitCode.Ok;
      }
      case 'cancel-reassignment': {
        const { topic, partition } = partitionOf(values);
        const tp = `${topic}-${partition}`;
        const path = `/v1/partitions/${encodeURIComponent(topic)}/${partition}`;
        let v = await client.delete<PartitionView>(`${path}/reassignment`);
        io.stderr.write(`${tp}: reassignment to ${ids(v.reassignment?.target ?? [])} cancelled; going back to ${ids(v.reassignment?.original ?? v.replicas)}\n`);
        while (values['no-wait'] !== true && v.reassignment !== null) {
          await new Promise((r) => setTimeout(r, POLL_MS));
          v = await client.get<PartitionView>(path);
        }
        if (values.json) printJson(io, v);
        else io.stdout.write(`${tp}: replicas ${ids(v.replicas)} leader ${v.leader} isr ${ids(v.isr)}${v.reassignment === null ? '' : ' (going back)'}\n`);
        return ExitCode.Ok;
      }
      case 'reassign': {
        const { topic, partition } = partitionOf(values);
        const replicas = replicasOf(values.replicas);
        let timeoutMs = Infinity;
        if (values.timeout !== undefined) {
          if (!/^\d+$/.test(values.timeout) || Number(values.timeout) === 0) throw new UsageError('--timeout: expected a number of seconds (1 or more)');
          timeoutMs = Number(values.timeout) * 1000;
        }
        const asked = await client.post<{ outcome: string; partition: PartitionView }>('/v1/partitions/reassign', { topic, partition, replicas });
        const tp = `${topic}-${partition}`;
        if (asked.outcome === 'unchanged') {
          io.stderr.write(`${tp}: its replicas already are ${ids(replicas)}; nothing to move\n`);
        } else {
          io.stderr.write(`${tp}: reassignment ${asked.outcome === 'already-requested' ? 'already in progress' : 'requested'}: ${ids(asked.partition.reassignment?.original ?? asked.partition.replicas)} -> ${ids(replicas)}\n`);
        }
        let final = asked.partition;
        if (asked.outcome !== 'unchanged' && values['no-wait'] !== true) {
          const deadline = Date.now() + timeoutMs;
          let said = '';
          for (;;) {
            const v = await client.get<PartitionView>(`/v1/partitions/${encodeURIComponent(topic)}/${partition}`);
            const line = progressLine(v);
            if (line !== said) {
              io.stderr.write(`${tp}: ${line}\n`);
              said = line;
            }
            if (v.reassignment === null) {
              final = v;
              if (!sameList(v.replicas, replicas)) throw new CommandFailed(`${tp}: the reassignment ended with replicas ${ids(v.replicas)}, not ${ids(replicas)} (was it replaced or cancelled?)`);
              break;
            }
            if (Date.now() > deadline) throw new CommandFailed(`${tp}: not done within ${values.timeout} s (${line}); it goes on in the background: meridian partitions list-reassignments`);
            await new Promise((r) => setTimeout(r, POLL_MS));
          }
          io.stderr.write(`${tp}: reassignment complete\n`);
        }
        if (values.json) printJson(io, { outcome: asked.outcome, partition: final });
        else io.stdout.write(`${tp}: replicas ${ids(final.replicas)} leader ${final.leader} isr ${ids(final.isr)}${final.reassignment === null ? '' : ` (moving to ${ids(final.reassignment.target)})`}\n`);
        return ExitCode.Ok;
      }
      default:
        throw new UsageError(`unknown subcommand "partitions ${sub}" (reassign, cancel-reassignment, list-reassignments, describe)`);
    }
  },
};
