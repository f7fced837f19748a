/**
 * TEST DOUBLE — NOT GOOGLE CLOUD STORAGE. Nothing that emulates GCS can run on this machine
 * (fake-gcs-server is Go, the Firebase emulator downloads a jar),
 * so the GCS backend's conformance run talks to this small in-memory HTTP server instead.
 * It implements exactly the JSON-API subset that `@google-cloud/storage` 7.x sends for the
 * calls GcsBlobStore makes, as captured from its requests:
 *
 *   POST /upload/storage/v1/b/B/o?uploadType=multipart&name=N   multipart/related (JSON, data)
 *   POST /upload/storage/v1/b/B/o?uploadType=resumable&name=N   200 + Location (session URI)
 *   PUT  <session>  Content-Range: bytes S-E/T | bytes S-*|/T|*  308 + Range until the last chunk
 *   GET  /storage/v1/b/B/o/N?alt=media  [Range: bytes=S-E]        200 or 206, x-goog-hash
 *   GET  /storage/v1/b/B/o/N                                     object resource
 *   GET  /storage/v1/b/B/o?prefix=&maxResults=&pageToken=        list, nextPageToken
 *   DELETE /storage/v1/b/B/o/N                                   204
 *   ifGenerationMatch=0 on an existing object                    412
 *
 * Paths are also accepted without the `/storage/v1` prefix (STORAGE_EMULATOR_HOST style).
 * Errors are GCS-shaped JSON bodies. Buckets listed in `forbiddenBuckets` answer 403, the
 * way GCS answers a credential without access. Anything else answers 501, so a client
 * change that needs more of the API fails loudly instead of passing against a guess.
 */
