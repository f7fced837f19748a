/**
 * The partitions a "consumer" group member was assigned, read from the assignment bytes of
 * its SyncGroup, for GET /v1/groups/:id. The bytes are Kafka's ConsumerProtocolAssignment,
 * never flexible (Kafka's ConsumerProtocolAssignment.json):
 *
 *   version INT16 | assigned_partitions ARRAY(topic STRING, partitions ARRAY(INT32)) | user_data NULLABLE_BYTES
 *
 * Every version starts with these fields. Pure: bytes in, partitions out; null when the
 * bytes are not an assignment (another protocol type, or none yet).
 */
export function assignedPartitionsOf(bytes: Buffer): Array<{ topic: string; partitions: number[] }> | null {
  if (bytes.length < 6 || bytes.readInt16BE(0) < 0) return null;
  const count = bytes.readInt32BE(2);
  if (count < 0) return null;
  const out: Array<{ topic: string; partitions: number[] }> = [];
  let pos = 6;
  for (let i = 0; i < count; i++) {
    if (pos + 2 > bytes.length) return null;
    const length = bytes.readInt16BE(pos);
    pos += 2;
    if (length < 0 || pos + length + 4 > bytes.length) return null;
    const topic = bytes.toString('utf8', pos, pos + length);
    pos += length;
    const n = bytes.readInt32BE(pos);
    pos += 4;
    if (n < 0 || pos + 4 * n > bytes.length) return null;
    const partitions: number[] = [];
    for (let j = 0; j < n; j++, pos += 4) partitions.push(bytes.readInt32BE(pos));
    out.push({ topic, partitions });
  }
  return out;
}
