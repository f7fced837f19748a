/**
 * A node:test reporter that writes one line per top-level test (its file, duration and
 * outcome, as JSON after TIMES_PREFIX) as it ends. scripts/run-tests.mjs adds it beside the
 * spec reporter with stderr as its destination, takes these lines out of the file's output
 * and counts each file's tests and failures from them. Lines are written as they come, to a
 * pipe (written synchronously on Linux), because --test-force-exit ends the run before a
 * reporter's end.
 */
export const TIMES_PREFIX = '#meridian-test-time ';

export default async function* fileTimes(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { file, nesting, details } = event.data;
    if (file === undefined || nesting !== 0 || details?.duration_ms === undefined) continue;
    yield `${TIMES_PREFIX}${JSON.stringify({ file, ms: details.duration_ms, failed: event.type === 'test:fail' })}\n`;
  }
}
