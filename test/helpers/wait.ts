/**
 * The one way a test waits for something asynchronous: poll a check until it yields a value,
 * or fail naming what was awaited, the last error the check threw and, if given, a detail
 * (the state that did not get there). A fixed sleep followed by an assertion passes or fails
 * with the machine's speed; a wait for the condition does neither.
 */

/**
 * Polls `check` every `everyMs` until it returns something other than undefined, null or
 * false, and returns that; throws after `timeoutMs`. A check that throws counts as "not
 * yet" (its error is shown if the wait times out), so a check may assert.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 60_000,
  everyMs = 100,
  detail?: () => string | Promise<string>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== null && v !== false) return v;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const extra = detail ? ` ${await detail()}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}${extra}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
