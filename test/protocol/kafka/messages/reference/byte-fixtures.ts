/**
 * The byte fixtures: for every API, direction and version, the deterministic sample message
 * (message-values.ts) encoded by the reference encoder, as hex. Produced once and committed
 * (fixtures/message-bytes.json), so that a change to both the reference encoder and the
 * generated encoders still shows up as a diff a reviewer sees. Regenerate, after a schema
 * update or a deliberate change of the samples, with
 *
 *   node --import tsx test/protocol/kafka/messages/reference/byte-fixtures.ts
 *
 * and review the diff of the JSON.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadApiSchemas } from './kafka-schema.js';
import { sampleMessage } from './message-values.js';
import { referenceEncode } from './reference-encoder.js';

export const FIXTURES_FILE = fileURLToPath(new URL('../fixtures/message-bytes.json', import.meta.url));

/** Message name ("ProduceRequest") → version → hex. */
export type ByteFixtures = Record<string, Record<string, string>>;

export function renderFixtures(): ByteFixtures {
  const fixtures: ByteFixtures = {};
  for (const api of loadApiSchemas().values()) {
    for (const schema of [api.request, api.response]) {
      const byVersion: Record<string, string> = {};
      for (let v = schema.lo; v <= schema.hi; v++) {
        byVersion[String(v)] = referenceEncode(schema, v, sampleMessage(schema, v)).toString('hex');
      }
      fixtures[schema.name] = byVersion;
    }
  }
  return fixtures;
}

export function readFixtures(): ByteFixtures {
  return JSON.parse(readFileSync(FIXTURES_FILE, 'utf8')) as ByteFixtures;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(FIXTURES_FILE, `${JSON.stringify(renderFixtures(), null, 2)}\n`);
  process.stdout.write(`wrote ${FIXTURES_FILE}\n`);
}
