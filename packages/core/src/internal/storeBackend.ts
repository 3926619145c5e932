/**
 * What a content-store backend does: synchronous reads and one ACID transaction per logical write.
 * The store's logic (hashing, limits, totals) lives in `storeCore.ts` and is the same for every backend;
 * a backend only keeps bytes and pin counts under 32-byte keys.
 */

/** What a store holds, counted once when it opens. */
export interface Totals {
  objects: number
  bytes: number
  /** Objects with at least one pin. */
  pinned: number
}

/** The view of the data inside one write transaction. */
export interface Transaction {
  readonly exists: (key: Uint8Array) => boolean
  readonly put: (key: Uint8Array, bytes: Uint8Array) => void
  readonly pinCount: (key: Uint8Array) => number
  /** Sets an object's pin count; 0 removes the pin entry. */
  readonly setPinCount: (key: Uint8Array, count: number) => void
  /** Removes every object without a pin; returns what went. */
  readonly removeUnpinned: () => { readonly objects: number; readonly bytes: number }
}

/** A storage backend. Every method may throw on a backend failure; the store maps that to StoreError("Backend"). */
export interface Backend {
  /** A copy of the bytes stored under `key` (the caller may keep or change it). */
  readonly read: (key: Uint8Array) => Uint8Array | undefined
  readonly exists: (key: Uint8Array) => boolean
  readonly pinCount: (key: Uint8Array) => number
  /**
   * Runs `body` as one ACID transaction: all its writes land, or none (a throw aborts). The store checks
   * every limit before it writes, so a body only throws on a backend failure.
   */
  readonly transaction: <A>(body: (transaction: Transaction) => A) => A
  /** Counts what the backend holds (once, at open). */
  readonly scan: () => Totals
  readonly close: () => Promise<void>
  /** Writes bytes under a key with no check at all: tests use it to corrupt an object. */
  readonly writeUnchecked: (key: Uint8Array, bytes: Uint8Array) => void
}

const keyOf = (key: Uint8Array): string => Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("latin1")

interface Entry {
  bytes: Uint8Array
  pins: number
}

/** A backend in a Map: writes cannot fail, so running the body is the transaction. */
export const memory = (): Backend => {
  const entries = new Map<string, Entry>()
  const transaction: Transaction = {
    exists: (key) => entries.has(keyOf(key)),
    put: (key, bytes) => void entries.set(keyOf(key), { bytes: bytes.slice(), pins: 0 }),
    pinCount: (key) => entries.get(keyOf(key))?.pins ?? 0,
    setPinCount: (key, count) => {
      const entry = entries.get(keyOf(key))
      if (entry !== undefined) entry.pins = count
    },
    removeUnpinned: () => {
      let objects = 0
      let bytes = 0
      for (const [key, entry] of entries) {
        if (entry.pins > 0) continue
        entries.delete(key)
        objects++
        bytes += entry.bytes.length
      }
      return { objects, bytes }
    }
  }
  return {
    read: (key) => entries.get(keyOf(key))?.bytes.slice(),
    exists: transaction.exists,
    pinCount: transaction.pinCount,
    transaction: (body) => body(transaction),
    scan: () => ({ objects: 0, bytes: 0, pinned: 0 }),
    close: () => Promise.resolve(entries.clear()),
    writeUnchecked: (key, bytes) => {
      const entry = entries.get(keyOf(key))
      entries.set(keyOf(key), { bytes: bytes.slice(), pins: entry?.pins ?? 0 })
    }
  }
}
