/**
 * The one mapping from Meridian's error codes (src/README.md) to the admin API's HTTP
 * answers: a status, the stable code, and a message that says what to do. Routes throw
 * MeridianErrors (or let the domain's through); the app's error handler calls `httpErrorOf`.
 * test/admin/http-errors.test.ts fails when a code has no documented status here.
 */
import { ErrorCode, MeridianError } from '../errors.js';

/** Codes only the admin API raises (no Kafka client ever sees them). */
export const HttpErrorCode = {
  Unauthorized: 'UNAUTHORIZED',
  NotFound: 'NOT_FOUND',
  BadRequest: 'BAD_REQUEST',
  NotReady: 'NOT_READY',
  Internal: 'INTERNAL',
} as const;

export interface HttpError {
  readonly status: number;
  readonly body: { error: { code: string; message: string } };
}

/** Statuses by code; a code not listed answers 503 when retriable (try again) and 500 otherwise. */
export const HTTP_STATUS: Readonly<Record<string, number>> = {
  [HttpErrorCode.Unauthorized]: 401,
  [HttpErrorCode.NotFound]: 404,
  [HttpErrorCode.BadRequest]: 400,
  [HttpErrorCode.NotReady]: 503,
  [HttpErrorCode.Internal]: 500,
  [ErrorCode.InvalidTopic]: 400,
  [ErrorCode.InvalidPartitions]: 400,
  [ErrorCode.InvalidConfig]: 400,
  [ErrorCode.BadConfig]: 400,
  [ErrorCode.InvalidGroupId]: 400,
  [ErrorCode.UnknownTopic]: 404,
  [ErrorCode.GroupNotFound]: 404,
  [ErrorCode.TopicExists]: 409,
  [ErrorCode.NonEmptyGroup]: 409,
  [ErrorCode.GroupSubscribedToTopic]: 409,
  [ErrorCode.InvalidDrRequest]: 400,
  [ErrorCode.DrNotFound]: 404,
  [ErrorCode.TopicReadOnly]: 409,
  [ErrorCode.ReplicationFenced]: 409,
  [ErrorCode.UnacceptableCredential]: 400,
  [ErrorCode.UnsupportedSaslMechanism]: 400,
  [ErrorCode.CredentialNotFound]: 404,
  [ErrorCode.InvalidAcl]: 400,
  [ErrorCode.InvalidReplicaAssignment]: 400,
  [ErrorCode.ReassignmentInProgress]: 409,
  [ErrorCode.NoReassignmentInProgress]: 404,
};

/** What to do next, appended to the domain's message (which says what happened). */
const HINTS: Readonly<Record<string, string>> = {
  [ErrorCode.UnknownTopic]: 'list the topics with GET /v1/topics',
  [ErrorCode.TopicExists]: 'choose another name, or delete the topic first',
  [ErrorCode.BadConfig]: 'fix the field named and send the request again',
  [ErrorCode.GroupNotFound]: 'list the groups with GET /v1/groups',
  [HttpErrorCode.Unauthorized]: 'send Authorization: Bearer <admin.token>',
};

export function httpError(code: string, message: string): MeridianError {
  return new MeridianError(code, message, { retriable: code === HttpErrorCode.NotReady });
}

export function statusOf(code: string, retriable: boolean): number {
  return HTTP_STATUS[code] ?? (retriable ? 503 : 500);
}

export function httpErrorOf(err: unknown): HttpError {
  if (err instanceof MeridianError) {
    const hint = HINTS[err.code];
    const message = hint === undefined || err.message.includes(hint) ? err.message : `${err.message}; ${hint}`;
    return { status: statusOf(err.code, err.retriable), body: { error: { code: err.code, message } } };
  }
  // fastify's own errors: schema validation (400), a body it cannot parse, too large...
  const e = err as { validation?: unknown; statusCode?: number; message?: string };
  if (e.validation !== undefined || (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500)) {
    const status = e.statusCode === 413 || e.statusCode === 415 ? e.statusCode : 400;
    return { status, body: { error: { code: HttpErrorCode.BadRequest, message: `bad request: ${e.message ?? 'invalid'}` } } };
  }
  return { status: 500, body: { error: { code: HttpErrorCode.Internal, message: `internal error: ${err instanceof Error ? err.message : String(err)}; see the broker's log` } } };
}
