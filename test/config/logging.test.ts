import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger, isSecretKey, redactSecrets, REDACTED } from '../../src/logging.js';

/** pino writes one JSON line per call into this. */
function memory(): { write(line: string): void; lines: string[]; text(): string; records(): Array<Record<string, unknown>> } {
  const lines: string[] = [];
  return {
    lines,
    write: (line) => void lines.push(line),
    text: () => lines.join(''),
    records: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

test('nested secrets never reach the output; the rest does', () => {
  const out = memory();
  const log = createLogger({ level: 'info', destination: out, name: 'meridian' });
  const logged = {
    region: 'eu-west',
    store: { s3: { bucket: 'tiered-eu', accessKeyId: 'AKIAEXAMPLEID', secretAccessKey: 'AKIA-SECRET-123' } },
    connectionString: 'DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=abc-ACCOUNT-KEY==;',
    backends: [{ azure: { accountKey: 'AZURE-KEY-456', sasToken: 'sv=2024&sig=SAS-789' } }, { gcs: { credentials: { private_key: 'GCS-PEM-000' } } }],
    http: { headers: { Authorization: 'Bearer BEARER-111', 'x-api-key': 'API-KEY-222' } },
    user: { name: 'ops', password: 'hunter2-PW' },
  };
  log.info(logged, 'tiering configured');

  const text = out.text();
  for (const secret of ['AKIA-SECRET-123', 'abc-ACCOUNT-KEY', 'AZURE-KEY-456', 'SAS-789', 'GCS-PEM-000', 'BEARER-111', 'API-KEY-222', 'hunter2-PW']) {
    assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
  }
  const [record] = out.records();
  assert.equal(record!.msg, 'tiering configured');
  assert.equal(record!.level, 'info');
  assert.equal(record!.name, 'meridian');
  assert.equal(record!.region, 'eu-west');
  assert.deepEqual(record!.store, { s3: { bucket: 'tiered-eu', accessKeyId: 'AKIAEXAMPLEID', secretAccessKey: REDACTED } });
  assert.equal(record!.connectionString, REDACTED);
  assert.deepEqual(record!.user, { name: 'ops', password: REDACTED });
  // The caller's object is left as it was.
  assert.equal(logged.store.s3.secretAccessKey, 'AKIA-SECRET-123');
});

test('secrets in errors, child bindings and messages are censored too', () => {
  const out = memory();
  const log = createLogger({ level: 'info', destination: out });
  const error = Object.assign(new Error('upload failed for AccountName=dev;AccountKey=MSG-KEY-333;'), { request: { token: 'TOKEN-444' } });
  log.error({ err: error }, 'offload failed');
  log.error(error);
  log.child({ credentials: { user: 'u', pass: 'CHILD-555' } }).warn('child logger');
  log.info('retrying with SharedAccessSignature=sv=1&sig=MSGSIG-666');

  const text = out.text();
  for (const secret of ['MSG-KEY-333', 'TOKEN-444', 'CHILD-555', 'MSGSIG-666']) assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
  const [first] = out.records();
  const err = first!.err as Record<string, unknown>;
  assert.equal(err.type, 'Error');
  assert.match(String(err.message), /^upload failed for AccountName=dev;AccountKey=\[redacted\];$/);
  assert.match(String(err.stack), /^Error: upload failed/);
  for (const line of out.lines) JSON.parse(line); // scrubbing never breaks a line
});

test('cycles and depth are bounded', () => {
  const out = memory();
  const log = createLogger({ level: 'info', destination: out });
  const cyclic: Record<string, unknown> = { name: 'loop', secret: 'CYCLE-777' };
  cyclic.self = cyclic;
  let deep: Record<string, unknown> = { password: 'DEEP-888' };
  for (let i = 0; i < 50; i++) deep = { next: deep };
  log.info({ cyclic, deep });
  const text = out.text();
  assert.ok(!text.includes('CYCLE-777') && !text.includes('DEEP-888'), text);
  assert.match(text, /"self":"\[Circular\]"/);
});

test('level filtering', () => {
  const out = memory();
  const log = createLogger({ level: 'warn', destination: out });
  log.debug('debug');
  log.info('info');
  log.warn('warn');
  log.error('error');
  assert.deepEqual(
    out.records().map((r) => [r.level, r.msg]),
    [
      ['warn', 'warn'],
      ['error', 'error'],
    ],
  );
  const silent = memory();
  const quiet = createLogger({ level: 'silent', destination: silent });
  quiet.fatal('nothing');
  assert.equal(silent.lines.length, 0);
});

test('secret-ish key names', () => {
  for (const key of ['password', 'PASSWORD', 'secret', 'clientSecret', 'secretAccessKey', 'secret_access_key', 'accountKey', 'connectionString', 'sasToken', 'token', 'sessionToken', 'credentials', 'privateKey', 'private_key', 'apiKey', 'x-api-key', 'authorization', 'Authorization']) {
    assert.ok(isSecretKey(key), key);
  }
  for (const key of ['accessKeyId', 'access_key_id', 'bucket', 'partitionKey', 'key', 'region', 'tokens', 'user']) {
    assert.ok(!isSecretKey(key), key);
  }
});

test('redactSecrets returns the same object when there is nothing to censor', () => {
  const clean = { a: 1, b: { c: [1, 2, { d: 'x' }] } };
  assert.equal(redactSecrets(clean), clean);
  const buffer = Buffer.from('payload');
  assert.equal(redactSecrets({ buffer }).buffer, buffer);
});

/** pino-pretty pipes into its destination, so the pretty cases need a real stream. */
function memoryStream(): Writable & { text(): string } {
  const chunks: string[] = [];
  const stream = new Writable({ write: (chunk: Buffer, _enc, done) => (chunks.push(chunk.toString()), done()) });
  return Object.assign(stream, { text: () => chunks.join('') });
}

test('format: pretty writes one human line per entry, censored; auto is pretty only on a terminal', () => {
  const pretty = memoryStream();
  createLogger({ level: 'info', format: 'pretty', destination: pretty, name: 'meridian' }).info(
    { region: 'eu-west', secretAccessKey: 'PRETTY-SECRET-1', conn: 'AccountName=a;AccountKey=PRETTY-KEY-2;' },
    'broker started',
  );
  const line = pretty.text();
  assert.match(line, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(meridian\): broker started .*"region":"eu-west"/);
  assert.equal(line.trimEnd().split('\n').length, 1, line);
  for (const secret of ['PRETTY-SECRET-1', 'PRETTY-KEY-2']) assert.ok(!line.includes(secret), `${secret} leaked: ${line}`);

  const onTerminal = memoryStream();
  createLogger({ level: 'info', format: 'auto', tty: true, destination: onTerminal }).info('hello');
  // Coloured on a terminal.
  assert.match(onTerminal.text(), /\x1b\[\d+mINFO\x1b\[\d+m: .*hello/);
  assert.throws(() => JSON.parse(onTerminal.text()));

  for (const [format, tty] of [['auto', false], ['json', true]] as const) {
    const piped = memory();
    createLogger({ level: 'info', format, tty, destination: piped }).info('hello');
    assert.equal(piped.records()[0]!.msg, 'hello', `${format} with tty ${tty} writes JSON`);
  }
});
