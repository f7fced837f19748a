/**
 * Issue 14, the transport: one broker serving a PLAINTEXT, an SSL and a mutual-TLS listener
 * at once. kcat (librdkafka) and KafkaJS produce and consume byte for byte over SSL and stay
 * on the listener they bootstrapped on (Metadata and FindCoordinator advertise its port);
 * with clientAuth required a client's principal is its certificate's subject, and clients
 * without a certificate, with an expired one or one from another CA, and plaintext clients
 * on a TLS port are refused cleanly (counted in the server's stats) while the PLAINTEXT
 * listener keeps serving; a replaced certificate is picked up by new connections while an
 * old one keeps working, and a broken replacement is ignored with a warning; a SASL_SSL
 * listener without any SASL mechanism stops the broker from starting.
 *
 * Certificates are made by the openssl CLI in a temporary directory (helpers/tls-certs.ts).
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { captureLog, startBroker, type LogCapture, type TestBroker } from '../helpers/broker.js';
import { KcatClient } from '../helpers/kcat-client.js';
import { kcat } from '../helpers/kcat.js';
import { collectMessages } from '../helpers/kafkajs-collect.js';
import { makePki, type Pki } from '../helpers/tls-certs.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

let pki: Pki;
let certs: { dir: string; cleanup: () => void };
let broker: TestBroker;
let log: LogCapture;
let ports: { plain: number; ssl: number; mtls: number };
/** The SSL listener's own copy of the broker certificate: the reload test replaces it. */
let sslFiles: { cert: string; key: string };

before(async () => {
  certs = tmpDir('meridian-tls-');
  pki = makePki(certs.dir);
  sslFiles = { cert: path.join(certs.dir, 'ssl-listener.pem'), key: path.join(certs.dir, 'ssl-listener.key') };
  fs.copyFileSync(pki.broker.cert, sslFiles.cert);
  fs.copyFileSync(pki.broker.key, sslFiles.key);
  log = captureLog();
  broker = await startBroker(
    {
      kafka: {
        listeners: [
          { name: 'PLAINTEXT', host: '127.0.0.1', port: 0, securityProtocol: 'PLAINTEXT' },
          { name: 'SSL', host: '127.0.0.1', port: 0, securityProtocol: 'SSL', tls: { certFile: sslFiles.cert, keyFile: sslFiles.key, reloadIntervalMs: 100 } },
          {
            name: 'MTLS',
            host: '127.0.0.1',
            port: 0,
            securityProtocol: 'SSL',
            tls: { certFile: pki.broker.cert, keyFile: pki.broker.key, caFile: pki.ca.cert, clientAuth: 'required' },
          },
        ],
      },
      groups: { initialRebalanceDelayMs: 0 },
      logging: { level: 'debug' },
    },
    undefined,
    { log },
  );
  const p = broker.broker.kafkaPorts;
  ports = { plain: p.get('PLAINTEXT')!, ssl: p.get('SSL')!, mtls: p.get('MTLS')! };
});

after(async () => {
  await broker?.cleanup();
  certs?.cleanup();
});

const ca = () => fs.readFileSync(pki.ca.cert);

function kcatSslArgs(client?: { cert: string; key: string }): string[] {
  const args = ['-X', 'security.protocol=ssl', '-X', `ssl.ca.location=${pki.ca.cert}`];
  if (client) args.push('-X', `ssl.certificate.location=${client.cert}`, '-X', `ssl.key.location=${client.key}`);
  return args;
}

function sslKafka(port: number, client?: { cert: string; key: string }): Kafka {
  return new Kafka({
    clientId: 'tls-test',
    brokers: [`127.0.0.1:${port}`],
    ssl: { ca: [ca()], ...(client ? { cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key) } : {}) },
    logLevel: logLevel.NOTHING,
    retry: { retries: 5, initialRetryTime: 100 },
  });
}

/** Values of every byte, and lengths from 0 up: what "byte-identical" has to survive. */
function binaryValues(count: number, tag: string): Buffer[] {
  return Array.from({ length: count }, (_, i) => {
    const b = Buffer.alloc((i * 37) % 500);
    for (let j = 0; j < b.length; j++) b[j] = (i * 31 + j * 7) & 0xff;
    return Buffer.concat([Buffer.from(`${tag}-${i}|`), b]);
  });
}

let nextCorrelation = 1;

/** ApiVersions v0 by hand: the smallest request every broker answers. */
function apiVersionsFrame(correlationId: number): Buffer {
  const f = Buffer.alloc(14);
  f.writeInt32BE(10, 0);
  f.writeInt16BE(ApiKey.ApiVersions, 4);
  f.writeInt16BE(0, 6);
  f.writeInt32BE(correlationId, 8);
  f.writeInt16BE(-1, 12);
  return f;
}

