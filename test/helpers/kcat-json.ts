/**
 * Reads `kcat -C -J` output byte for byte. kcat writes keys, values and header values with
 * yajl's `yajl_gen_string` without UTF-8 validation (kcat 1.7.1 `json.c`): bytes >= 0x80 go
 * out raw and only `"`, `\` and bytes < 0x20 are escaped. `JSON.parse` would replace
 * non-UTF-8 bytes with U+FFFD, so this parser keeps every JSON string as the exact bytes it
 * stands for; a test can then compare what kcat consumed with what was produced, bit for bit.
 */

export interface KcatMessage {
  topic: string;
  partition: number;
  offset: number;
  /** "create" or "logappend" (kcat's `tstype`). */
  tstype: string;
  ts: number;
  /** Name and value of each header in record order; a null value is a header without one. */
  headers: Array<[string, Buffer | null]>;
  key: Buffer | null;
  payload: Buffer | null;
}

type JsonValue = Buffer | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };

/** Every message line kcat -J printed on stdout, in output order. */
export function parseKcatJson(stdout: Buffer): KcatMessage[] {
  const out: KcatMessage[] = [];
  let start = 0;
  // Control bytes (\n included) inside strings are escaped, so a raw 0x0a always ends a line.
  while (start < stdout.length) {
    let end = stdout.indexOf(0x0a, start);
    if (end < 0) end = stdout.length;
    if (end > start) out.push(toMessage(parseJsonLine(stdout.subarray(start, end))));
    start = end + 1;
  }
  return out;
}

function toMessage(v: JsonValue): KcatMessage {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || Buffer.isBuffer(v)) throw new Error('kcat -J line is not an object');
  const str = (x: JsonValue | undefined): string => {
    if (!Buffer.isBuffer(x)) throw new Error(`expected a string, got ${JSON.stringify(x)}`);
    return x.toString('utf8');
  };
  const num = (x: JsonValue | undefined): number => {
    if (typeof x !== 'number') throw new Error(`expected a number, got ${JSON.stringify(x)}`);
    return x;
  };
  const bytes = (x: JsonValue | undefined): Buffer | null => {
    if (x === null) return null;
    if (!Buffer.isBuffer(x)) throw new Error(`expected a string or null, got ${JSON.stringify(x)}`);
    return x;
  };
  const headers: Array<[string, Buffer | null]> = [];
  const h = v.headers;
  if (h !== undefined) {
    if (!Array.isArray(h) || h.length % 2 !== 0) throw new Error('kcat -J headers is not a [name, value, ...] array');
    for (let i = 0; i < h.length; i += 2) headers.push([str(h[i]), bytes(h[i + 1])]);
  }
  return {
    topic: str(v.topic),
    partition: num(v.partition),
    offset: num(v.offset),
    tstype: str(v.tstype),
    ts: num(v.ts),
    headers,
    key: bytes(v.key),
    payload: bytes(v.payload),
  };
}

function parseJsonLine(buf: Buffer): JsonValue {
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`kcat -J: ${what} at byte ${i} of ${JSON.stringify(buf.subarray(0, 200).toString('latin1'))}`);
  };
  const ws = (): void => {
    while (i < buf.length && (buf[i] === 0x20 || buf[i] === 0x09 || buf[i] === 0x0d)) i++;
  };
  const value = (): JsonValue => {
    ws();
    const c = buf[i];
    if (c === 0x7b /* { */) {
      i++;
      const obj: { [k: string]: JsonValue } = {};
      ws();
      if (buf[i] === 0x7d) {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (buf[i] !== 0x22) fail('expected a key');
        const k = string().toString('utf8');
        ws();
        if (buf[i++] !== 0x3a) fail('expected ":"');
        obj[k] = value();
        ws();
        const d = buf[i++];
        if (d === 0x7d) return obj;
        if (d !== 0x2c) fail('expected "," or "}"');
      }
    }
    if (c === 0x5b /* [ */) {
      i++;
      const arr: JsonValue[] = [];
      ws();
      if (buf[i] === 0x5d) {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value());
        ws();
        const d = buf[i++];
        if (d === 0x5d) return arr;
        if (d !== 0x2c) fail('expected "," or "]"');
      }
    }
    if (c === 0x22) return string();
    if (buf.subarray(i, i + 4).toString('latin1') === 'null') {
      i += 4;
      return null;
    }
    if (buf.subarray(i, i + 4).toString('latin1') === 'true') {
      i += 4;
      return true;
    }
    if (buf.subarray(i, i + 5).toString('latin1') === 'false') {
      i += 5;
      return false;
    }
    const m = /^-?\d+(\.\d+)?([eE][-+]?\d+)?/.exec(buf.subarray(i, i + 40).toString('latin1'));
    if (!m) return fail('unexpected token');
    i += m[0].length;
    return Number(m[0]);
  };
  const string = (): Buffer => {
    i++; // opening quote
    const parts: Buffer[] = [];
    let run = i;
    for (;;) {
      if (i >= buf.length) fail('unterminated string');
      const c = buf[i];
      if (c === 0x22) {
        parts.push(buf.subarray(run, i));
        i++;
        return Buffer.concat(parts);
      }
      if (c !== 0x5c) {
        i++;
        continue;
      }
      parts.push(buf.subarray(run, i));
      const e = buf[i + 1];
      i += 2;
      const simple: Record<number, number> = { 0x22: 0x22, 0x5c: 0x5c, 0x2f: 0x2f, 0x62: 0x08, 0x66: 0x0c, 0x6e: 0x0a, 0x72: 0x0d, 0x74: 0x09 };
      if (e !== undefined && simple[e] !== undefined) {
        parts.push(Buffer.of(simple[e]));
      } else if (e === 0x75 /* u */) {
        const code = parseInt(buf.subarray(i, i + 4).toString('latin1'), 16);
        if (Number.isNaN(code)) fail('bad \\u escape');
        i += 4;
        // yajl escapes only bytes < 0x20 this way, each as one byte.
        parts.push(code < 0x80 ? Buffer.of(code) : Buffer.from(String.fromCharCode(code), 'utf8'));
      } else {
        fail('bad escape');
      }
      run = i;
    }
  };
  const v = value();
  ws();
  if (i !== buf.length) fail('trailing bytes');
  return v;
}
