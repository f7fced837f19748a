/**
 * Where a JSON text failed to parse, without any of the text: V8's SyntaxError messages quote
 * the text around the error ("...\"rverKey\": U0VSVkVSS0\"... is not valid JSON"), and a
 * credential file or document holds SCRAM keys that must never reach a log line.
 */
export function jsonErrorWhere(err: unknown): string {
  const m = /position (\d+)/.exec(err instanceof Error ? err.message : '');
  return m === null ? 'it does not parse' : `it breaks at character ${m[1]}`;
}