/** 'open' when `socket` gets an answer to ApiVersions, 'closed' when it closes or fails first. */
function ask(socket: net.Socket): Promise<'open' | 'closed'> {
  const correlationId = nextCorrelation++;
  return new Promise((resolve) => {
    let got = Buffer.alloc(0);
    const done = (r: 'open' | 'closed') => {
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(r);
    };
    const onData = (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 8 && got.readInt32BE(4) === correlationId) done('open');
    };
    const onClose = () => done('closed');
    socket.on('data', onData);
    socket.once('close', onClose);
    if (socket.destroyed) done('closed');
    else socket.write(apiVersionsFrame(correlationId));
  });
}

/** A TLS connection to `port` that asks ApiVersions: its outcome, the server's serial, the socket. */
async function tlsProbe(port: number, options: tls.ConnectionOptions = {}): Promise<{ outcome: 'open' | 'closed'; serial?: string; socket: tls.TLSSocket }> {
  const socket = tls.connect({ host: '127.0.0.1', port, ca: ca(), ...options });
  socket.on('error', () => {});
  const secured = await new Promise<boolean>((resolve) => {
    socket.once('secureConnect', () => resolve(true));
    socket.once('close', () => resolve(false));
  });
  if (!secured) return { outcome: 'closed', socket };
  const serial = socket.getPeerCertificate().serialNumber;
  return { outcome: await ask(socket), serial, socket };
}

function plainProbe(port: number): Promise<'open' | 'closed'> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    socket.once('connect', () => void ask(socket).then((r) => (socket.destroy(), resolve(r))));
    socket.once('close', () => resolve('closed'));
  });
}

const stats = () => broker.broker.kafka.stats();

test('kcat and KafkaJS produce and consume byte-identical over SSL', { timeout: 120_000 }, async () => {
  const viaKcat = binaryValues(200, 'kcat').map((b) => b.toString('base64'));
  const kc = new KcatClient(`127.0.0.1:${ports.ssl}`);
  // kcat splits its input on newlines: base64 values have none and are bytes all the same.
  await kc.produce('tls-kcat', viaKcat.join('\n') + '\n', kcatSslArgs());
  const gotByKafkaJs = await collectMessages(sslKafka(ports.ssl), { groupId: 'tls-kafkajs', topics: ['tls-kcat'], count: viaKcat.length });
  assert.deepEqual(gotByKafkaJs.map((m) => m.value!.toString()).sort(), [...viaKcat].sort());

  const viaKafkaJs = binaryValues(300, 'kafkajs');
  const producer = sslKafka(ports.ssl).producer();
  await producer.connect();
  await producer.send({ topic: 'tls-kafkajs', messages: viaKafkaJs.map((value, i) => ({ key: `k${i}`, value })) });
  await producer.disconnect();
  const gotByKcat = await kc.consumeAll('tls-kafkajs', kcatSslArgs());
  assert.equal(gotByKcat.length, viaKafkaJs.length);
  const byKey = new Map(gotByKcat.map((m) => [m.key!.toString(), m.payload!]));
  for (const [i, value] of viaKafkaJs.entries()) assert.ok(byKey.get(`k${i}`)?.equals(value), `message k${i} differs`);
});

test('Metadata advertises the port of the listener the request came in on', { timeout: 60_000 }, async () => {
  const brokersOf = async (port: number, args: string[]) => {
    const r = await new KcatClient(`127.0.0.1:${port}`).run(['-L', '-J', ...args]);
    return (JSON.parse(r.stdout.toString()) as { brokers: Array<{ id: number; name: string }> }).brokers.map((b) => b.name);
  };
  assert.deepEqual(await brokersOf(ports.ssl, kcatSslArgs()), [`127.0.0.1:${ports.ssl}`]);
  assert.deepEqual(await brokersOf(ports.plain, []), [`127.0.0.1:${ports.plain}`]);
  assert.deepEqual(await brokersOf(ports.mtls, kcatSslArgs(pki.client)), [`127.0.0.1:${ports.mtls}`]);
  // KafkaJS's admin sees the same through DescribeCluster.
  const admin = sslKafka(ports.ssl).admin();
  await admin.connect();
  try {
    const cluster = await admin.describeCluster();
    assert.deepEqual(cluster.brokers.map((b) => b.port), [ports.ssl]);
  } finally {
    await admin.disconnect();
  }
});

