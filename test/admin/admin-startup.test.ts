/**
 * Start-up rules of the admin API, as an operator meets them: an admin port open to the
 * network without a token is refused before anything starts, naming admin.token; a busy
 * admin port names admin.port; without admin.port there is no admin server. And the HTTP
 * error table of src/admin/README.md matches http-errors.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import { HTTP_STATUS } from '../../src/admin/http-errors.js';
import { startBroker } from '../helpers/broker.js';
import { freePort } from '../helpers/regions.js';

test('an admin API on a non-loopback host without a token refuses to start, naming admin.token', async () => {
  await assert.rejects(startBroker({ admin: { host: '0.0.0.0', port: 0 } }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'STARTUP_FAILED');
    assert.match(err.message, /^admin\.token: admin\.host 0\.0\.0\.0 is not a loopback address and no token is set/);
    assert.match(err.message, /MERIDIAN_ADMIN__TOKEN/);
    return true;
  });
});

test('a busy admin port fails the start naming admin.port; the Kafka port is released again', async () => {
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  const port = (busy.address() as net.AddressInfo).port;
  const kafkaPort = await freePort();
  try {
    await assert.rejects(startBroker({ admin: { port }, kafka: { port: kafkaPort } }), (err: Error) => {
      assert.match(err.message, new RegExp(`^admin\\.port: 127\\.0\\.0\\.1:${port} is already in use \\(EADDRINUSE\\)`));
      return true;
    });
  } finally {
    busy.close();
  }
  const again = net.createServer();
  await new Promise<void>((resolve, reject) => again.once('error', reject).listen(kafkaPort, '127.0.0.1', () => resolve()));
  again.close();
});

test('without admin.port there is no admin server; with a token a non-loopback host is allowed', async () => {
  const plain = await startBroker();
  try {
    assert.equal(plain.broker.adminPort, undefined);
  } finally {
    await plain.cleanup();
  }
  const open = await startBroker({ admin: { host: '0.0.0.0', port: 0, token: 't0ken' } });
  try {
    const res = await fetch(`http://127.0.0.1:${open.broker.adminPort}/v1/topics`, { headers: { authorization: 'Bearer t0ken' } });
    assert.equal(res.status, 200);
  } finally {
    await open.cleanup();
  }
});

test('every code with its own HTTP status is in the README\'s error table, and the table names no other', () => {
  const readme = readFileSync(new URL('../../src/admin/README.md', import.meta.url), 'utf8');
  const table = readme.slice(readme.indexOf('### Errors'), readme.indexOf('### Authentication'));
  const rows = [...table.matchAll(/^\| (\d{3}) \| (.+) \|$/gm)].map(([, status, codes]) => ({ status: Number(status), codes: [...codes.matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]) }));
  for (const [code, status] of Object.entries(HTTP_STATUS)) {
    const row = rows.find((r) => r.codes.includes(code));
    assert.ok(row, `${code} is not in the README's error table`);
    assert.equal(row.status, status, `${code}: README says ${row.status}, http-errors.ts ${status}`);
  }
  // The 503 and 500 rows also name examples of the retriable / non-retriable fallback.
  for (const r of rows.filter((x) => x.status !== 500 && x.status !== 503)) for (const code of r.codes) assert.equal(HTTP_STATUS[code], r.status, `README lists ${code} as ${r.status}`);
});
