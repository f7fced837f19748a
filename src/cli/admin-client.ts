/**
 * The `meridian` CLI's HTTP client for one broker's admin API (src/admin/README.md), over
 * Node's fetch. It only moves JSON and classifies what went wrong, so each command decides
 * on a class, never on a message:
 *
 * - `AdminUnreachable`: no HTTP answer at all (refused, no route, DNS, timeout). The CLI
 *   exits 3 and names the address it tried.
 * - `AdminApiError`: the broker answered with an error body `{ error: { code, message } }`
 *   (or something that is not one); `status` and the stable `code` say which.
 *
 * The bearer token goes into the Authorization header and nowhere else: no error message,
 * URL or log line built here contains it.
 *
 * Every call carries an AbortSignal: the caller's, combined with a per-request timeout, so
 * a broker that accepts the connection and never answers cannot hang a script.
 *
 * An https address is verified against the system's CAs, or against `ca` (the CLI's
 * `--admin-ca`, for an admin API with a certificate of a private CA); fetch has no CA
 * option, so those requests go through node:https.
 */
import https from 'node:https';

export const DEFAULT_TIMEOUT_MS = 10_000;

/** No HTTP answer from `address`: the broker is down, or the address is wrong. */
export class AdminUnreachable extends Error {
  readonly address: string;

  constructor(address: string, reason: string, options: { cause?: unknown } = {}) {
    super(`cannot reach the admin API at ${address}: ${reason}`, options);
    this.name = 'AdminUnreachable';
    this.address = address;
  }
}

/** The broker answered, with an error. `code` is the API's stable code (or HTTP_<status>). */
export class AdminApiError extends Error {
  readonly address: string;
  readonly status: number;
  readonly code: string;

  constructor(address: string, status: number, code: string, message: string) {
    super(message);
    this.name = 'AdminApiError';
    this.address = address;
    this.status = status;
    this.code = code;
  }
}

export interface AdminClientOptions {
  /** `host:port` or an http(s) URL. */
  address: string;
  token?: string | null;
  timeoutMs?: number;
  /** PEM CA certificates an https admin API's certificate is verified against; default: the system's. */
  ca?: Buffer;
}

/** What `request` reads of an answer: fetch's Response, or node:https's in the same shape. */
interface Answer {
  ok: boolean;
  status: number;
  statusText: string;
  text(): Promise<string>;
}

export class AdminClient {
  /** As the operator gave it (host:port), for messages. */
  readonly address: string;
  readonly #base: string;
  readonly #token: string | null;
  readonly #timeoutMs: number;
  readonly #ca: Buffer | undefined;

  constructor(opts: AdminClientOptions) {
    this.address = opts.address;
    this.#base = baseUrl(opts.address);
    this.#token = opts.token ?? null;
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#ca = opts.ca;
  }

  /** A client for another region's admin API, with the same token, timeout and CA. */
  forAddress(address: string): AdminClient {
    return new AdminClient({ address, token: this.#token, timeoutMs: this.#timeoutMs, ...(this.#ca === undefined ? {} : { ca: this.#ca }) });
  }

  get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.request<T>('GET', path, undefined, signal);
  }

  post<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return this.request<T>('POST', path, body, signal);
  }

  put<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return this.request<T>('PUT', path, body, signal);
  }

  delete<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.request<T>('DELETE', path, undefined, signal);
  }

  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.#token !== null) headers.authorization = `Bearer ${this.#token}`;
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let res: Answer;
    let text: string;
    try {
      const url = `${this.#base}${path}`;
      const init = { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: combined };
      res = this.#ca !== undefined && url.startsWith('https:') ? await httpsRequest(url, init, this.#ca) : await fetch(url, init);
      text = await res.text();
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new AdminUnreachable(this.address, timeout.aborted ? `no answer within ${this.#timeoutMs / 1000} s` : networkReason(err), { cause: err });
    }
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
      if (res.ok) throw new AdminApiError(this.address, res.status, 'BAD_RESPONSE', `${method} ${path} answered ${res.status} with a body that is not JSON`);
    }
    if (!res.ok) {
      const error = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
      const code = typeof error?.code === 'string' ? error.code : `HTTP_${res.status}`;
      const message = typeof error?.message === 'string' ? error.message : `${method} ${path} answered ${res.status} ${res.statusText}`.trim();
      throw new AdminApiError(this.address, res.status, code, message);
    }
    return parsed as T;
  }
}

/**
 * One HTTPS request verified against `ca`, answered in fetch's shape. A failure is thrown
 * as fetch throws it, the socket's error in `cause`, so `networkReason` reads both alike.
 */
function httpsRequest(url: string, init: { method: string; headers: Record<string, string>; body: string | undefined; signal: AbortSignal }, ca: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: init.method, headers: init.headers, ca, signal: init.signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => reject(new Error('request failed', { cause: err })));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ ok: status >= 200 && status < 300, status, statusText: res.statusMessage ?? '', text: async () => text });
      });
    });
    req.on('error', (err) => reject(new Error('request failed', { cause: err })));
    req.end(init.body);
  });
}

/** `host:port`, `[::1]:port` or a URL; a trailing slash is dropped. */
export function baseUrl(address: string): string {
  const url = /^https?:\/\//i.test(address) ? address : `http://${address}`;
  return url.replace(/\/+$/, '');
}

/** Whether `address` looks like something fetch can reach: host:port or an http(s) URL. */
export function validAddress(address: string): boolean {
  try {
    const u = new URL(baseUrl(address));
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '' && (u.port !== '' || /^https?:\/\//i.test(address));
  } catch {
    return false;
  }
}

/** fetch wraps the socket error in `cause`; ECONNREFUSED says more than "fetch failed". */
function networkReason(err: unknown): string {
  type Cause = { code?: string; message?: string; errors?: Cause[] };
  let cause = (err as { cause?: Cause }).cause;
  // Several addresses tried (IPv4 and IPv6 of a name): the first one's reason.
  if (cause?.code === undefined && cause?.errors?.[0] !== undefined) cause = cause.errors[0];
  if (cause?.code === 'ECONNREFUSED') return 'connection refused (ECONNREFUSED)';
  if (cause?.code === 'ENOTFOUND') return 'host not found (ENOTFOUND)';
  if (cause?.code) return `${cause.message ?? cause.code} (${cause.code})`;
  // fetch's own refusals (a port browsers block, "bad port") carry no code.
  if (cause?.message) return `${(err as Error).message}: ${cause.message}`;
  return (err as Error).message;
}
