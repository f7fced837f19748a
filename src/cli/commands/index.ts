/**
 * The admin subcommands of `meridian` (status, topic, replication, offload, group, region, dr,
 * user, quota, acl, partitions)
 * and the one place their errors become exit codes and stderr lines:
 *
 *   UsageError        2  the message, then where to read the usage
 *   AdminUnreachable  3  the address tried, and how to give another
 *   AdminApiError     1  the broker's code and message (a 401 adds how to pass the token)
 *   CommandFailed     1  the message
 *
 * Anything else is a bug in the CLI and is thrown on (node prints the stack, exit 1).
 */
import { AdminApiError, AdminUnreachable } from '../admin-client.js';
import { aclCommand } from './acl.js';
import { CommandFailed, DEFAULT_ADMIN, ExitCode, UsageError, type CliIo, type Command } from './context.js';
import { drCommand } from './dr.js';
import { groupCommand } from './group.js';
import { offloadCommand } from './offload.js';
import { partitionsCommand } from './partitions.js';
import { quotaCommand } from './quota.js';
import { regionCommand } from './region.js';
import { replicationCommand } from './replication.js';
import { statusCommand } from './status.js';
import { topicCommand } from './topic.js';
import { userCommand } from './user.js';

export { ExitCode, type CliIo } from './context.js';

export const ADMIN_COMMANDS: ReadonlyMap<string, Command> = new Map(
  [statusCommand, topicCommand, replicationCommand, offloadCommand, groupCommand, regionCommand, drCommand, userCommand, quotaCommand, aclCommand, partitionsCommand].map((c) => [c.name, c]),
);

export async function runAdminCommand(name: string, args: string[], io: CliIo): Promise<ExitCode> {
  const command = ADMIN_COMMANDS.get(name);
  if (command === undefined) throw new Error(`no admin command ${name}`);
  const sub = args[0] !== undefined && !args[0].startsWith('-') ? ` ${args[0]}` : '';
  try {
    return await command.run(args, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`meridian: ${name}${sub}: ${err.message}\n(meridian ${name} --help shows the usage)\n`);
      return ExitCode.Usage;
    }
    if (err instanceof AdminUnreachable) {
      const dflt = err.address === DEFAULT_ADMIN ? `${DEFAULT_ADMIN} is the default address: the dev mesh's us-east, which meridian dev starts. ` : '';
      // A TLS verification failure: the broker answers, the client does not trust it.
      const ca = /certificate|CERT/.test(err.message) ? 'An https admin API with a certificate of a private CA needs that CA: --admin-ca FILE or MERIDIAN_ADMIN_CA. ' : '';
      io.stderr.write(
        `meridian: ${name}${sub}: ${err.message}\n` +
          `${ca}${dflt}Is the broker running, with its admin API (admin.port) on that address? Point the CLI elsewhere with --admin HOST:PORT or MERIDIAN_ADMIN=HOST:PORT.\n`,
      );
      return ExitCode.Unreachable;
    }
    if (err instanceof AdminApiError) {
      const hint = err.status === 401 ? `\nThe admin API at ${err.address} needs its token: set MERIDIAN_ADMIN_TOKEN or pass --token-file FILE.` : '';
      io.stderr.write(`meridian: ${name}${sub}: ${err.address} refused: ${err.code}: ${err.message}${hint}\n`);
      return ExitCode.Failed;
    }
    if (err instanceof CommandFailed) {
      io.stderr.write(`meridian: ${name}${sub}: ${err.message}\n`);
      return ExitCode.Failed;
    }
    throw err;
  }
}