test('mutual TLS: a good client certificate is served, its subject the principal', { timeout: 60_000 }, async () => {
  const kafka = sslKafka(ports.mtls, pki.client);
  const producer = kafka.producer();
  await producer.connect();
  try {
    await producer.send({ topic: 'tls-mtls', messages: [{ value: 'from alice' }] });
    const mine = broker.broker.kafka.connections().filter((c) => c.listener === 'MTLS');
    assert.ok(mine.length > 0, 'no connection on the MTLS listener');
    for (const c of mine) {
      assert.equal(c.securityProtocol, 'SSL');
      assert.equal(c.principal, 'User:CN=alice,OU=ops,O=Meridian,C=US');
    }
    // Connections on listeners without client certificates are anonymous.
    const other = await tlsProbe(ports.ssl);
    assert.equal(other.outcome, 'open');
    const onSsl = broker.broker.kafka.connections().filter((c) => c.listener === 'SSL');
    assert.ok(onSsl.length > 0 && onSsl.every((c) => c.principal === 'User:ANONYMOUS'), 'SSL connections are not anonymous');
    other.socket.destroy();
  } finally {
    await producer.disconnect();
  }
  // The debug line an operator can read.
  assert.ok(log.lines.some((l) => l.msg === 'TLS connection established' && l.listener === 'MTLS' && l.principal === 'User:CN=alice,OU=ops,O=Meridian,C=US'), 'no debug line with the principal');
  const got = await new KcatClient(`127.0.0.1:${ports.mtls}`).consumeAll('tls-mtls', kcatSslArgs(pki.client));
  assert.deepEqual(got.map((m) => m.payload?.toString()), ['from alice']);
});

test('mutual TLS: no certificate, an expired one or another CA\'s is refused, and the broker serves on', { timeout: 60_000 }, async () => {
  const before = stats().refused['tls-client-certificate'];
  const read = (f: { cert: string; key: string }) => ({ cert: fs.readFileSync(f.cert), key: fs.readFileSync(f.key) });
  for (const [what, client] of [
    ['no certificate', {}],
    ['an expired certificate', read(pki.expired)],
    ['a certificate from another CA', read(pki.foreign)],
  ] as const) {
    const r = await tlsProbe(ports.mtls, client);
    assert.equal(r.outcome, 'closed', `a client with ${what} was served`);
    r.socket.destroy();
  }
  await waitFor('three refusals counted', () => stats().refused['tls-client-certificate'] - before === 3, 5000);
  assert.ok(
    log.lines.some((l) => l.msg?.startsWith('refusing connection: client certificate') && /CERT_HAS_EXPIRED|no client certificate|UNABLE_TO/.test(String(l.detail))),
    'no warning for the refused certificate',
  );
  // kcat with the expired certificate gets no metadata (librdkafka retries until -m runs out).
  const r = await kcat(['-b', `127.0.0.1:${ports.mtls}`, '-L', '-m', '3', ...kcatSslArgs(pki.expired)], undefined, 30_000);
  assert.notEqual(r.code, 0, 'kcat with an expired certificate was served');
  // Everyone else is still served.
  const good = await tlsProbe(ports.mtls, read(pki.client));
  assert.equal(good.outcome, 'open');
  assert.equal(await plainProbe(ports.plain), 'open');
  const ssl = await tlsProbe(ports.ssl);
  assert.equal(ssl.outcome, 'open');
  good.socket.destroy();
  ssl.socket.destroy();
});

test('a plaintext client on a TLS port is refused cleanly while PLAINTEXT serves on', { timeout: 60_000 }, async () => {
  const before = stats().refused['tls-handshake'];
  assert.equal(await plainProbe(ports.ssl), 'closed');
  assert.equal(await plainProbe(ports.mtls), 'closed');
  await waitFor('two handshake refusals counted', () => stats().refused['tls-handshake'] - before === 2, 5000);
  // A TLS client on the plaintext port fails too (the broker reads a garbage frame and closes).
  assert.equal((await tlsProbe(ports.plain)).outcome, 'closed');
  // kcat over PLAINTEXT against the SSL port fails; over SSL it works.
  const wrong = await kcat(['-b', `127.0.0.1:${ports.ssl}`, '-L', '-m', '3'], undefined, 30_000);
  assert.notEqual(wrong.code, 0);
  assert.equal(await plainProbe(ports.plain), 'open');
  await new KcatClient(`127.0.0.1:${ports.plain}`).run(['-L']);
  await new KcatClient(`127.0.0.1:${ports.ssl}`).run(['-L', ...kcatSslArgs()]);
  // Every refused connection gave its admission back.
  await waitFor('refused connections released', () => stats().admitted === stats().connections, 5000, 100, () => JSON.stringify(stats()));
});

