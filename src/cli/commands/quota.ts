/**
 * `meridian quota list|set|remove`: client quotas of the region addressed, through
 * /v1/security/quotas (src/admin/routes/quotas.ts, src/security/README.md "Quotas").
 *
 * - `list`: the defaults (security.quotas), each principal's overrides, and each active
 *   principal's quotas, current rates and throttle totals.
 * - `set PRINCIPAL --producer-byte-rate R --consumer-byte-rate R --request-rate N`: the
 *   flags given change, the others stay. A byte rate is bytes per second or a size (1MiB,
 *   500KB); every value may also be `none` (no quota for this principal, even with a
 *   default) or `default` (drop the override: the default applies).
 * - `remove PRINCIPAL`: drop every override of the principal (exit 1 when it has none).
 *
 * `--json` prints the admin API's v1 body unchanged.
 */
import { COMMON_USAGE, helpOrUsage, ExitCode, UsageError, connect, parse, positionals, printJson, type CliIo, type CommandContext, type Command } from './context.js';
import { rate, table } from './format.js';
// The v1 bodies are the quota module's own types, serialised (type-only: no broker code loads).
import type { ActiveQuota, QuotaChange, QuotaOverride, Quotas } from '../../security/quotas.js';

const USAGE = `Usage:
  meridian quota list              default quotas, overrides per principal, and each active
                                   principal's quotas, rates and throttle time
  meridian quota set PRINCIPAL [--producer-byte-rate R] [--consumer-byte-rate R]
                               [--request-rate N]
                                   set PRINCIPAL's quotas (e.g. User:alice): R in bytes per
                                   second or a size (1MiB, 500KB), N requests per second;
                                   none: no quota for it, default: the default applies.
                                   Flags not given stay as they are
  meridian quota remove PRINCIPAL  drop PRINCIPAL's overrides: the defaults apply again

${COMMON_USAGE}`;

interface QuotaList {
  region: string;
  defaults: Quotas;
  overrides: Array<{ principal: string; override: QuotaOverride }>;
  active: ActiveQuota[];
}

interface QuotaAnswer {
  principal: string;
  override: QuotaOverride;
  quotas: Quotas;
}

const FLAGS = { 'producer-byte-rate': 'producerByteRate', 'consumer-byte-rate': 'consumerByteRate', 'request-rate': 'requestRate' } as const;

export const quotaCommand: Command = {
  name: 'quota',
  usage: USAGE,
  async run(args: string[], io: CliIo) {
    const { values, positionals: [sub, ...given] } = parse(args, {
      'producer-byte-rate': { type: 'string' },
      'consumer-byte-rate': { type: 'string' },
      'request-rate': { type: 'string' },
    });
    if (values.help || sub === undefined) return helpOrUsage(io, USAGE, values.help === true);
    const change = changeOf(values);
    if (sub !== 'set' && Object.keys(change).length > 0) throw new UsageError('--producer-byte-rate, --consumer-byte-rate and --request-rate are options of quota set');
    const ctx: CommandContext = { client: connect(values, io), json: values.json === true, io };
    switch (sub) {
      case 'list':
        positionals(given, []);
        return list(ctx);
      case 'set': {
        const [principal] = positionals(given, ['PRINCIPAL']);
        if (Object.keys(change).length === 0) throw new UsageError('name at least one of --producer-byte-rate, --consumer-byte-rate, --request-rate');
        return show(ctx, await ctx.client.put<QuotaAnswer>(`/v1/security/quotas/${encodeURIComponent(principalOf(principal))}`, change));
      }
      case 'remove': {
        const [principal] = positionals(given, ['PRINCIPAL']);
        return show(ctx, await ctx.client.delete<QuotaAnswer>(`/v1/security/quotas/${encodeURIComponent(principalOf(principal))}`));
      }
      default:
        throw new UsageError(`unknown subcommand "quota ${sub}" (list, set, remove)`);
    }
  },
};

/** The flags given, as the API's body: numbers stay text (the broker parses sizes), none is null. */
function changeOf(values: Partial<Record<keyof typeof FLAGS, string>>): QuotaChange {
  const change: Record<string, string | number | null> = {};
  for (const [flag, key] of Object.entries(FLAGS) as Array<[keyof typeof FLAGS, string]>) {
    const v = values[flag];
    if (v === undefined) continue;
    if (v === '') throw new UsageError(`--${flag} needs a value`);
    change[key] = v === 'none' ? null : /^\d+$/.test(v) ? Number(v) : v;
  }
  return change;
}

function principalOf(text: string): string {
  if (!/^[A-Za-z]+:.+$/.test(text)) throw new UsageError(`PRINCIPAL: expected Type:name, e.g. User:alice, got ${JSON.stringify(text)}`);
  return text;
}

const byteRate = (v: number | null | undefined) => (v === undefined ? '-' : v === null ? 'none' : rate(v));
const requests = (v: number | null | undefined) => (v === undefined ? '-' : v === null ? 'none' : `${v}/s`);

async function list(ctx: CommandContext): Promise<ExitCode> {
  const l = await ctx.client.get<QuotaList>('/v1/security/quotas');
  if (ctx.json) {
    printJson(ctx.io, l);
    return ExitCode.Ok;
  }
  const d = l.defaults;
  let out = `default quotas in ${l.region} (security.quotas): produce ${byteRate(d.producerByteRate)}, fetch ${byteRate(d.consumerByteRate)}, requests ${requests(d.requestRate)}\n`;
  if (l.overrides.length === 0) out += '\nno principal overrides\n';
  else {
    out += '\noverrides (-: the default applies)\n';
    out += table(
      ['principal', 'producer-byte-rate>', 'consumer-byte-rate>', 'request-rate>'],
      l.overrides.map((o) => [o.principal, byteRate(o.override.producerByteRate), byteRate(o.override.consumerByteRate), requests(o.override.requestRate)]),
    );
  }
  if (l.active.length === 0) out += '\nno active principal has a quota\n';
  else {
    out += '\nactive principals: rate / quota, throttle time\n';
    out += table(
      ['principal', 'produce>', 'fetch>', 'requests>', 'throttled>'],
      l.active.map((a) => [
        a.principal,
        `${rate(a.rates.produce)} / ${byteRate(a.quotas.producerByteRate)}`,
        `${rate(a.rates.fetch)} / ${byteRate(a.quotas.consumerByteRate)}`,
        `${a.rates.request.toFixed(1)}/s / ${requests(a.quotas.requestRate)}`,
        `${(a.throttleSeconds.produce + a.throttleSeconds.fetch + a.throttleSeconds.request).toFixed(1)}s`,
      ]),
    );
  }
  ctx.io.stdout.write(out);
  return ExitCode.Ok;
}

function show(ctx: CommandContext, a: QuotaAnswer): ExitCode {
  if (ctx.json) printJson(ctx.io, a);
  else {
    const q = a.quotas;
    const from = (k: keyof Quotas) => (k in a.override ? 'override' : 'default');
    ctx.io.stdout.write(
      `${a.principal}: produce ${byteRate(q.producerByteRate)} (${from('producerByteRate')}), fetch ${byteRate(q.consumerByteRate)} (${from('consumerByteRate')}), requests ${requests(q.requestRate)} (${from('requestRate')})\n`,
    );
  }
  return ExitCode.Ok;
}
