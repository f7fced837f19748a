/**
 * `meridian region list`: the region registry as the addressed region sees it (GET
 * /v1/regions): each region's Kafka and admin addresses, whether its replication policies
 * agree with this region's, and this region's links to it. `--json` prints the API's body.
 */
import { COMMON_USAGE, helpOrUsage, ExitCode, UsageError, connect, parse, positionals, printJson, type CliIo, type Command } from './context.js';
import { bytes, seconds, table } from './format.js';

const USAGE = `Usage:
  meridian region list     every region of the registry: addresses, policy agreement, and
                           the links from the region addressed to it

${COMMON_USAGE}`;

export interface RegionEntry {
  name: string;
  address: string;
  admin: string | null;
  self: boolean;
  fingerprint: string | null;
  policiesAgree: boolean | null;
  policyError: string | null;
  links: Array<{ policy: string; topics: number; state: string; error: string | null; lagSeconds: number; backlogRecords: number; backlogBytes: number; bytesPerSecond: number }>;
}

export const regionCommand: Command = {
  name: 'region',
  usage: USAGE,
  async run(args: string[], io: CliIo) {
    const { values, positionals: [sub, ...given] } = parse(args, {});
    if (values.help || sub === undefined) return helpOrUsage(io, USAGE, values.help === true);
    if (sub !== 'list') throw new UsageError(`unknown subcommand "region ${sub}" (list)`);
    positionals(given, []);
    const client = connect(values, io);
    const regions = await client.get<RegionEntry[]>('/v1/regions');
    if (values.json) {
      printJson(io, regions);
      return ExitCode.Ok;
    }
    io.stdout.write(
      table(
        ['region', 'kafka', 'admin', 'policies', 'links from here'],
        regions.map((r) => [
          r.self ? `${r.name} (here)` : r.name,
          r.address,
          r.admin ?? '-',
          r.self ? (r.fingerprint ?? '-').slice(0, 12) : r.policiesAgree === null ? 'unknown' : r.policiesAgree ? 'agree' : 'DIFFER',
          r.links.map((l) => `${l.policy}: ${l.state}, lag ${seconds(l.lagSeconds)}, backlog ${bytes(l.backlogBytes)}`).join('; ') || '-',
        ]),
      ),
    );
    return ExitCode.Ok;
  },
};
