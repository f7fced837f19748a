/**
 * `meridian user list|set|delete`: the SCRAM users of the region addressed, through
 * /v1/security/users (src/admin/routes/users.ts). Users are per region: run it against each
 * region that needs the user.
 *
 * - `list`: each user with its mechanisms and iterations (never a salt or key).
 * - `set NAME [--mechanism M] [--iterations N]`: creates the user or changes its password.
 *   The password is read from MERIDIAN_USER_PASSWORD, else from stdin (its first line),
 *   never from an argument, which anyone on the machine could read in `ps`. The broker
 *   salts and hashes it; the CLI prints and logs it nowhere.
 * - `delete NAME [--mechanism M]`: removes one mechanism's credential, or all of them.
 *
 * M is SCRAM-SHA-256, SCRAM-SHA-512 or both (the default). `--json` prints the admin API's
 * v1 bodies. Refusals (iterations out of range, an unknown user) exit 1 with the broker's
 * code and message (commands/index.ts).
 */
import { COMMON_USAGE, helpOrUsage, ExitCode, UsageError, connect, parse, positionals, printJson, type CliIo, type Command } from './context.js';
import { table } from './format.js';

const USAGE = `Usage:
  meridian user list               SCRAM users of the region: mechanisms and iterations
  meridian user set NAME [--mechanism M] [--iterations N]
                                   create the user or change its password; the password
                                   comes from $MERIDIAN_USER_PASSWORD, else from stdin (its
                                   first line), never from an argument
  meridian user delete NAME [--mechanism M]
                                   delete the user's credential for M, or all of them

  M is SCRAM-SHA-256, SCRAM-SHA-512 or both (the default); N is 4096..16384 (default 4096).
  Users are per region: run the command against every region that needs the user.

${COMMON_USAGE}`;

const MECHANISMS = ['SCRAM-SHA-256', 'SCRAM-SHA-512'] as const;

interface UserEntry {
  user: string;
  mechanisms: Array<{ mechanism: string; iterations: number }>;
}

export const userCommand: Command = {
  name: 'user',
  usage: USAGE,
  async run(args: string[], io: CliIo) {
    const { values, positionals: [sub, ...given] } = parse(args, { mechanism: { type: 'string' }, iterations: { type: 'string' } });
    if (values.help || sub === undefined) return helpOrUsage(io, USAGE, values.help === true);
    if (values.iterations !== undefined && sub !== 'set') throw new UsageError('--iterations is an option of user set');
    if (values.mechanism !== undefined && sub === 'list') throw new UsageError('--mechanism is an option of user set and user delete');
    switch (sub) {
      case 'list': {
        positionals(given, []);
        const users = await connect(values, io).get<UserEntry[]>('/v1/security/users');
        if (values.json) printJson(io, users);
        else if (users.length === 0) io.stdout.write('no SCRAM users\n');
        else io.stdout.write(table(['user', 'mechanism', 'iterations>'], users.flatMap((u) => u.mechanisms.map((m) => [u.user, m.mechanism, m.iterations]))));
        return ExitCode.Ok;
      }
      case 'set': {
        // An extra argument may well be the password: say so without echoing it.
        if (given.length > 1) throw new UsageError('user set takes one argument, NAME; the password comes from MERIDIAN_USER_PASSWORD or stdin, never from an argument');
        const [name] = positionals(given, ['NAME']);
        const mechanisms = mechanismsOf(values.mechanism);
        const iterations = iterationsOf(values.iterations);
        const client = connect(values, io);
        const password = await readPassword(io);
        const entry = await client.put<UserEntry>(`/v1/security/users/${encodeURIComponent(name)}`, { password, mechanisms, ...(iterations === undefined ? {} : { iterations }) });
        if (values.json) printJson(io, entry);
        else io.stdout.write(`user ${entry.user} set: ${entry.mechanisms.map((m) => `${m.mechanism} (${m.iterations} iterations)`).join(', ')}\n`);
        return ExitCode.Ok;
      }
      case 'delete': {
        const [name] = positionals(given, ['NAME']);
        const mechanisms = values.mechanism === undefined ? undefined : mechanismsOf(values.mechanism);
        const client = connect(values, io);
        const path = `/v1/security/users/${encodeURIComponent(name)}`;
        if (mechanisms === undefined || mechanisms.length === MECHANISMS.length) await client.delete(path);
        else await client.delete(`${path}?mechanism=${mechanisms[0]}`);
        if (values.json) printJson(io, { user: name, deleted: mechanisms ?? 'all' });
        else io.stdout.write(`user ${name}: ${mechanisms === undefined ? 'every credential' : mechanisms.join(' and ')} deleted\n`);
        return ExitCode.Ok;
      }
      default:
        throw new UsageError(`unknown subcommand "user ${sub}" (list, set, delete)`);
    }
  },
};

function mechanismsOf(flag: string | undefined): string[] {
  if (flag === undefined || flag.toLowerCase() === 'both') return [...MECHANISMS];
  const m = MECHANISMS.find((x) => x === flag.toUpperCase());
  if (m === undefined) throw new UsageError(`--mechanism: expected SCRAM-SHA-256, SCRAM-SHA-512 or both, got ${JSON.stringify(flag)}`);
  return [m];
}

function iterationsOf(flag: string | undefined): number | undefined {
  if (flag === undefined) return undefined;
  if (!/^\d+$/.test(flag)) throw new UsageError(`--iterations: expected a whole number (4096..16384), got ${JSON.stringify(flag)}`);
  return Number(flag);
}

/** MERIDIAN_USER_PASSWORD, else the first line of stdin; never echoed, never in an error message. */
async function readPassword(io: CliIo): Promise<string> {
  const fromEnv = io.env.MERIDIAN_USER_PASSWORD;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const stdin = io.stdin;
  if (stdin === undefined || stdin.isTTY === true) {
    throw new UsageError('no password: set MERIDIAN_USER_PASSWORD or pipe the password on stdin (it is never taken from an argument)');
  }
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  const password = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0]!;
  if (password === '') throw new UsageError('no password: stdin was empty (set MERIDIAN_USER_PASSWORD or pipe the password on stdin)');
  return password;
}
