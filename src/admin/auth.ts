/**
 * Who may call the admin API. With `admin.token` set, every call needs
 * `Authorization: Bearer <token>`, except reads (GET, HEAD) when `admin.openReads` is on, and
 * the two probes (/v1/health, /v1/ready), which load balancers call without credentials.
 * Without a token every call is allowed, which is safe only on a loopback address: the
 * broker refuses to start otherwise (`checkAdminExposure`). The token is compared in
 * constant time and never logged.
 */
import crypto from 'node:crypto';
import type { AdminConfig } from '../config/schema.js';
import { StartupError } from '../broker/startup-error.js';
import { DASHBOARD_PATHS } from './dashboard/routes.js';
import { httpError, HttpErrorCode } from './http-errors.js';

/**
 * Paths anyone may call: liveness and readiness probes, and the dashboard's page, script and
 * stylesheet (they hold no data; the page asks for the token when its API calls need one).
 */
export const OPEN_PATHS: ReadonlySet<string> = new Set(['/v1/health', '/v1/ready', ...DASHBOARD_PATHS]);

const LOOPBACK_NAMES = new Set(['localhost', '::1', '[::1]', '0:0:0:0:0:0:0:1']);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_NAMES.has(host.toLowerCase()) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Refuses an admin API open to the network without a token (called before anything starts). */
export function checkAdminExposure(admin: AdminConfig): void {
  if (admin.port === null || admin.token !== null || isLoopbackHost(admin.host)) return;
  throw new StartupError(
    'admin.token',
    `admin.host ${admin.host} is not a loopback address and no token is set, which would let anyone on the network change topics and replication; set admin.token (MERIDIAN_ADMIN__TOKEN) or listen on 127.0.0.1`,
    undefined,
  );
}

function digest(s: string): Buffer {
  return crypto.createHash('sha256').update(s).digest();
}

/** A check for each request: throws UNAUTHORIZED when the call needs the token and lacks it. */
export function authorizer(admin: Pick<AdminConfig, 'token' | 'openReads'>): (method: string, path: string, authorization: string | undefined) => void {
  const token = admin.token;
  if (token === null) return () => {};
  const expected = digest(token);
  return (method, path, authorization) => {
    if (OPEN_PATHS.has(path)) return;
    if (admin.openReads && (method === 'GET' || method === 'HEAD')) return;
    const m = /^Bearer\s+(.+)$/i.exec(authorization ?? '');
    if (m !== null && crypto.timingSafeEqual(digest(m[1].trim()), expected)) return;
    throw httpError(
      HttpErrorCode.Unauthorized,
      m === null ? `${method} ${path} needs the admin token` : `${method} ${path}: the admin token is wrong`,
    );
  };
}
