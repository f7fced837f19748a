/**
 * The blob store layer's public surface: the interface and its error, the four backends,
 * and `createBlobStore`, which the composition root calls with the `tiered.store` section
 * of the broker config.
 */
import { AzureBlobStore, type AzureBlobStoreOptions } from './azure-blob-store.js';
import type { BlobStore } from './blob-store.js';
import { FsBlobStore, type FsBlobStoreOptions } from './fs-blob-store.js';
import { GcsBlobStore, type GcsBlobStoreOptions } from './gcs-blob-store.js';
import { S3BlobStore, type S3BlobStoreOptions } from './s3-blob-store.js';

export {
  BlobErrorCode,
  BlobStoreError,
  isBlobAbort,
  isBlobNotFound,
  type BlobErrorKind,
  type BlobStore,
  type GetOptions,
  type ListOptions,
  type ListPage,
  type PutOptions,
} from './blob-store.js';
export { AzureBlobStore, FsBlobStore, GcsBlobStore, S3BlobStore };
export type { AzureBlobStoreOptions, FsBlobStoreOptions, GcsBlobStoreOptions, S3BlobStoreOptions };

export type BlobStoreConfig =
  | ({ type: 'fs' } & FsBlobStoreOptions)
  | ({ type: 's3' } & S3BlobStoreOptions)
  | ({ type: 'gcs' } & GcsBlobStoreOptions)
  | ({ type: 'azure' } & AzureBlobStoreOptions);

export function createBlobStore(config: BlobStoreConfig): BlobStore {
  switch (config.type) {
    case 'fs':
      return new FsBlobStore(config);
    case 's3':
      return new S3BlobStore(config);
    case 'gcs':
      return new GcsBlobStore(config);
    case 'azure':
      return new AzureBlobStore(config);
    default: {
      const unknown: never = config;
      throw new TypeError(`unknown blob store type ${JSON.stringify((unknown as { type?: unknown }).type)}`);
    }
  }
}
