/**
 * SCRAM users of this region (src/security/credential-store.ts), for operators and the
 * `meridian user` commands: the same store Kafka's DescribeUserScramCredentials and
 * AlterUserScramCredentials change (broker/kafka/scram-credentials.ts).
 *
 * - GET lists users with their mechanisms and iterations: never a salt or key.
 * - PUT takes a password, which is salted and hashed here (a fresh random salt per
 *   mechanism) and forgotten: only StoredKey and ServerKey are kept. The body is never
 *   logged (app.ts logs a mutation's method, URL and status only; the logger redacts
 *   `password` wherever it appears), and no error message built here holds it.
 * - DELETE removes one mechanism (`?mechanism=`) or all of the user's.
 *
 * Like ACLs and credentials over Kafka, this is per region: nothing is replicated.
 */
import type { FastifyInstance } from 'fastify';
import { ErrorCode, MeridianError } from '../../errors.js';
import type { UserScramCredentials } from '../../security/credential-store.js';
import { SCRAM_MECHANISMS, type ScramMechanism } from '../../security/scram.js';
import type { AdminContext } from '../app.js';
import { arr, errorResponses, obj, schemaTypes as t } from '../schemas.js';

const mechanism = { type: 'string', enum: [...SCRAM_MECHANISMS] } as const;

const userBody = obj({ user: t.str, mechanisms: arr(obj({ mechanism, iterations: t.int })) });

interface PutBody {
  password: string;
  mechanisms?: ScramMechanism[];
  iterations?: number;
}

function entryOf(users: readonly UserScramCredentials[], user: string): UserScramCredentials {
  const found = users.find((u) => u.user === user);
  if (found === undefined) throw new MeridianError(ErrorCode.CredentialNotFound, `user ${JSON.stringify(user)} has no SCRAM credential; list the users with GET /v1/security/users`);
  return found;
}

const asBody = (u: UserScramCredentials) => ({ user: u.user, mechanisms: u.credentials.map((c) => ({ mechanism: c.mechanism, iterations: c.iterations })) });

export function userRoutes(app: FastifyInstance, { broker }: AdminContext): void {
  app.get('/v1/security/users', { schema: { summary: 'SCRAM users with their mechanisms and iterations (never salts or keys)', tags: ['security'], response: { 200: arr(userBody) } } }, async () =>
    broker.security.credentials.describe().map(asBody),
  );

  app.put<{ Params: { user: string }; Body: PutBody }>(
    '/v1/security/users/:user',
    {
      schema: {
        summary: 'Create a SCRAM user or change its password: salted and hashed here, never stored nor logged',
        tags: ['security'],
        params: obj({ user: t.str }),
        body: obj(
          {
            password: { type: 'string', minLength: 1, description: 'the password; only the SCRAM keys derived from it are kept' },
            mechanisms: { type: 'array', items: mechanism, minItems: 1, uniqueItems: true, description: `default: ${SCRAM_MECHANISMS.join(' and ')}` },
            iterations: { type: 'integer', description: 'PBKDF2 iterations, 4096..16384 (default 4096)' },
          },
          ['password'],
        ),
        response: { 200: userBody, ...errorResponses(400, 401) },
      },
    },
    async (req) => {
      const { user } = req.params;
      const { password, mechanisms = SCRAM_MECHANISMS, iterations } = req.body;
      await broker.security.writes.credentials((store) => {
        for (const m of mechanisms) store.upsert(user, m, password, iterations === undefined ? {} : { iterations });
      });
      return asBody(entryOf(broker.security.credentials.describe(), user));
    },
  );

  app.delete<{ Params: { user: string }; Querystring: { mechanism?: ScramMechanism } }>(
    '/v1/security/users/:user',
    {
      schema: {
        summary: "Delete a user's SCRAM credential for one mechanism, or all of them",
        tags: ['security'],
        params: obj({ user: t.str }),
        querystring: obj({ mechanism }, []),
        response: { 204: { type: 'null', description: 'deleted' }, ...errorResponses(401, 404) },
      },
    },
    async (req, reply) => {
      const { user } = req.params;
      await broker.security.writes.credentials((store) => {
        const mechanisms = req.query.mechanism !== undefined ? [req.query.mechanism] : entryOf(store.describe(), user).credentials.map((c) => c.mechanism);
        for (const m of mechanisms) store.delete(user, m);
      });
      return reply.code(204).send();
    },
  );
}