import http from 'node:http';
import { createHash, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { crc32c } from '@node-rs/crc32';

interface StoredObject {
  data: Buffer;
  /** How many requests carried the bytes (resumable chunks), for tests of the chunked path. */
  parts: number;
  generation: string;
  updated: string;
}

interface UploadSession {
  bucket: string;
  name: string;
  ifGenerationMatch: string | null;
  chunks: Buffer[];
  received: number;
}

export interface GcsTestServer {
  /** `http://127.0.0.1:PORT`, for `new Storage({ apiEndpoint })`. */
  readonly endpoint: string;
  /** How many requests were served, by `METHOD uploadType|alt|kind`, for tests that check a path was taken. */
  readonly requests: Map<string, number>;
  createBucket(name: string): void;
  /** How many upload requests carried the object's bytes (0 when absent). */
  partsOf(bucket: string, name: string): number;
  /** Closes the listener and every open connection. Idempotent. */
  close(): Promise<void>;
}

export interface GcsTestServerOptions {
  forbiddenBuckets?: string[];
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export async function createGcsTestServer(options: GcsTestServerOptions = {}): Promise<GcsTestServer> {
  const buckets = new Map<string, Map<string, StoredObject>>();
  const sessions = new Map<string, UploadSession>();
  const requests = new Map<string, number>();
  const forbidden = new Set(options.forbiddenBuckets ?? []);
  let generation = Date.now() * 1000;
  let endpoint = '';

  const bucketOf = (name: string): Map<string, StoredObject> => {
    if (forbidden.has(name)) throw new HttpError(403, 'forbidden', `caller does not have storage.objects access to bucket ${name}.`);
    const b = buckets.get(name);
    if (b === undefined) throw new HttpError(404, 'notFound', 'The specified bucket does not exist.');
    return b;
  };
  const objectOf = (bucket: string, name: string): StoredObject => {
    const o = bucketOf(bucket).get(name);
    if (o === undefined) throw new HttpError(404, 'notFound', `No such object: ${bucket}/${name}`);
    return o;
  };
  const checkPrecondition = (bucket: string, name: string, ifGenerationMatch: string | null): void => {
    if (ifGenerationMatch === null) return;
    const current = bucketOf(bucket).get(name)?.generation ?? '0';
    if (current !== ifGenerationMatch) {
      throw new HttpError(412, 'conditionNotMet', 'At least one of the pre-conditions you specified did not hold.');
    }
  };
  const store = (bucket: string, name: string, data: Buffer, parts: number, ifGenerationMatch: string | null): StoredObject => {
    checkPrecondition(bucket, name, ifGenerationMatch);
    const obj = { data, parts, generation: String(++generation), updated: new Date().toISOString() };
    bucketOf(bucket).set(name, obj);
    return obj;
  };
  const resource = (bucket: string, name: string, o: StoredObject) => ({
    kind: 'storage#object',
    id: `${bucket}/${name}/${o.generation}`,
    name,
    bucket,
    generation: o.generation,
    metageneration: '1',
    contentType: 'application/octet-stream',
    size: String(o.data.length),
    md5Hash: createHash('md5').update(o.data).digest('base64'),
    crc32c: crc32cBase64(o.data),
    etag: Buffer.from(o.generation).toString('base64'),
    timeCreated: o.updated,
    updated: o.updated,
  });

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x');
    const q = url.searchParams;
    let route = url.pathname.replace(/^\/storage\/v1(?=\/)/, '');
    const upload = route.startsWith('/upload/');
    if (upload) route = route.replace(/^\/upload(\/storage\/v1)?/, '');
    const tag = `${req.method} ${q.get('uploadType') ?? q.get('alt') ?? (/\/o\/./.test(route) ? 'object' : 'list')}`;
    requests.set(tag, (requests.get(tag) ?? 0) + 1);
    const body = await readBody(req);
    const m = /^\/b\/([^/]+)\/o(?:\/(.+))?$/.exec(route);
    if (m === null) throw new HttpError(501, 'notImplemented', `test server: no route for ${req.method} ${url.pathname}`);
    const bucket = decodeURIComponent(m[1]);
    const name = m[2] === undefined ? undefined : decodeURIComponent(m[2]);

    if (upload && req.method === 'POST' && q.get('uploadType') === 'multipart') {
      const [meta, data] = parseMultipart(req.headers['content-type'] ?? '', body);
      const objName = q.get('name') ?? (JSON.parse(meta.toString() || '{}') as { name?: string }).name;
      if (!objName) throw new HttpError(400, 'required', 'Required parameter: name');
      return json(res, 200, resource(bucket, objName, store(bucket, objName, data, 1, q.get('ifGenerationMatch'))));
    }
    if (upload && req.method === 'POST' && q.get('uploadType') === 'resumable') {
      const objName = q.get('name') ?? (JSON.parse(body.toString() || '{}') as { name?: string }).name;
      if (!objName) throw new HttpError(400, 'required', 'Required parameter: name');
      checkPrecondition(bucket, objName, q.get('ifGenerationMatch'));
      const id = randomUUID();
      sessions.set(id, { bucket, name: objName, ifGenerationMatch: q.get('ifGenerationMatch'), chunks: [], received: 0 });
      const location = `${endpoint}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o?uploadType=resumable&upload_id=${id}`;
      res.writeHead(200, { Location: location, 'Content-Length': 0 }).end();
      return;
    }
    if (upload && req.method === 'PUT' && q.get('upload_id') !== null) {
      const session = sessions.get(q.get('upload_id')!);
      if (session === undefined) throw new HttpError(404, 'notFound', 'No such upload session.');
      // Content-Range: "bytes S-E/T", "bytes S-*/T" (all remaining data), "bytes */T" (status).
      const cr = /^bytes (?:(\d+)-(\d+|\*)|\*)\/(\d+|\*)$/.exec(String(req.headers['content-range'] ?? ''));
      if (cr === null) throw new HttpError(400, 'invalid', `bad Content-Range: ${req.headers['content-range']}`);
      if (cr[1] !== undefined) {
        if (Number(cr[1]) !== session.received) throw new HttpError(400, 'invalid', 'chunk does not start at the persisted offset');
        session.chunks.push(body);
        session.received += body.length;
      }
      const total = cr[3] === '*' ? (cr[2] === '*' ? session.received : null) : Number(cr[3]);
      if (total === null || session.received < total) {
        const headers: http.OutgoingHttpHeaders = { 'Content-Length': 0 };
        if (session.received > 0) headers.Range = `bytes=0-${session.received - 1}`;
        res.writeHead(308, headers).end();
        return;
      }
      sessions.delete(q.get('upload_id')!);
      const obj = store(session.bucket, session.name, Buffer.concat(session.chunks), session.chunks.length, session.ifGenerationMatch);
      return json(res, 200, resource(session.bucket, session.name, obj));
    }
    if (!upload && req.method === 'GET' && name === undefined) {
      const prefix = q.get('prefix') ?? '';
      const max = Math.min(Number(q.get('maxResults') ?? 1000) || 1000, 1000);
      const after = q.get('pageToken') ? Buffer.from(q.get('pageToken')!, 'base64url').toString() : '';
      const names = [...bucketOf(bucket).keys()].filter((n) => n.startsWith(prefix) && byteOrder(n, after) > 0).sort(byteOrder);
      const page = names.slice(0, max);
      const out: Record<string, unknown> = { kind: 'storage#objects' };
      if (page.length > 0) out.items = page.map((n) => resource(bucket, n, bucketOf(bucket).get(n)!));
      if (names.length > page.length) out.nextPageToken = Buffer.from(page[page.length - 1]).toString('base64url');
      return json(res, 200, out);
    }
    if (!upload && req.method === 'GET' && name !== undefined) {
      const o = objectOf(bucket, name);
      if (q.get('alt') !== 'media') return json(res, 200, resource(bucket, name, o));
      return media(req, res, o, resource(bucket, name, o));
    }
    if (!upload && req.method === 'DELETE' && name !== undefined) {
      objectOf(bucket, name);
      bucketOf(bucket).delete(name);
      res.writeHead(204).end();
      return;
    }
    throw new HttpError(501, 'notImplemented', `test server: ${req.method} ${url.pathname} is not implemented`);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const e = err instanceof HttpError ? err : new HttpError(500, 'backendError', String(err));
      if (!res.headersSent) json(res, e.status, { error: { code: e.status, message: e.message, errors: [{ reason: e.reason, message: e.message, domain: 'global' }] } });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let closed: Promise<void> | undefined;
  return {
    endpoint,
    requests,
    createBucket: (name) => void buckets.set(name, buckets.get(name) ?? new Map()),
    partsOf: (bucket, name) => buckets.get(bucket)?.get(name)?.parts ?? 0,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // keep-alive sockets would otherwise keep serving
      })),
  };
}

