/**
 * A node:test reporter that writes one JSON line per top-level test (its file, duration and
 * outcome) as it ends. scripts/run-tests.mjs adds it beside the spec reporter, sends it to a
 * file per test file and counts each file's tests and failures from it. Lines are written as
 * they come because --test-force-exit ends the run before a reporter's end.
 */
export default async function* fileTimes(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { file, nesting, details } = event.data;
    if (file === undefined || nesting !== 0 || details?.duration_ms === undefined) continue;
    yield `${JSON.stringify({ file, ms: details.duration_ms, failed: event.type === 'test:fail' })}\n`;
  }
}
