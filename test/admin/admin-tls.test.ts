/**
 * The admin API over HTTPS (`admin.tls`), with certificates made by openssl at test time:
 * GET /v1/health answers over https for a client that trusts the CA; plain HTTP to the same
 * port and a client without the CA get nothing; the `meridian` CLI works against it with
 * `--admin-ca` or MERIDIAN_ADMIN_CA, and without either exits 3 naming the certificate
 * problem; a new certificate written over the files is served to new connections; a key
 * file that does not exist, or one file without the other, fails the start naming the field.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type tls from 'node:tls';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { meridian } from '../helpers/cli-run.js';
import { makePki, type Pki } from '../helpers/tls-certs.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

let dir: { dir: string; cleanup: () => void };
let pki: Pki;
let tb: TestBroker;
let base: string;
/** The files the broker serves: copies, so that the reload test can replace them. */
let certFile: string;
let keyFile: string;

before(async () => {
  dir = tmpDir('meridian-admin-tls-');
  pki = makePki(dir.dir);
  certFile = path.join(dir.dir, 'admin-cert.pem');
  keyFile = path.join(dir.dir, 'admin-key.pem');
  fs.copyFileSync(pki.broker.cert, certFile);
  fs.copyFileSync(pki.broker.key, keyFile);
  tb = await startBroker({ admin: { host: '127.0.0.1', port: 0, tls: { certFile, keyFile } } });
  base = `https://127.0.0.1:${tb.broker.adminAddress!.port}`;
});

after(async () => {
  await tb?.cleanup();
  dir?.cleanup();
});

/** GET over https trusting `ca`: status, body and the serial of the certificate served. */
function get(url: string, ca: Buffer): Promise<{ status: number; body: unknown; serial: string }> {
  return new Promise((resolve, reject) => {
    // agent: false, a new connection each time: a reloaded certificate shows on new connections.
    https
      .get(url, { ca, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString()), serial: (res.socket as tls.TLSSocket).getPeerCertificate().serialNumber }));
      })
      .on('error', reject);
  });
}

test('GET /v1/health over https with the CA answers; plain http and a client without the CA get nothing', async () => {
  const ca = fs.readFileSync(pki.ca.cert);
  const r = await get(`${base}/v1/health`, ca);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { status: 'ok' });
  assert.equal(r.serial, '1001');
  await assert.rejects(fetch(`http://127.0.0.1:${tb.broker.adminAddress!.port}/v1/health`, { signal: AbortSignal.timeout(10_000) }), /fetch failed/);
  await assert.rejects(fetch(`${base}/v1/health`), (err: Error & { cause?: { code?: string } }) => {
    assert.match(err.cause?.code ?? '', /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/);
    return true;
  });
});

test('the CLI talks to an https admin API with --admin-ca or MERIDIAN_ADMIN_CA; without the CA it exits 3 naming the certificate problem', { timeout: 60_000 }, async () => {
  const flag = await meridian(['user', 'list', '--admin', base, '--admin-ca', pki.ca.cert]);
  assert.equal(flag.code, 0, flag.stderr);
  assert.equal(flag.stdout, 'no SCRAM users\n');
  const env = await meridian(['topic', 'list', '--admin', base, '--json'], { MERIDIAN_ADMIN_CA: pki.ca.cert });
  assert.equal(env.code, 0, env.stderr);
  assert.deepEqual(JSON.parse(env.stdout), []);
  const untrusted = await meridian(['user', 'list', '--admin', base]);
  assert.equal(untrusted.code, 3);
  assert.match(untrusted.stderr, new RegExp(`cannot reach the admin API at ${base.replaceAll('.', '\\.')}: .*(certificate|CERT)`));
  assert.match(untrusted.stderr, /needs that CA: --admin-ca FILE or MERIDIAN_ADMIN_CA/);
  const noFile = await meridian(['user', 'list', '--admin', base, '--admin-ca', path.join(dir.dir, 'nope.pem')]);
  assert.equal(noFile.code, 2);
  assert.match(noFile.stderr, /--admin-ca: cannot read .*nope\.pem: ENOENT/);
});

test('a new certificate written over the files is served to new connections', { timeout: 60_000 }, async () => {
  const next = pki.issue('admin-next', '/CN=localhost', { serial: '3003', server: true });
  // Key first, then the certificate, each by an atomic rename (as a certificate manager does).
  for (const [from, to] of [[next.key, keyFile], [next.cert, certFile]] as const) {
    fs.copyFileSync(from, `${to}.tmp`);
    fs.renameSync(`${to}.tmp`, to);
  }
  const ca = fs.readFileSync(pki.ca.cert);
  await waitFor('the admin API to serve the new certificate', async () => (await get(`${base}/v1/health`, ca)).serial === '3003', 30_000, 200);
});

test('a key file that does not exist fails the start naming admin.tls.keyFile; one file without the other too', async () => {
  await assert.rejects(startBroker({ admin: { host: '127.0.0.1', port: 0, tls: { certFile: pki.broker.cert, keyFile: path.join(dir.dir, 'missing.key') } } }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'STARTUP_FAILED');
    assert.match(err.message, /^admin\.tls\.keyFile: .*missing\.key: no such file/);
    return true;
  });
  await assert.rejects(startBroker({ admin: { host: '127.0.0.1', port: 0, tls: { certFile: pki.broker.cert } } }), (err: Error) => {
    assert.match(err.message, /^admin\.tls\.keyFile: admin\.tls\.certFile is set but admin\.tls\.keyFile is not/);
    return true;
  });
  await assert.rejects(startBroker({ admin: { host: '127.0.0.1', port: 0, tls: { keyFile: pki.broker.key } } }), (err: Error) => {
    assert.match(err.message, /^admin\.tls\.certFile: admin\.tls\.keyFile is set but admin\.tls\.certFile is not/);
    return true;
  });
});
