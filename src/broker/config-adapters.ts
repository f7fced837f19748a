/**
 * From the broker config to what the components take: the composition root reads
 * BrokerConfig, the components (tiered/, replication/) never import config/.
 *
 * The tiered store's key prefix always ends with the region, so regions may share a bucket
 * or directory.
 */
import path from 'node:path';
import type { BrokerConfig } from '../config/schema.js';
import { ErrorCode, MeridianError } from '../errors.js';
import { createBlobStore, type BlobStore, type BlobStoreConfig } from '../tiered/blobstore/index.js';
import type { TieredPolicy } from '../tiered/partition-tier.js';

/** The loader refuses a store without these already (schema `requiredWhen`); a config built by hand may still lack them. */
function need(value: string | null, field: string, type: string): string {
  if (value === null) throw new MeridianError(ErrorCode.BadConfig, `tiered.store.${field} is required when tiered.store.type is ${type}`);
  return value;
}

export function blobStoreConfigFrom(config: BrokerConfig): BlobStoreConfig {
  const s = config.tiered.store;
  const prefix = [s.prefix.replace(/\/+$/, ''), config.region].filter(Boolean).join('/');
  switch (s.type) {
    case 'fs':
      return { type: 'fs', dir: path.resolve(s.dir, prefix) };
    case 's3':
      return {
        type: 's3',
        bucket: need(s.bucket, 'bucket', 's3'),
        prefix,
        region: s.region,
        endpoint: s.endpoint ?? undefined,
        forcePathStyle: s.forcePathStyle,
        credentials: s.accessKeyId && s.secretAccessKey ? { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey } : undefined,
      };
    case 'gcs':
      return { type: 'gcs', bucket: need(s.bucket, 'bucket', 'gcs'), prefix, projectId: s.projectId ?? undefined, apiEndpoint: s.endpoint ?? undefined, keyFilename: s.keyFilename ?? undefined };
    case 'azure':
      if (s.connectionString === null && s.accountName === null) throw new MeridianError(ErrorCode.BadConfig, 'tiered.store needs connectionString or accountName when type is azure');
      return {
        type: 'azure',
        container: need(s.bucket, 'bucket', 'azure (the container)'),
        prefix,
        connectionString: s.connectionString ?? undefined,
        account: s.accountName ?? undefined,
        accountKey: s.accountKey ?? undefined,
        endpoint: s.endpoint ?? undefined,
      };
  }
}

export function createStoreFrom(config: BrokerConfig): Promise<BlobStore> {
  return createBlobStore(blobStoreConfigFrom(config));
}

/** TieredStorage's offload and local-retention policy. */
export function tieredPolicyFrom(config: BrokerConfig): TieredPolicy {
  const t = config.tiered;
  return {
    onSeal: t.offload.onSeal,
    localBytesThreshold: t.offload.localBytesThreshold,
    minAgeMs: t.offload.minAgeMs,
    localRetentionBytes: t.localRetention.bytes,
    localRetentionMs: t.localRetention.ms,
    deletionLagMs: t.deletionLagMs,
    checkIntervalMs: t.checkIntervalMs,
    uploadConcurrency: t.uploadConcurrency,
    maxBytesPerSec: t.offload.maxBytesPerSec,
  };
}
