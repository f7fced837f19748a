/**
 * The `meridian` command.
 *
 *   meridian dev                    the local two-region mesh of config/us-east.yaml and eu-west.yaml
 *   meridian dev --brokers N        the same two regions as clusters of N brokers on etcd (dev-cluster.ts)
 *   meridian broker --config FILE   one region's broker, for real deployments
 *   meridian help | version
 *
 * Exit status 2 for anything the operator must fix before a start can work: a refused
 * configuration (the loader's message names the file, the field and what was expected), a
 * wrong argument (with the usage), or a failed start-up (one line naming the setting and the
 * cause: a directory that cannot be written, a port in use, an object store that refuses
 * the broker). SIGINT/SIGTERM stop cleanly (logs drained and fsynced, locks released); a
 * second signal forces the exit.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { effectiveListeners } from '../config/listeners.js';
import { BROKER_NODE_FLAGS, missingNodeFlags } from '../node-flags.js';
import { loadConfig } from '../config/load-config.js';
import type { BrokerConfig, BrokerConfigInput } from '../config/schema.js';
// Loaded when a broker starts (runBrokers): the admin commands need none of the broker's
// modules (object-store SDKs among them), which would make every `meridian status` ~4x slower.
import type { Broker } from '../broker/broker.js';
import { MeridianError } from '../errors.js';
import { createLogger, type Logger } from '../logging.js';
import { cliCommand, devBanner, type BannerRegion } from './dev-banner.js';
import { argumentProblem } from './commands/context.js';
import { runAdminCommand } from './commands/index.js';

const USAGE = `meridian — a geo-replicated, tiered-storage streaming broker that speaks Kafka

Usage:
  meridian dev                    run the local mesh of config/us-east.yaml and
                                  config/eu-west.yaml: us-east (127.0.0.1:19092) and
                                  eu-west (127.0.0.1:29092) replicating every topic to
                                  each other, data in ./meridian-data, sealed segments
                                  tiered to ./meridian-data/tiered
  meridian dev --brokers 3        the same two regions, each a cluster of 3 brokers on
                                  etcd (Debian's etcd-server), data in
                                  ./meridian-data/cluster
  meridian broker --config FILE   run one region's broker from a YAML config file
                                  (or --config=FILE; without it, the defaults and
                                  MERIDIAN_* variables alone)
  meridian status                 every region: links, lag, backlog, tiered bytes, problems
  meridian topic create|list|describe|delete
                                  topics of a region (create NAME -p N -c name=value)
  meridian replication status|policies|apply FILE
                                  links and policies; apply one policy set to every region
  meridian offload status|trigger [--topic T] [--wait]
                                  tiered storage; seal and upload now, --wait for the upload
  meridian group list|describe ID consumer groups with their lag
  meridian region list            the region registry
  meridian dr status|promote|failback|report|group
                                  disaster recovery: roles of DR topics, promote a copy
                                  (--topic T | --policy P | --region R), fail back the old
                                  primary (--topic T [--confirm]), reports, group offsets
  meridian user list|set NAME|delete NAME
                                  SCRAM users of a region (set reads the password from
                                  MERIDIAN_USER_PASSWORD or stdin)
  meridian quota list|set PRINCIPAL|remove PRINCIPAL
                                  client quotas per principal (set --producer-byte-rate,
                                  --consumer-byte-rate, --request-rate)
  meridian acl list|add|remove    ACLs of a region, with kafka-acls' flags (--allow-principal
                                  User:x --operation Read --topic T --resource-pattern-type)
  meridian partitions reassign --topic T --partition P --replicas 1,2,4 [--no-wait]
                                  move a partition's replicas between the brokers of a
                                  region cluster, with progress until done
  meridian partitions cancel-reassignment | describe --topic T --partition P
  meridian partitions list-reassignments
  meridian help                   this text
  meridian version                the version

Every config field can be set by a MERIDIAN_* environment variable (see config/meridian.yaml).
Exit status 2: the configuration, an argument or the start-up failed; stderr says why.

The admin commands (status ... quota) talk to a broker's admin API: --admin HOST:PORT, else
MERIDIAN_ADMIN, else 127.0.0.1:19644 (the dev mesh's us-east); the token from
MERIDIAN_ADMIN_TOKEN or --token-file FILE; --json for scripts; meridian COMMAND --help for
more. Exit status: 0 ok, 1 the operation failed or status found problems, 2 a wrong
argument, 3 the broker could not be reached.`;

/**
 * The dev mesh is defined by config/us-east.yaml and config/eu-west.yaml and nothing else:
 * found next to the package (../../config from src/cli/ and from dist/cli/ alike), so
 * `meridian dev` works from any directory, and its relative data paths land in that
 * directory's ./meridian-data.
 */
export const DEV_CONFIG_FILES: readonly string[] = ['us-east.yaml', 'eu-west.yaml'].map((name) =>
  fileURLToPath(new URL(`../../config/${name}`, import.meta.url)),
);

function fail(message: string, code = 2): never {
  process.stderr.write(`meridian: ${message}\n`);
  process.exit(code);
}

/** Strict: a misspelt flag is refused, never silently ignored like a misspelt setting would be. */
function optionsOf<const O extends Record<string, { type: 'string' | 'boolean'; short?: string }>>(command: string, args: string[], options: O) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    return fail(`${command}: ${argumentProblem(err)}\n\n${USAGE}`);
  }
}

