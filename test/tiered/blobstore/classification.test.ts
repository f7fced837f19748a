/**
 * Error classification for answers the real test servers cannot be made to give (throttling,
 * 5xx, a missing bucket, a server that accepts and never answers). A CANNED-ANSWER HTTP
 * SERVER stands in for each cloud here: it replies to every request with one fixed status,
 * error code and body in that cloud's documented error format, so each backend's real SDK
 * parses a realistic error and the backend must classify it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { BlobStoreError, createBlobStore, type BlobStore, type BlobStoreConfig } from '../../../src/tiered/blobstore/index.js';

interface Canned {
  status: number;
  /** Per-cloud service code; absent means "the answer carries none". */
  s3?: string;
  azure?: string;
  gcs?: string;
  gcsMessage?: string;
  /** Accept the request and never answer. */
  hang?: boolean;
}

let answer: Canned = { status: 500 };
let server: http.Server;
let endpoint = '';

function reply(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (answer.hang) return;
  const { status } = answer;
  const headers: http.OutgoingHttpHeaders = {};
  let body = '';
  if (req.url?.startsWith('/storage/') || req.url?.startsWith('/upload/')) {
    const message = answer.gcsMessage ?? `canned ${status}`;
    body = JSON.stringify({ error: { code: status, message, errors: [{ reason: answer.gcs ?? 'backendError', message }] } });
    headers['content-type'] = 'application/json';
  } else if (req.url?.startsWith('/devstoreaccount1')) {
    if (answer.azure) headers['x-ms-error-code'] = answer.azure;
    body = `<?xml version="1.0" encoding="utf-8"?><Error><Code>${answer.azure ?? ''}</Code><Message>canned</Message></Error>`;
    headers['content-type'] = 'application/xml';
  } else {
    body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${answer.s3 ?? ''}</Code><Message>canned</Message><RequestId>1</RequestId></Error>`;
    headers['content-type'] = 'application/xml';
  }
  req.resume();
  req.on('end', () => res.writeHead(status, { ...headers, 'content-length': req.method === 'HEAD' ? 0 : Buffer.byteLength(body) }).end(req.method === 'HEAD' ? undefined : body));
}

const configs = (): Array<[string, BlobStoreConfig]> => [
  ['s3', { type: 's3', endpoint, forcePathStyle: true, bucket: 'b', credentials: { accessKeyId: 'k', secretAccessKey: 'sssssss' }, maxAttempts: 1, socketTimeoutMs: 300 }],
  ['azure', { type: 'azure', account: 'devstoreaccount1', accountKey: Buffer.alloc(32, 1).toString('base64'), endpoint: `${endpoint}/devstoreaccount1`, container: 'c', maxAttempts: 1, idleTimeoutMs: 300 }],
  ['gcs', { type: 'gcs', apiEndpoint: endpoint, projectId: 'p', bucket: 'b', maxAttempts: 1, timeoutMs: 300 }],
];

const cases: Array<[string, Canned, 'retriable' | 'fatal' | 'not-found']> = [
  ['503 throttling', { status: 503, s3: 'SlowDown', azure: 'ServerBusy', gcs: 'backendError' }, 'retriable'],
  ['500 internal error', { status: 500, s3: 'InternalError', azure: 'InternalError', gcs: 'backendError' }, 'retriable'],
  ['429 too many requests', { status: 429, s3: 'TooManyRequests', azure: 'TooManyRequests', gcs: 'rateLimitExceeded' }, 'retriable'],
  ['403 bad credentials', { status: 403, s3: 'SignatureDoesNotMatch', azure: 'AuthenticationFailed', gcs: 'forbidden' }, 'fatal'],
  ['401 unauthenticated', { status: 401, s3: 'Unauthorized', azure: 'NoAuthenticationInformation', gcs: 'required' }, 'fatal'],
  ['400 bad request', { status: 400, s3: 'InvalidArgument', azure: 'InvalidQueryParameterValue', gcs: 'invalid' }, 'fatal'],
  ['404 object missing', { status: 404, s3: 'NoSuchKey', azure: 'BlobNotFound', gcs: 'notFound' }, 'not-found'],
  [
    '404 bucket missing',
    { status: 404, s3: 'NoSuchBucket', azure: 'ContainerNotFound', gcs: 'notFound', gcsMessage: 'The specified bucket does not exist.' },
    'fatal',
  ],
  ['no answer at all (timeout)', { status: 200, hang: true }, 'retriable'],
];

describe('backends classify their SDK errors', () => {
  const stores = new Map<string, BlobStore>();
  before(async () => {
    server = http.createServer(reply);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    for (const [name, config] of configs()) stores.set(name, await createBlobStore(config));
  });
  after(async () => {
    for (const store of stores.values()) await store.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  for (const [what, canned, kind] of cases) {
    test(`${what} → ${kind}`, async () => {
      answer = canned;
      for (const [name, store] of stores) {
        const started = Date.now();
        const err = await store.get('seg/0001', { signal: new AbortController().signal }).then(
          () => assert.fail(`${name}: the get succeeded`),
          (e: unknown) => e,
        );
        assert.ok(err instanceof BlobStoreError, `${name}: not a BlobStoreError: ${String(err)}`);
        assert.equal(err.kind, kind, `${name}: ${err.message}`);
        assert.equal(err.retriable, kind === 'retriable');
        assert.ok(Date.now() - started < 5_000, `${name} took ${Date.now() - started} ms`);
        assert.ok(!err.message.includes('sssssss'), 'the S3 secret leaked');
        server.closeAllConnections(); // a hung request must not hold the next case's socket
      }
    });
  }
});
