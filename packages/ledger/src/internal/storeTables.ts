/**
 * The ledger store's tables: named key-value maps with bytewise key order, and a transaction that
 * commits every write or none. Two backends: lmdb (one environment, one named database per table,
 * `transactionSync`: committed when it returns, flushed to disk just after) and memory (a journal of old values,
 * replayed backwards when the body throws). Keys and values are raw bytes; `storeCodec.ts` encodes.
 */
import { open, type Database } from "lmdb"

/** Every table, in the order lmdb opens them. */
export const tableNames = [
  "coins", "spent", "pending", "rendezvous", "nonces", "keys", "unclaimed", "meta",
  "headers", "blocks", "heights", "steps", "priors", "undo",
  "balances", "history"
] as const

/** A table's name. */
export type Table = (typeof tableNames)[number]

/** One stored entry. */
export interface Entry {
  readonly key: Uint8Array
  readonly value: Uint8Array
}

/** Keys from `start` (inclusive) to `end` (exclusive), at most `limit`. */
export interface Range {
  readonly start?: Uint8Array
  readonly end?: Uint8Array
  readonly limit?: number
}

/** Synchronous access to the tables. Callers never mutate what `get` and `range` return. */
export interface Tables {
  readonly get: (table: Table, key: Uint8Array) => Uint8Array | undefined
  readonly put: (table: Table, key: Uint8Array, value: Uint8Array) => void
  readonly remove: (table: Table, key: Uint8Array) => void
  readonly range: (table: Table, range?: Range) => Array<Entry>
  /** Visits every entry of a table in key order, without collecting them; `visit` must not keep the views it gets. */
  readonly scan: (table: Table, visit: (key: Uint8Array, value: Uint8Array) => void) => void
  readonly clear: (table: Table) => void
  /** Runs `body` as one atomic transaction (reads see its own writes); a throw writes nothing and is rethrown. */
  readonly transaction: <A>(body: () => A) => A
  readonly close: () => Promise<void>
}

/** Lowercase hex of any byte view (a Buffer from lmdb or a plain Uint8Array). */
export const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")

const fromHex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text, "hex"))

const inRange = (key: string, start: string | undefined, end: string | undefined) =>
  (start === undefined || key >= start) && (end === undefined || key < end)

/** Tables in memory, lost with the process: for tests and nodes that keep nothing. */
export const memory = (): Tables => {
  // Hex keys sort like their bytes: each byte is two fixed-width digits.
  const data = new Map<Table, Map<string, Uint8Array>>(tableNames.map((name) => [name, new Map()]))
  let journal: Array<readonly [Table, string, Uint8Array | undefined]> | undefined
  const mapOf = (table: Table) => data.get(table)!
  const remember = (table: Table, key: string) => journal?.push([table, key, mapOf(table).get(key)])
  const rollback = (entries: ReadonlyArray<readonly [Table, string, Uint8Array | undefined]>) => {
    for (let at = entries.length - 1; at >= 0; at--) {
      const [table, key, old] = entries[at]!
      if (old === undefined) mapOf(table).delete(key)
      else mapOf(table).set(key, old)
    }
  }
  return {
    get: (table, key) => mapOf(table).get(hex(key)),
    put: (table, key, value) => {
      const name = hex(key)
      remember(table, name)
      mapOf(table).set(name, Uint8Array.from(value))
    },
    remove: (table, key) => {
      const name = hex(key)
      remember(table, name)
      mapOf(table).delete(name)
    },
    range: (table, range = {}) => {
      const start = range.start === undefined ? undefined : hex(range.start)
      const end = range.end === undefined ? undefined : hex(range.end)
      const keys = Array.from(mapOf(table).keys()).filter((key) => inRange(key, start, end)).sort()
      return keys.slice(0, range.limit ?? keys.length).map((key) => ({ key: fromHex(key), value: mapOf(table).get(key)! }))
    },
    scan: (table, visit) => {
      const map = mapOf(table)
      for (const key of Array.from(map.keys()).sort()) visit(fromHex(key), map.get(key)!)
    },
    clear: (table) => {
      for (const key of mapOf(table).keys()) remember(table, key)
      mapOf(table).clear()
    },
    transaction: (body) => {
      if (journal !== undefined) return body()
      const entries: Array<readonly [Table, string, Uint8Array | undefined]> = []
      journal = entries
      try {
        return body()
      } catch (cause) {
        rollback(entries)
        throw cause
      } finally {
        journal = undefined
      }
    },
    close: () => Promise.resolve()
  }
}

const binary = { encoding: "binary", keyEncoding: "binary" } as const

const view = (bytes: Uint8Array): Uint8Array => new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/** Tables in an lmdb environment in `dir` (created if needed). Throws if lmdb cannot open it. */
export const lmdb = (dir: string): Tables => {
  const root = open<Uint8Array, Uint8Array>({ path: dir, maxDbs: tableNames.length, ...binary })
  const dbs = new Map<Table, Database<Uint8Array, Uint8Array>>(tableNames.map((name) => [name, root.openDB({ name, ...binary })]))
  const db = (table: Table) => dbs.get(table)!
  return {
    get: (table, key) => {
      const value = db(table).getBinary(key)
      return value === undefined ? undefined : view(value)
    },
    put: (table, key, value) => db(table).putSync(key, value),
    remove: (table, key) => void db(table).removeSync(key),
    range: (table, range = {}) =>
      // Copied: lmdb may reuse the buffers it hands out while the iteration goes on.
      Array.from(db(table).getRange(range), (entry) => ({ key: Uint8Array.from(entry.key), value: Uint8Array.from(entry.value) })),
    scan: (table, visit) => {
      for (const { key, value } of db(table).getRange()) visit(key, value)
    },
    clear: (table) => db(table).clearSync(),
    transaction: (body) => root.transactionSync(body),
    close: () => root.close()
  }
}