function version(): string {
  const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function runBrokers(inputs: Array<{ file?: string; overrides?: BrokerConfigInput }>, options: { banner?: boolean } = {}): Promise<void> {
  let configs;
  try {
    configs = inputs.map((i) => loadConfig(i));
  } catch (err) {
    fail(err instanceof MeridianError ? err.message : String(err));
  }
  // One stdout stream for the log and the banner, so they come out in the order written.
  const stdout = pino.destination({ dest: 1, sync: false });
  const logger: Logger = createLogger({
    level: configs[0].logging.level,
    format: configs[0].logging.format,
    tty: process.stdout.isTTY === true,
    destination: stdout,
    name: 'meridian',
  });
  const missing = missingNodeFlags();
  if (missing.length > 0) {
    logger.info({ missing, recommended: BROKER_NODE_FLAGS }, 'node was started without the flags Meridian is measured with (npm start, the meridian command and the Docker image pass them); GC pauses may be longer under load');
  }
  const brokers: Broker[] = [];
  let stopping = false;
  let logClosing = false;
  const stop = async (signal: string) => {
    if (stopping) {
      // The log may already be closing (draining before the exit).
      if (!logClosing) logger.warn({ signal }, 'second signal: exiting without a clean shutdown');
      process.exit(130);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    await Promise.allSettled(brokers.map((b) => b.close()));
    logClosing = true;
    await drained(stdout);
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  try {
    const { Broker } = await import('../broker/broker.js');
    for (const config of configs) brokers.push(await Broker.start(config, logger));
  } catch (err) {
    logger.fatal({ err }, 'startup failed');
    await Promise.allSettled(brokers.map((b) => b.close()));
    await drained(stdout);
    // Broker.start names the setting to look at (broker/startup-error.ts); brokers start in
    // order, so the one that failed is the next after those running.
    const message = (err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, '; ');
    fail(`cannot start ${configs[brokers.length]?.region ?? 'the broker'}: ${message}`);
  }
  logger.info({ regions: configs.map((c) => c.region) }, 'meridian is running; Ctrl-C stops it');
  if (options.banner === true) {
    stdout.write(devBanner(configs.map(bannerRegion), process.cwd(), cliCommand(process.argv[1], process.cwd())));
  }
  // Keep the process alive until a signal arrives (every other timer is unref'd).
  setInterval(() => {}, 1 << 30);
}

/**
 * Resolves once every log line written to `stream` has reached the file descriptor. flushSync
 * is not enough before process.exit: with an asynchronous write still in flight it writes the
 * later lines first and the process may exit before the in-flight one lands (the last lines,
 * 'broker stopped' among them, went missing from a pipe). Bounded, so a reader that stopped
 * reading cannot hold the exit forever.
 */
function drained(stream: ReturnType<typeof pino.destination>, timeoutMs = 5_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    stream.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    stream.end();
  });
}

function bannerRegion(config: BrokerConfig): BannerRegion {
  const first = effectiveListeners(config.kafka)[0]!;
  const kafka = `${first.advertisedHost ?? first.host}:${first.advertisedPort ?? first.port}`;
  const admin = config.admin.port === null ? undefined : `http://${config.admin.host}:${config.admin.port}`;
  return { region: config.region, kafka, dataDir: config.dataDir, ...(admin === undefined ? {} : { admin }) };
}

/** `meridian dev --brokers N`: etcd and N broker processes per region (dev-cluster.ts). */
async function runClusterDev(brokers: string): Promise<void> {
  if (!/^\d+$/.test(brokers)) fail(`dev: --brokers: expected a number of brokers per region (e.g. 3), got ${JSON.stringify(brokers)}\n\n${USAGE}`);
  const { runDevCluster, DevClusterError } = await import('./dev-cluster.js');
  try {
    process.exitCode = await runDevCluster({
      brokers: Number(brokers),
      cwd: process.cwd(),
      // The brokers run as this command does: the same node, flags (tsx) and entry script.
      command: [process.execPath, ...process.execArgv, process.argv[1]!],
      cli: cliCommand(process.argv[1], process.cwd()),
      stdout: process.stdout,
      stderr: process.stderr,
      searchPath: process.env.PATH ?? '',
    });
  } catch (err) {
    if (err instanceof DevClusterError) fail(`dev --brokers ${brokers}: ${err.message}`);
    throw err;
  }
}

function help(): void {
  process.stdout.write(`${USAGE}\n`);
}

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'dev': {
      const options = optionsOf('dev', rest, { help: { type: 'boolean', short: 'h' }, brokers: { type: 'string' } });
      if (options.help) return help();
      if (options.brokers !== undefined) return runClusterDev(options.brokers);
      return runBrokers(DEV_CONFIG_FILES.map((file) => ({ file })), { banner: true });
    }
    case 'broker': {
      const options = optionsOf('broker', rest, { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
      if (options.help) return help();
      if (options.config === '') fail(`broker: --config needs a value\n\n${USAGE}`);
      return runBrokers([{ file: options.config }]);
    }
    case 'status':
    case 'topic':
    case 'replication':
    case 'offload':
    case 'group':
    case 'region':
    case 'dr':
    case 'user':
    case 'quota':
    case 'acl':
    case 'partitions':
      // The admin API's commands (commands/); the environment is read here, in the composition root.
      process.exitCode = await runAdminCommand(command, rest, { env: process.env, stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });
      return;
    case 'version':
    case '--version':
      process.stdout.write(`${version()}\n`);
      return;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      return help();
    default:
      fail(`unknown command "${command}"\n\n${USAGE}`);
  }
}

await main(process.argv.slice(2));