/** Ranged media download: 206 for a satisfiable range (end clamped), 416 past the end. */
function media(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  o: StoredObject,
  { md5Hash, crc32c: crc, generation }: { md5Hash: string; crc32c: string; generation: string },
): void {
  const headers: http.OutgoingHttpHeaders = {
    'Content-Type': 'application/octet-stream',
    'x-goog-generation': generation,
    'x-goog-stored-content-encoding': 'identity',
    'x-goog-hash': `crc32c=${crc},md5=${md5Hash}`,
  };
  const range = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ''));
  if (range === null) {
    res.writeHead(200, { ...headers, 'Content-Length': o.data.length }).end(o.data);
    return;
  }
  const start = Number(range[1]);
  const end = Math.min(range[2] === '' ? o.data.length - 1 : Number(range[2]), o.data.length - 1);
  if (start >= o.data.length) {
    throw new HttpError(416, 'requestedRangeNotSatisfiable', 'The requested range cannot be satisfied.');
  }
  const slice = o.data.subarray(start, end + 1);
  res.writeHead(206, { ...headers, 'Content-Length': slice.length, 'Content-Range': `bytes ${start}-${end}/${o.data.length}` }).end(slice);
}

function json(res: http.ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=UTF-8', 'Content-Length': Buffer.byteLength(text) }).end(text);
}

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** multipart/related with two parts: JSON metadata, then the object's bytes. */
function parseMultipart(contentType: string, body: Buffer): [Buffer, Buffer] {
  const boundary = /boundary="?([^";]+)"?/.exec(contentType)?.[1];
  if (boundary === undefined) throw new HttpError(400, 'invalid', 'multipart upload without a boundary');
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Buffer[] = [];
  let pos = body.indexOf(delimiter);
  while (pos !== -1) {
    const next = body.indexOf(delimiter, pos + delimiter.length);
    if (next === -1) break;
    const part = body.subarray(pos + delimiter.length, next);
    const headerEnd = part.indexOf('\r\n\r\n');
    // The part ends with the CRLF that precedes the next delimiter.
    parts.push(part.subarray(headerEnd + 4, part.length - 2));
    pos = next;
  }
  if (parts.length !== 2) throw new HttpError(400, 'invalid', `multipart upload with ${parts.length} parts, expected 2`);
  return [parts[0], parts[1]];
}

function crc32cBase64(data: Buffer): string {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc32c(data) >>> 0);
  return out.toString('base64');
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
