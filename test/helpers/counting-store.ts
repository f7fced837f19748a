/**
 * A BlobStore that forwards every call to a real one and counts how each kind of call ended.
 * Not a mock: the bytes go to the real store. A test reads the counts to prove that a path
 * it expects to fail was really taken (the offloader tried to upload, retention tried to
 * write the manifest) before it asserts that nothing changed.
 */
import type { BlobOp, BlobStore } from '../../src/tiered/blobstore/blob-store.js';

export interface CallCounts {
  ok: number;
  failed: number;
}

export function countingStore(inner: BlobStore): { store: BlobStore; counts: (op: BlobOp) => CallCounts } {
  const counts = new Map<BlobOp, CallCounts>();
  const count = <T>(op: BlobOp, p: Promise<T>): Promise<T> => {
    const c = counts.get(op) ?? { ok: 0, failed: 0 };
    counts.set(op, c);
    return p.then(
      (v) => {
        c.ok++;
        return v;
      },
      (err: unknown) => {
        c.failed++;
        throw err;
      },
    );
  };
  const store: BlobStore = {
    name: inner.name,
    put: (key, body, opts) => count('put', inner.put(key, body, opts)),
    get: (key, opts) => count('get', inner.get(key, opts)),
    head: (key, opts) => count('head', inner.head(key, opts)),
    list: (prefix, opts) => count('list', inner.list(prefix, opts)),
    delete: (key, opts) => count('delete', inner.delete(key, opts)),
    close: () => inner.close(),
  };
  return { store, counts: (op) => ({ ...(counts.get(op) ?? { ok: 0, failed: 0 }) }) };
}
