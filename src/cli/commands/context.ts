/**
 * What every admin subcommand of `meridian` shares: the exit codes scripts rely on, the
 * errors that choose them, the common flags (`--admin`, `--token-file`, `--json`), and how
 * the admin address and token are found. The composition root (main.ts) hands in the
 * environment and the output streams, so nothing here reads `process` itself.
 */
import fs from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AdminClient, validAddress } from '../admin-client.js';

/** Exit codes, documented in src/cli/README.md: scripts branch on these, so they never change meaning. */
export const ExitCode = {
  Ok: 0,
  /** The operation failed (the broker refused it, a check failed) or `status` found problems. */
  Failed: 1,
  /** A wrong argument, flag or file given to the CLI: nothing was sent. */
  Usage: 2,
  /** A broker the command needed did not answer; stderr names the address tried. */
  Unreachable: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The dev mesh's us-east admin API (config/us-east.yaml), where `meridian dev` listens. */
export const DEFAULT_ADMIN = '127.0.0.1:19644';

/** Bad arguments: exit 2 with the message and a pointer to the command's help. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The operation ran and did not succeed; the message says what and where. Exit 1. */
export class CommandFailed extends Error {
  override readonly name = 'CommandFailed';
}

export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Results only: a table, or JSON with --json. */
  readonly stdout: NodeJS.WritableStream;
  /** Errors, warnings and progress: for people, never parsed. */
  readonly stderr: NodeJS.WritableStream;
  /** What a command reads that must not be an argument (`user set`'s password); absent: nothing to read. */
  readonly stdin?: NodeJS.ReadableStream & { readonly isTTY?: boolean };
}

export interface CommandContext {
  readonly client: AdminClient;
  readonly json: boolean;
  readonly io: CliIo;
}

/** A subcommand: its name as typed, its usage, and what it does with its arguments. */
export interface Command {
  readonly name: string;
  readonly usage: string;
  run(args: string[], io: CliIo): Promise<ExitCode>;
}

export const COMMON_OPTIONS = {
  admin: { type: 'string' },
  'admin-ca': { type: 'string' },
  'token-file': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export const COMMON_USAGE = `Common flags:
  --admin HOST:PORT    the admin API to talk to (else $MERIDIAN_ADMIN, else ${DEFAULT_ADMIN},
                       the dev mesh's us-east)
  --admin-ca FILE      PEM CA certificates to verify an https:// admin API against
                       (else $MERIDIAN_ADMIN_CA, else the system's CAs)
  --token-file FILE    read the admin token from FILE (else $MERIDIAN_ADMIN_TOKEN)
  --json               machine-readable output on stdout
  -h, --help           this text`;

type Options = NonNullable<ParseArgsConfig['options']>;

/** Strict parsing: an unknown or misspelt flag is a usage error, never silently ignored. */
export function parse<const O extends Options>(args: string[], options: O) {
  try {
    return parseArgs({ args, options: { ...COMMON_OPTIONS, ...options }, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError(argumentProblem(err));
  }
}

/** A node:util parseArgs error in the operator's words. */
export function argumentProblem(err: unknown): string {
  const { code, message } = err as { code?: string; message: string };
  const quoted = /'([^']+)'/.exec(message)?.[1] ?? '';
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${quoted}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return `${quoted.split(' ')[0]} needs a value`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${JSON.stringify(quoted)}`;
    default:
      return message;
  }
}

/**
 * The client for the flags given: `--admin`, else MERIDIAN_ADMIN, else the dev mesh. The
 * token comes from `--token-file` or MERIDIAN_ADMIN_TOKEN; a token file that cannot be read
 * is a usage error (the path is named, the content never). An https admin API is verified
 * against `--admin-ca` or MERIDIAN_ADMIN_CA when given.
 */
export function connect(values: { admin?: string; 'admin-ca'?: string; 'token-file'?: string }, io: CliIo): AdminClient {
  const address = values.admin ?? nonEmpty(io.env.MERIDIAN_ADMIN) ?? DEFAULT_ADMIN;
  if (!validAddress(address)) {
    const from = values.admin !== undefined ? '--admin' : 'MERIDIAN_ADMIN';
    throw new UsageError(`${from}: expected HOST:PORT (or an http:// or https:// URL), got ${JSON.stringify(address)}`);
  }
  let token: string | null = nonEmpty(io.env.MERIDIAN_ADMIN_TOKEN) ?? null;
  const file = values['token-file'];
  if (file !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`--token-file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    token = text.trim();
    if (token === '') throw new UsageError(`--token-file: ${file} is empty`);
  }
  const ca = caOf(values['admin-ca'], io);
  return new AdminClient({ address, token, ...(ca === undefined ? {} : { ca }) });
}

/** `--admin-ca`, else MERIDIAN_ADMIN_CA: a PEM file; one that cannot be read is a usage error. */
function caOf(flag: string | undefined, io: CliIo): Buffer | undefined {
  const file = flag ?? nonEmpty(io.env.MERIDIAN_ADMIN_CA);
  if (file === undefined) return undefined;
  const from = flag !== undefined ? '--admin-ca' : 'MERIDIAN_ADMIN_CA';
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new UsageError(`${from}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

/** Exactly `n` positionals, or a usage error naming what is missing or extra. */
export function positionals(given: string[], names: readonly string[]): string[] {
  if (given.length < names.length) throw new UsageError(`missing ${names.slice(given.length).join(' ')}`);
  if (given.length > names.length) throw new UsageError(`unexpected argument ${JSON.stringify(given[names.length])}`);
  return given;
}

export function printJson(io: CliIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** `--help`: the usage on stdout, exit 0. No subcommand: the usage on stderr, exit 2. */
export function helpOrUsage(io: CliIo, usage: string, asked: boolean): ExitCode {
  (asked ? io.stdout : io.stderr).write(`${usage}\n`);
  return asked ? ExitCode.Ok : ExitCode.Usage;
}