test('TLS 1.1 is refused: TLS 1.2 is the minimum', async () => {
  const r = await tlsProbe(ports.ssl, { maxVersion: 'TLSv1.1', minVersion: 'TLSv1' });
  assert.equal(r.outcome, 'closed');
  const ok = await tlsProbe(ports.ssl, { maxVersion: 'TLSv1.2' });
  assert.equal(ok.outcome, 'open');
  assert.equal(ok.socket.getProtocol(), 'TLSv1.2');
  ok.socket.destroy();
});

test('a replaced certificate is used for new connections; open ones keep working; a broken one is ignored', { timeout: 60_000 }, async () => {
  const old = await tlsProbe(ports.ssl);
  assert.equal(old.outcome, 'open');
  assert.equal(old.serial, '1001');
  const sslStats = () => stats().listeners.find((l) => l.name === 'SSL')!.tls!;
  const reloadsBefore = sslStats().reloads;

  // A new key and certificate, moved into place the way cert-manager or certbot do.
  const next = pki.issue('broker-next', '/CN=localhost', { serial: '1002', server: true });
  fs.copyFileSync(next.key, `${sslFiles.key}.tmp`);
  fs.copyFileSync(next.cert, `${sslFiles.cert}.tmp`);
  fs.renameSync(`${sslFiles.key}.tmp`, sslFiles.key);
  fs.renameSync(`${sslFiles.cert}.tmp`, sslFiles.cert);
  await waitFor('the new certificate in use', () => sslStats().reloads > reloadsBefore && sslStats().certificateSerial === '1002', 10_000);

  const fresh = await tlsProbe(ports.ssl);
  assert.equal(fresh.outcome, 'open');
  assert.equal(fresh.serial, '1002');
  // The connection made before the reload is still served.
  assert.equal(await ask(old.socket), 'open');
  // kcat connects with the new certificate (same CA).
  await new KcatClient(`127.0.0.1:${ports.ssl}`).run(['-L', ...kcatSslArgs()]);

  // A broken replacement (not PEM) is refused with a warning; the listener keeps 1002.
  const failuresBefore = sslStats().reloadFailures;
  fs.writeFileSync(sslFiles.cert, 'this is not a certificate\n');
  await waitFor('the broken certificate refused', () => sslStats().reloadFailures > failuresBefore, 10_000);
  const warning = log.lines.find((l) => l.msg?.startsWith('TLS certificate files changed but cannot be used'));
  assert.ok(warning, 'no warning for the broken certificate');
  assert.equal(warning.listener, 'SSL');
  const keyPem = fs.readFileSync(sslFiles.key, 'utf8');
  assert.ok(!JSON.stringify(log.lines).includes(keyPem.split('\n')[1]!), 'key material in the log');
  const still = await tlsProbe(ports.ssl);
  assert.equal(still.outcome, 'open');
  assert.equal(still.serial, '1002');
  for (const s of [old.socket, fresh.socket, still.socket]) s.destroy();
});

test('a SASL_SSL listener with no SASL mechanism enabled stops the broker from starting, naming the field', async () => {
  await assert.rejects(
    startBroker({
      kafka: {
        listeners: [
          { name: 'PLAINTEXT', host: '127.0.0.1', port: 0 },
          { name: 'EXTERNAL', host: '127.0.0.1', port: 0, securityProtocol: 'SASL_SSL', tls: { certFile: pki.broker.cert, keyFile: pki.broker.key } },
        ],
      },
      security: { sasl: { mechanisms: [] } },
    }),
    (err: Error) => {
      assert.match(err.message, /^security\.sasl\.mechanisms: listener EXTERNAL \(kafka\.listeners\[1\]\) is SASL_SSL, but no SASL mechanism is enabled/);
      return true;
    },
  );
});

test('a TLS listener whose key file is missing or whose certificate is not PEM stops the start, naming the field', async () => {
  const listener = (tlsCfg: Record<string, unknown>) => ({ kafka: { listeners: [{ name: 'SSL', host: '127.0.0.1', port: 0, tls: { certFile: pki.broker.cert, keyFile: pki.broker.key, ...tlsCfg } }] } });
  await assert.rejects(startBroker(listener({ keyFile: path.join(certs.dir, 'nope.key') })), /kafka\.listeners\[0\]\.tls\.keyFile: .*nope\.key: no such file/);
  const junk = path.join(certs.dir, 'junk.pem');
  fs.writeFileSync(junk, 'junk\n');
  await assert.rejects(startBroker(listener({ certFile: junk })), /kafka\.listeners\[0\]\.tls: the certificate .* of listener SSL cannot be used/);
});
