/**
 * The generator itself (src/protocol/kafka/gen/gen-messages.ts), on a small made-up schema
 * that uses what Kafka's schemas allow but the committed ones happen not to (commonStructs,
 * a struct referenced by name, a plain struct field, uint16, float64, hex defaults, a
 * field-level flexibleVersions, a struct nullable in some versions). The generated module is imported and checked byte for byte
 * against hand-assembled encodings. generated-in-sync.test.ts compares the committed codecs
 * with a fresh run over the committed schemas (src/protocol/kafka/spec/).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { KafkaDecodeError } from '../../../../src/protocol/kafka/codec-errors.js';
import {
  formatVersions,
  kebabCase,
  parseVersions,
  renderAll,
  snakeCase,
  stripJsonComments,
  versionCondition,
} from '../../../../src/protocol/kafka/gen/gen-messages.js';
import { Reader } from '../../../../src/protocol/kafka/reader.js';
import { Writer } from '../../../../src/protocol/kafka/writer.js';
import { tmpDir } from '../../../helpers/tmp-dir.js';

const KAFKA_DIR = fileURLToPath(new URL('../../../../src/protocol/kafka/', import.meta.url));
const GENERATOR = join(KAFKA_DIR, 'gen', 'gen-messages.ts');

const WIDGET_REQUEST = `// Licensed to nobody; a header comment like Kafka's.
{
  "apiKey": 99,
  "type": "request",
  "name": "WidgetRequest",
  // Version 1 adds Ratio, Blob and Owner. Version 2 is the first flexible version.
  "validVersions": "0-2",
  "flexibleVersions": "2+",
  "fields": [
    { "name": "Url", "type": "string", "versions": "0+", "about": "Not a // comment, nor a \\"quote\\"." },
    { "name": "Port", "type": "uint16", "versions": "0+", "default": "9092" },
    { "name": "Ratio", "type": "float64", "versions": "1+", "default": "0.5" },
    { "name": "Epoch", "type": "int64", "versions": "0+", "default": "0x10" },
    { "name": "Blob", "type": "bytes", "versions": "1+", "nullableVersions": "1+", "default": "null", "ignorable": true },
    { "name": "Legacy", "type": "string", "versions": "0+", "flexibleVersions": "none" },
    { "name": "Owner", "type": "Party", "versions": "1+" },
    { "name": "Parties", "type": "[]Party", "versions": "0+" },
    { "name": "Labels", "type": "[]Label", "versions": "0+", "fields": [
      { "name": "Key", "type": "string", "versions": "0+" }
    ]},
    { "name": "MoreLabels", "type": "[]Label", "versions": "0+" },
    { "name": "Hint", "type": "int32", "versions": "2+", "taggedVersions": "2+", "tag": 5, "default": "-1" }
  ],
  "commonStructs": [
    { "name": "Party", "versions": "0+", "fields": [
      { "name": "Id", "type": "uuid", "versions": "0+" },
      { "name": "Tags", "type": "[]string", "versions": "0+" },
      { "name": "Note", "type": "string", "versions": "2+", "taggedVersions": "2+", "tag": 0,
        "nullableVersions": "2+", "default": "null" }
    ]}
  ]
}
`;

const WIDGET_RESPONSE = `{
  "apiKey": 99,
  "type": "response",
  "name": "WidgetResponse",
  "validVersions": "0-2",
  "flexibleVersions": "2+",
  "fields": [
    { "name": "ErrorCode", "type": "int16", "versions": "0+" },
    { "name": "ThrottleTimeMs", "type": "int32", "versions": "1+", "ignorable": true },
    { "name": "Secret", "type": "int32", "versions": "1+" },
    { "name": "Box", "type": "Box", "versions": "1+", "nullableVersions": "2+", "fields": [
      { "name": "Size", "type": "int32", "versions": "1+" }
    ]},
    { "name": "Extras", "type": "[]WidgetResponseExtra", "versions": "2+", "ignorable": true, "fields": [
      { "name": "Note", "type": "string", "versions": "2+" }
    ]}
  ]
}
`;

function writeSpec(dir: string, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
}

/** Hex with `#` comments to the end of the line. */
function hex(text: string): Buffer {
  return Buffer.from(text.replace(/#[^\n]*/g, '').replace(/\s+/g, ''), 'hex');
}

describe('gen-messages helpers', () => {
  it('strips // comments but not inside strings', () => {
    assert.deepEqual(JSON.parse(stripJsonComments('// a\n{ "a": "x // y", // b\n "b": "\\"//" }')), { a: 'x // y', b: '"//' });
  });

  it('parses Kafka version ranges and prints them back', () => {
    assert.equal(parseVersions('3+', 5, 't'), 0b111000);
    assert.equal(parseVersions('0-2', 5, 't'), 0b111);
    assert.equal(parseVersions('4', 5, 't'), 0b10000);
    assert.equal(parseVersions('none', 5, 't'), 0);
    assert.equal(parseVersions('7+', 5, 't'), 0);
    assert.throws(() => parseVersions('x', 5, 'Foo.json field Bar'), /Foo\.json field Bar: cannot parse versions "x"/);
    assert.equal(formatVersions(0b1100111), '0-2, 5-6');
  });

  it('folds version tests into the shortest condition on the versions that can occur', () => {
    const all = parseVersions('0-11', 11, 't');
    assert.equal(versionCondition(parseVersions('9+', 11, 't'), all), 'version >= 9');
    assert.equal(versionCondition(parseVersions('0-12', 11, 't'), all), 'true');
    assert.equal(versionCondition(parseVersions('3-8', 11, 't'), all), 'version >= 3 && version <= 8');
    assert.equal(versionCondition(parseVersions('4', 11, 't'), all), 'version === 4');
    // Inside a struct that only exists from v8, "5+" always holds.
    assert.equal(versionCondition(parseVersions('5+', 11, 't'), parseVersions('8+', 11, 't')), 'true');
  });

  it('names things the way Kafka does', () => {
    assert.equal(snakeCase('ThrottleTimeMs'), 'throttle_time_ms');
    assert.equal(snakeCase('timeoutMs'), 'timeout_ms');
    assert.equal(kebabCase('InitProducerId'), 'init-producer-id');
    assert.equal(kebabCase('ListOffsets'), 'list-offsets');
  });
});

describe('gen-messages on a made-up schema', () => {
  let dir: string;
  let cleanup: () => void;
  let widget: any;

  before(async () => {
    ({ dir, cleanup } = tmpDir('meridian-gen-'));
    const spec = join(dir, 'spec');
    writeSpec(spec, {
      'WidgetRequest.json': WIDGET_REQUEST,
      'WidgetResponse.json': WIDGET_RESPONSE,
      'README.md': 'taken at commit 0123456789abcdef0123456789abcdef01234567\n',
    });
    const out = join(dir, 'out');
    // An ES module like the project's own, or tsx would load it (and its imports) as CommonJS.
    writeSpec(out, { 'package.json': '{ "type": "module" }' });
    // Point the generated imports at the real support modules, so the file runs from here.
    const url = (file: string): string => pathToFileURL(join(KAFKA_DIR, file)).href;
    for (const [name, text] of renderAll(spec)) {
      const wired = text
        .replaceAll("'../reader.js'", `'${url('reader.js')}'`)
        .replaceAll("'../writer.js'", `'${url('writer.js')}'`)
        .replaceAll("'./codec-support.js'", `'${url('messages/codec-support.js')}'`);
      writeFileSync(join(out, name), wired);
    }
    widget = await import(pathToFileURL(join(out, 'widget.ts')).href);
  });

  after(() => cleanup());

  const party = { id: '00112233-4455-6677-8899-aabbccddeeff', tags: ['x'], note: 'n' };
  const message = {
    url: 'a',
    port: 9092,
    ratio: 0.25,
    epoch: 16n,
    blob: null,
    legacy: 'L',
    owner: { id: '00000000-0000-0000-0000-000000000000', tags: [], note: null },
    parties: [party],
    labels: [{ key: 'k' }],
    moreLabels: [],
    hint: 7,
  };

  function encode(version: number, msg: unknown): Buffer {
    const writer = new Writer();
    widget.encodeWidgetRequest(writer, version, msg);
    return Buffer.from(writer.toBuffer());
  }

  it('writes the flexible version: compact types, struct tag buffers, tagged fields', () => {
    const bytes = encode(2, message);
    const expected = hex(`
      02 61                                   # url, compact
      2384                                    # port, uint16 9092
      3fd0000000000000                        # ratio, float64 0.25
      0000000000000010                        # epoch
      00                                      # blob, compact null
      0001 4c                                 # legacy stays a classic STRING (flexibleVersions none)
      ${'00'.repeat(16)} 01 00                # owner: zero uuid, no tags, note at default so no tag
      02                                      # parties: 1 item
        00112233445566778899aabbccddeeff 02 02 78
        01 00 02 02 6e                        # tag 0 (note), 2 bytes: compact "n"
      02 02 6b 00                             # labels: [{ key: "k" }]
      01                                      # moreLabels: []
      01 05 04 00000007                       # tag 5 (hint), 4 bytes
    `);
    assert.equal(bytes.toString('hex'), expected.toString('hex'));
    assert.deepEqual(widget.decodeWidgetRequest(new Reader(bytes), 2), message);
  });

  it('writes v0 without the later fields and decodes their defaults', () => {
    const v0 = { ...message, ratio: 0.5, blob: null, owner: { id: '00000000-0000-0000-0000-000000000000', tags: [], note: null }, hint: -1, parties: [{ ...party, note: null }] };
    const bytes = encode(0, v0);
    const expected = hex(`
      0001 61  2384  0000000000000010  0001 4c
      00000001 00112233445566778899aabbccddeeff 00000001 0001 78
      00000001 0001 6b
      00000000
    `);
    assert.equal(bytes.toString('hex'), expected.toString('hex'));
    assert.deepEqual(widget.decodeWidgetRequest(new Reader(bytes), 0), v0);
  });

  it('drops ignorable fields and refuses the others when the version lacks them', () => {
    const v0 = { ...message, ratio: 0.5, hint: -1, parties: [{ ...party, note: null }] };
    // Blob is ignorable (added in v1): dropped at v0.
    const decoded = widget.decodeWidgetRequest(new Reader(encode(0, { ...v0, blob: Buffer.from('x') })), 0);
    assert.equal(decoded.blob, null);
    // Ratio is not: a non-default ratio cannot be sent at v0.
    assert.throws(() => encode(0, { ...v0, ratio: 0.25 }), /WidgetRequest version 0: ratio has a non-default value but only exists in versions 1\+/);
    assert.throws(() => encode(0, { ...v0, owner: party }), /owner has a non-default value/);
    // Nor is a tagged field: a shared struct names it by its type.
    assert.throws(() => encode(0, { ...v0, parties: [party] }), /Party\.note has a non-default value but only exists in versions 2\+/);
    // The response's non-ignorable Secret (v1+) is fine at its default.
    const writer = new Writer();
    widget.encodeWidgetResponse(writer, 0, { errorCode: 3, throttleTimeMs: 100, secret: 0, box: { size: 0 }, extras: [{ note: 'dropped' }] });
    assert.equal(writer.toBuffer().toString('hex'), '0003');
  });

  it('writes a nullable struct behind an INT8 marker, only in the versions where it is nullable', () => {
    const response = (box: { size: number } | null): Record<string, unknown> => ({ errorCode: 0, throttleTimeMs: 0, secret: 0, box, extras: [] });
    const encodeResponse = (version: number, msg: unknown): string => {
      const writer = new Writer();
      widget.encodeWidgetResponse(writer, version, msg);
      return writer.toBuffer().toString('hex');
    };
    // v1: Box is not nullable, so no marker, and null cannot be sent.
    assert.equal(encodeResponse(1, response({ size: 7 })), '0000' + '00000000' + '00000000' + '00000007');
    assert.throws(() => encodeResponse(1, response(null)), /box is null but is not nullable in this version/);
    // v2 (Kafka's MessageDataGenerator): -1 for null, 1 then the struct for a value.
    const present = hex('0000 00000000 00000000  01 00000007 00  01 00');
    const absent = hex('0000 00000000 00000000  ff  01 00');
    assert.equal(encodeResponse(2, response({ size: 7 })), present.toString('hex'));
    assert.equal(encodeResponse(2, response(null)), absent.toString('hex'));
    assert.deepEqual(widget.decodeWidgetResponse(new Reader(present), 2), response({ size: 7 }));
    assert.deepEqual(widget.decodeWidgetResponse(new Reader(absent), 2), response(null));
    // Any negative marker means null, as in Kafka's reader.
    assert.deepEqual(widget.decodeWidgetResponse(new Reader(hex('0000 00000000 00000000  80  01 00')), 2), response(null));
    // v0 lacks Box: null is a non-default value (the default is an empty Box), so it is refused.
    assert.throws(() => encodeResponse(0, response(null)), /box has a non-default value/);
  });

  it('rejects versions outside validVersions', () => {
    assert.throws(
      () => widget.decodeWidgetRequest(new Reader(Buffer.alloc(8)), 3),
      (error: unknown) => error instanceof KafkaDecodeError && /WidgetRequest version 3 is not supported \(valid versions 0-2\)/.test(error.message),
    );
    assert.throws(() => encode(-1, message), RangeError);
  });

  it('prints the grammar of each distinct version once', () => {
    const text = renderAll(join(dir, 'spec')).get('widget.ts') ?? '';
    assert.match(text, /^\/\/ GENERATED by src\/protocol\/kafka\/gen\/gen-messages\.ts/);
    assert.match(text, /apache\/kafka commit 0123456789abcdef0123456789abcdef01234567/);
    assert.match(text, / \* Widget Request \(Version: 0\) => url port epoch legacy \[parties\] \[labels\] \[more_labels\]\n/);
    assert.match(text, / \* Widget Request \(Version: 2\) => url port ratio epoch blob legacy owner \[parties\] \[labels\] \[more_labels\] TAG_BUFFER\n/);
    assert.match(text, / \* {3}port => UINT16\n/);
    assert.match(text, / \* {3}legacy => STRING\n/);
    assert.match(text, / \* {5}note => COMPACT_NULLABLE_STRING \(tagged field 0\)\n/);
    assert.match(text, / \* {3}hint => INT32 \(tagged field 5\)\n/);
    assert.match(text, / \* Widget Response \(Version: 1\) => error_code throttle_time_ms secret box\n/);
  });

  it('prefixes nested struct names with the message name, once', () => {
    const text = renderAll(join(dir, 'spec')).get('widget.ts') ?? '';
    assert.match(text, /export interface WidgetRequestParty \{/);
    assert.match(text, /export interface WidgetRequestLabel \{/);
    // A type already named after its message keeps its name, and the doubled spelling is an alias.
    assert.match(text, /export interface WidgetResponseExtra \{/);
    assert.match(text, /export type WidgetResponseWidgetResponseExtra = WidgetResponseExtra;/);
  });
});

describe('gen-messages refuses what it cannot generate correctly', () => {
  function renderWith(field: string): () => void {
    return () => {
      const { dir, cleanup } = tmpDir('meridian-gen-');
      try {
        writeSpec(dir, {
          'WidgetRequest.json': WIDGET_REQUEST.replace('"fields": [\n', `"fields": [\n    ${field},\n`),
          'WidgetResponse.json': WIDGET_RESPONSE,
        });
        renderAll(dir);
      } finally {
        cleanup();
      }
    };
  }

  it('names the file and field of an unknown type', () => {
    assert.throws(renderWith('{ "name": "Odd", "type": "int128", "versions": "0+" }'), /WidgetRequest\.json field Odd: unsupported type int128/);
  });

  it('rejects tagged nullable structs and null defaults on non-nullable fields', () => {
    // Kafka marks a tagged nullable struct with a varint, not an INT8; no schema uses one yet.
    const tagged = '{ "name": "Maybe", "type": "Party", "versions": "2+", "nullableVersions": "2+", "taggedVersions": "2+", "tag": 9 }';
    assert.throws(renderWith(tagged), /WidgetRequest\.json field Maybe: tagged nullable structs are not supported/);
    assert.throws(renderWith('{ "name": "Maybe", "type": "Party", "versions": "0+", "default": "null" }'), /a struct can only default to null, and only where nullable/);
    assert.throws(renderWith('{ "name": "Name", "type": "string", "versions": "0+", "default": "null" }'), /default null on a field that is never nullable/);
  });

  it('rejects a request without its response', () => {
    const { dir, cleanup } = tmpDir('meridian-gen-');
    try {
      writeSpec(dir, { 'WidgetRequest.json': WIDGET_REQUEST });
      assert.throws(() => renderAll(dir), /WidgetRequest\.json has no WidgetResponse\.json/);
    } finally {
      cleanup();
    }
  });
});

describe('gen-messages command line', () => {
  it('writes one file per API and index.ts, and removes only stale generated files', () => {
    const { dir, cleanup } = tmpDir('meridian-gen-');
    try {
      const spec = join(dir, 'spec');
      const out = join(dir, 'messages');
      writeSpec(spec, { 'WidgetRequest.json': WIDGET_REQUEST, 'WidgetResponse.json': WIDGET_RESPONSE });
      writeSpec(out, {
        'gadget.ts': '// GENERATED by src/protocol/kafka/gen/gen-messages.ts from an API that is gone\n',
        'codec-support.ts': '// hand-written\n',
      });
      const run = spawnSync(process.execPath, ['--import', 'tsx', GENERATOR, spec, out], { encoding: 'utf8' });
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, /wrote 2 files/);
      assert.ok(existsSync(join(out, 'widget.ts')));
      assert.match(readFileSync(join(out, 'index.ts'), 'utf8'), /export const widgetCodec: MessageCodec<WidgetRequest, WidgetResponse>/);
      assert.ok(!existsSync(join(out, 'gadget.ts')), 'a stale generated file is removed');
      assert.equal(readFileSync(join(out, 'codec-support.ts'), 'utf8'), '// hand-written\n');
    } finally {
      cleanup();
    }
  });
});
