/**
 * Kafka codec 1: a gzip stream (RFC 1952; Java's GZIPOutputStream, librdkafka and KafkaJS
 * all write one member). zlib stops inflating once the output passes `maxOutputLength`, so
 * a bomb costs at most the budget.
 */
import zlib from 'node:zlib';
import { corrupt, overBudget } from './output-budget.js';

export function gunzipBounded(data: Buffer, maxBytes: number): Buffer {
  try {
    return zlib.gunzipSync(data, { maxOutputLength: maxBytes });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw overBudget('gzip', maxBytes);
    throw corrupt('gzip', `not a valid gzip stream (${(err as Error).message})`, err);
  }
}
