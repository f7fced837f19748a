/**
 * The blob store layer's public surface: the interface and its error, and `createBlobStore`,
 * which the composition root calls with the `tiered.store` section of the broker config.
 *
 * The cloud backends are loaded only when configured (`import()` in createBlobStore): their
 * SDKs (AWS, Google Cloud, Azure) cost about 1 s of CPU and tens of MiB to load, which every
 * broker start and every CLI command paid before, whatever its store (or none). Import a
 * backend's class from its own module (./s3-blob-store.js, ...) where it is needed by name.
 */
import type { AzureBlobStoreOptions } from './azure-blob-store.js';
import type { BlobStore } from './blob-store.js';
import { FsBlobStore, type FsBlobStoreOptions } from './fs-blob-store.js';
import type { GcsBlobStoreOptions } from './gcs-blob-store.js';
import type { S3BlobStoreOptions } from './s3-blob-store.js';

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
export { FsBlobStore };
export type { AzureBlobStoreOptions, FsBlobStoreOptions, GcsBlobStoreOptions, S3BlobStoreOptions };

export type BlobStoreConfig =
  | ({ type: 'fs' } & FsBlobStoreOptions)
  | ({ type: 's3' } & S3BlobStoreOptions)
  | ({ type: 'gcs' } & GcsBlobStoreOptions)
  | ({ type: 'azure' } & AzureBlobStoreOptions);

/** The store `config` names; a cloud backend's module (and SDK) is loaded here, on first use. */
export async function createBlobStore(config: BlobStoreConfig): Promise<BlobStore> {
  switch (config.type) {
    case 'fs':
      return new FsBlobStore(config);
    case 's3':
      return new (await import('./s3-blob-store.js')).S3BlobStore(config);
    case 'gcs':
      return new (await import('./gcs-blob-store.js')).GcsBlobStore(config);
    case 'azure':
      return new (await import('./azure-blob-store.js')).AzureBlobStore(config);
    default: {
      const unknown: never = config;
      throw new TypeError(`unknown blob store type ${JSON.stringify((unknown as { type?: unknown }).type)}`);
    }
  }
}
