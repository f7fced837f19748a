/**
 * The run log: every log line of every broker and CLI the tests start, across the whole
 * `npm test` run, kept so that the last test file (test/zz-no-secrets.test.ts) can check that
 * no secret was ever logged (issue 14).
 *
 * `npm test` sets TEST_RUN_LOG_DIR to a fresh directory; node's test runner starts one
 * process per test file, and each process appends its lines to its own file there
 * (`<pid>-<test file>.log`). Without the variable (a single test file run by hand) nothing is
 * written and loggers are built exactly as before.
 *
 * Brokers log to the run log at `info` or below even when their own output is at `warn`
 * (the tests' default): the audit lines of authentication are `info`, and they are the ones
 * that name users. A pino multistream keeps the test's own stream (stdout or a captureLog) at
 * the level it asked for.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import type { LogLevel } from '../../src/config/schema.js';

// Not MERIDIAN_*: the config loader refuses a MERIDIAN_ variable it does not know, and every
// broker and CLI the tests start inherits this one.
export const RUN_LOG_DIR_ENV = 'TEST_RUN_LOG_DIR';

/** The shared directory of this run, or undefined outside `npm test`. */
export function runLogDir(): string | undefined {
  const dir = process.env[RUN_LOG_DIR_ENV];
  return dir === undefined || dir === '' ? undefined : dir;
}

let fileStream: pino.DestinationStream | undefined;

/** This process's file in the run log (created on first use), or undefined outside `npm test`. */
function runLogFile(): pino.DestinationStream | undefined {
  const dir = runLogDir();
  if (dir === undefined) return undefined;
  if (fileStream === undefined) {
    const name = `${process.pid}-${path.basename(process.argv[1] ?? 'node').replace(/[^A-Za-z0-9._-]/g, '_')}.log`;
    fs.mkdirSync(dir, { recursive: true });
    fileStream = pino.destination({ dest: path.join(dir, name), append: true, sync: true });
  }
  return fileStream;
}

/** Appends raw text (a CLI's output) to this process's run log file. */
export function appendToRunLog(text: string): void {
  const f = runLogFile();
  if (f !== undefined && text !== '') f.write(text.endsWith('\n') ? text : `${text}\n`);
}

const RUN_LOG_LEVEL: LogLevel = 'info';
const rank = (l: LogLevel) => (l === 'silent' ? Infinity : pino.levels.values[l]!);

/**
 * What to pass to createLogger for a logger whose lines the test wants at `level` on
 * `primary` (stdout when undefined): the same, plus every line at `info` or below into the
 * run log when there is one.
 */
export function withRunLog(level: LogLevel, primary?: pino.DestinationStream): { level: LogLevel; destination?: pino.DestinationStream } {
  const file = runLogFile();
  if (file === undefined) return primary === undefined ? { level } : { level, destination: primary };
  const fileLevel = rank(level) < rank(RUN_LOG_LEVEL) ? level : RUN_LOG_LEVEL;
  const streams: pino.StreamEntry[] = [{ level: fileLevel as pino.Level, stream: file }];
  if (level !== 'silent') streams.push({ level: level as pino.Level, stream: primary ?? pino.destination({ dest: 1, sync: true }) });
  return { level: fileLevel, destination: pino.multistream(streams) };
}
