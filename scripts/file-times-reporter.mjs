/**
 * A node:test reporter that writes one JSON line per top-level test (its file, duration and
 * outcome) as it ends. scripts/run-tests.mjs adds it beside the spec reporter, sends it to a
 * file and, once a phase ends, prints each file's time (the sum of its top-level tests),
 * slowest first, so the suite's time budget can be spent where it is known to go. Lines are
 * written as they come because --test-force-exit ends the run before a reporter's end.
 */
export default async function* fileTimes(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { file, nesting, details } = event.data;
    if (file === undefined || nesting !== 0 || details?.duration_ms === undefined) continue;
    yield `${JSON.stringify({ file, ms: details.duration_ms, failed: event.type === 'test:fail' })}\n`;
  }
}
