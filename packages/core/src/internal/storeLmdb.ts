/**
 * The lmdb backend: one environment with two named databases, `objects` (id → bytes) and `pins`
 * (id → pin count, a 4-byte big-endian integer; absent means unpinned). Every logical write is one
 * `transactionSync`, which lmdb commits atomically and durably before it returns.
 */
import { open, type Database } from "lmdb"
import type { Backend, Totals, Transaction } from "./storeBackend.js"

/** The names of the databases inside the environment (also what a test opens to corrupt a value). */
export const objectsName = "objects"
export const pinsName = "pins"

type Db = Database<Uint8Array, Uint8Array>

const binary = { encoding: "binary", keyEncoding: "binary" } as const

const readCount = (value: Uint8Array | undefined): number =>
  value === undefined || value.length !== 4 ? 0 : new DataView(value.buffer, value.byteOffset, 4).getUint32(0)

const countBytes = (count: number): Uint8Array => {
  const bytes = new Uint8Array(4)
  new DataView(bytes.buffer).setUint32(0, count)
  return bytes
}

const transactionOf = (objects: Db, pins: Db): Transaction => ({
  exists: (key) => objects.doesExist(key),
  put: (key, bytes) => objects.putSync(key, bytes),
  pinCount: (key) => readCount(pins.get(key)),
  setPinCount: (key, count) => void (count === 0 ? pins.removeSync(key) : pins.putSync(key, countBytes(count))),
  removeUnpinned: () => {
    // Collected first: removing under a live cursor is not something to rely on.
    const doomed: Array<Uint8Array> = []
    for (const key of objects.getKeys()) if (!pins.doesExist(key)) doomed.push(Uint8Array.from(key as Uint8Array))
    let bytes = 0
    for (const key of doomed) {
      bytes += objects.getBinaryFast(key)?.length ?? 0
      objects.removeSync(key)
    }
    return { objects: doomed.length, bytes }
  }
})

const scan = (objects: Db, pins: Db): Totals => {
  const totals: Totals = { objects: 0, bytes: 0, pinned: 0 }
  for (const key of objects.getKeys()) {
    totals.objects++
    // The fast read does not copy: only its length is used, before the next read.
    totals.bytes += objects.getBinaryFast(key as Uint8Array)?.length ?? 0
    if (pins.doesExist(key as Uint8Array)) totals.pinned++
  }
  return totals
}

/** Opens (creating if needed) the store's lmdb environment in `dir`. Throws if lmdb cannot open it. */
export const lmdb = (dir: string): Backend => {
  const root = open<Uint8Array, Uint8Array>({ path: dir, maxDbs: 2, ...binary })
  const objects: Db = root.openDB({ name: objectsName, ...binary })
  const pins: Db = root.openDB({ name: pinsName, ...binary })
  const transaction = transactionOf(objects, pins)
  return {
    read: (key) => objects.getBinary(key),
    exists: transaction.exists,
    pinCount: transaction.pinCount,
    transaction: (body) => objects.transactionSync(() => body(transaction)),
    scan: () => scan(objects, pins),
    close: () => root.close(),
    writeUnchecked: (key, bytes) => objects.putSync(key, bytes)
  }
}
