/**
 * `meridian group list|describe ID`: consumer groups of the region addressed with their lag,
 * through /v1/groups. `--json` prints the admin API's v1 bodies.
 */
import { COMMON_USAGE, helpOrUsage, ExitCode, UsageError, connect, parse, positionals, printJson, type CliIo, type Command } from './context.js';
import { table } from './format.js';

const USAGE = `Usage:
  meridian group list              every consumer group: state, members, total lag
  meridian group describe ID       members and their assignments, committed offsets and
                                   lag per partition

${COMMON_USAGE}`;

type Count = number | string | null;

interface GroupSummary {
  groupId: string;
  state: string;
  protocolType: string | null;
  members: number;
  lag: Count;
}

interface GroupDetail {
  groupId: string;
  state: string;
  protocolType?: string | null;
  protocol: string | null;
  members: Array<{ memberId: string; clientId: string; clientHost: string; assignments: unknown }>;
  offsets: Array<{ topic: string; partition: number; committedOffset: string; highWatermark: string | null; lag: Count }>;
}

const show = (v: Count | undefined) => (v === null || v === undefined ? '-' : String(v));

export const groupCommand: Command = {
  name: 'group',
  usage: USAGE,
  async run(args: string[], io: CliIo) {
    const { values, positionals: [sub, ...given] } = parse(args, {});
    if (values.help || sub === undefined) return helpOrUsage(io, USAGE, values.help === true);
    const client = connect(values, io);
    switch (sub) {
      case 'list': {
        positionals(given, []);
        const groups = await client.get<GroupSummary[]>('/v1/groups');
        if (values.json) printJson(io, groups);
        else if (groups.length === 0) io.stdout.write('no consumer groups\n');
        else io.stdout.write(table(['group', 'state', 'type', 'members>', 'lag>'], groups.map((g) => [g.groupId, g.state, g.protocolType || '-', g.members, show(g.lag)])));
        return ExitCode.Ok;
      }
      case 'describe': {
        const [id] = positionals(given, ['ID']);
        const g = await client.get<GroupDetail>(`/v1/groups/${encodeURIComponent(id)}`);
        if (values.json) {
          printJson(io, g);
          return ExitCode.Ok;
        }
        const total = g.offsets.reduce((n, o) => n + (o.lag === null ? 0 : Number(o.lag)), 0);
        let out = [`group     ${g.groupId}`, `state     ${g.state}`, `protocol  ${g.protocol ?? '-'}`, `members   ${g.members.length}`, `lag       ${total}`].join('\n') + '\n';
        if (g.members.length > 0) {
          out += `\n${table(['member', 'client', 'host', 'assignment'], g.members.map((m) => [m.memberId, m.clientId, m.clientHost, assignmentText(m.assignments)]))}`;
        }
        out += g.offsets.length === 0
          ? '\nno committed offsets\n'
          : `\n${table(['topic', 'partition>', 'committed>', 'high-watermark>', 'lag>'], g.offsets.map((o) => [o.topic, o.partition, o.committedOffset, show(o.highWatermark), show(o.lag)]))}`;
        io.stdout.write(out);
        return ExitCode.Ok;
      }
      default:
        throw new UsageError(`unknown subcommand "group ${sub}" (list, describe)`);
    }
  },
};

/** `orders:0,1 audit:2` from the API's assignment, whatever of the two usual shapes it has. */
function assignmentText(a: unknown): string {
  if (Array.isArray(a)) {
    const parts = a.map((x: { topic?: string; partitions?: number[] }) => (x && typeof x.topic === 'string' ? `${x.topic}:${(x.partitions ?? []).join(',')}` : JSON.stringify(x)));
    return parts.join(' ') || '-';
  }
  if (a !== null && typeof a === 'object') {
    return Object.entries(a as Record<string, unknown>).map(([t, p]) => `${t}:${Array.isArray(p) ? p.join(',') : String(p)}`).join(' ') || '-';
  }
  return '-';
}
