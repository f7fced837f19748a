/**
 * The topics of a "consumer" group member's subscription, read from the metadata bytes it
 * joined with. The coordinator otherwise treats those bytes as opaque; only OffsetDelete
 * needs them, to refuse deleting offsets of a topic the active group consumes (Kafka's
 * GroupMetadata.isSubscribedToTopic).
 *
 * The bytes are Kafka's ConsumerProtocolSubscription, never flexible (Kafka's
 * ConsumerProtocolSubscription.json):
 *
 *   version INT16 | topics ARRAY(STRING) | user_data NULLABLE_BYTES | owned_partitions (v1+) | ...
 *
 * Every version starts with the same two fields, so a version newer than Kafka's 3 still
 * reads here, as Kafka's ConsumerProtocol does. Pure: bytes in, topics out.
 */

/** The subscribed topics, or null when the bytes are not a subscription (Kafka then treats the group as subscribed to nothing). */
export function subscribedTopicsOf(metadata: Buffer): string[] | null {
  if (metadata.length < 6 || metadata.readInt16BE(0) < 0) return null;
  const count = metadata.readInt32BE(2);
  if (count < 0) return null;
  const topics: string[] = [];
  let pos = 6;
  for (let i = 0; i < count; i++) {
    if (pos + 2 > metadata.length) return null;
    const length = metadata.readInt16BE(pos);
    pos += 2;
    if (length < 0 || pos + length > metadata.length) return null;
    topics.push(metadata.toString('utf8', pos, pos + length));
    pos += length;
  }
  return topics;
}
