/**
 * How ledger state lives in the store's tables: ids as their 32 raw bytes (so lmdb orders them like
 * the hex form), records in the canonical encoding, decoded through the same Schemas as any untrusted
 * bytes. A table value that does not decode is a broken invariant (the store wrote it), so a defect.
 * `reader` and `writeDiff` mirror `State.reader` and `State.applyDiff` over tables.
 */
import { Canonical } from "@weft/core"
import { Either, HashMap, HashSet, Schema } from "effect"
import * as Amount from "../Amount.js"
import type * as Diff from "../Diff.js"
import * as Id from "../Id.js"
import { AmountSchema, Coin, IdSchema, Keys, Pending, Rendezvous } from "../Records.js"
import * as State from "../State.js"
import type { Table, Tables } from "./storeTables.js"

/** The canonical bytes of a value the store built itself (encoding cannot fail for it). */
export const encode = (value: unknown): Uint8Array => Either.getOrThrow(Canonical.encode(value))

/** A decoder of the store's own records: any mismatch throws (a defect). */
export const decoder = <A, I>(schema: Schema.Schema<A, I>) => {
  const decodeSchema = Schema.decodeUnknownSync(schema, { onExcessProperty: "error" })
  return (bytes: Uint8Array): A => decodeSchema(Either.getOrThrow(Canonical.decode(bytes, bytes.length)))
}

/** A 4-byte big-endian unsigned integer (heights and positions sort numerically). */
export const u32 = (value: number): Uint8Array => {
  if (!Number.isSafeInteger(value) || value < 0 || value > 0xffff_ffff) throw new Error(`ledger store: ${value} is not a 32-bit height or index`)
  const bytes = new Uint8Array(4)
  new DataView(bytes.buffer).setUint32(0, value)
  return bytes
}

/** Reads a `u32` at `offset`. */
export const readU32 = (bytes: Uint8Array, offset = 0): number => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset)

export { concat } from "./bytes.js"

/** Byte strings with the same content. */
export const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((byte, at) => byte === b[at])

/** Keys of the `meta` table. */
export const metaKey = {
  genesis: new TextEncoder().encode("genesis"),
  params: new TextEncoder().encode("params"),
  head: new TextEncoder().encode("head"),
  minted: new TextEncoder().encode("minted"),
  indexed: new TextEncoder().encode("indexed")
} as const

const decodeCoin = decoder(Coin)
const decodePending = decoder(Pending)
const decodeRendezvous = decoder(Rendezvous)
const decodeKeys = decoder(Keys)
const decodeAmount = decoder(AmountSchema)
const decodeNonce = decoder(Schema.Int.pipe(Schema.nonNegative()))
const present = new Uint8Array([1])

const optional = <A>(bytes: Uint8Array | undefined, decode: (bytes: Uint8Array) => A): A | undefined =>
  bytes === undefined ? undefined : decode(bytes)

/** The total ever minted, as stored. */
export const minted = (tables: Tables): Amount.Amount => optional(tables.get("meta", metaKey.minted), decodeAmount) ?? Amount.zero

/** A `State.Reader` over the tables (inside a transaction it sees the transaction's writes). */
export const reader = (tables: Tables): State.Reader => ({
  coin: (id) => optional(tables.get("coins", Id.toBytes(id)), decodeCoin),
  isSpent: (id) => tables.get("spent", Id.toBytes(id)) !== undefined,
  pending: (id) => optional(tables.get("pending", Id.toBytes(id)), decodePending),
  rendezvous: (id) => optional(tables.get("rendezvous", Id.toBytes(id)), decodeRendezvous),
  nonce: (account) => optional(tables.get("nonces", Id.toBytes(account)), decodeNonce) ?? 0,
  keys: (account) => optional(tables.get("keys", Id.toBytes(account)), decodeKeys),
  unclaimed: (account) => optional(tables.get("unclaimed", Id.toBytes(account)), decodeAmount) ?? Amount.zero
})

const putRecords = <E extends { readonly id: Id.Id }>(tables: Tables, table: Table, entries: ReadonlyArray<E>) => {
  for (const { id, ...record } of entries) tables.put(table, Id.toBytes(id), encode(record))
}

const removeIds = (tables: Tables, table: Table, ids: ReadonlyArray<Id.Id>) => {
  for (const id of ids) tables.remove(table, Id.toBytes(id))
}

/** Writes a diff as `State.applyDiff` applies it: puts before removals, later entries win. */
export const writeDiff = (tables: Tables, diff: Diff.Diff): void => {
  putRecords(tables, "coins", diff.coinsPut)
  removeIds(tables, "coins", diff.coinsSpent)
  for (const id of diff.coinsSpent) tables.put("spent", Id.toBytes(id), present)
  putRecords(tables, "pending", diff.pendingPut)
  removeIds(tables, "pending", diff.pendingRemoved)
  putRecords(tables, "rendezvous", diff.rendezvousPut)
  removeIds(tables, "rendezvous", diff.rendezvousRemoved)
  for (const { account, nonce } of diff.nonces) tables.put("nonces", Id.toBytes(account), encode(nonce))
  for (const { account, ...keys } of diff.keysPut) tables.put("keys", Id.toBytes(account), encode(keys))
  for (const { account, amount } of diff.unclaimed) {
    if (amount === 0n) tables.remove("unclaimed", Id.toBytes(account))
    else tables.put("unclaimed", Id.toBytes(account), encode(amount))
  }
  if (diff.minted !== undefined) tables.put("meta", metaKey.minted, encode(diff.minted))
}

const mapOf = <V>(tables: Tables, table: Table, decode: (bytes: Uint8Array) => V): HashMap.HashMap<Id.Id, V> =>
  HashMap.fromIterable(tables.range(table).map(({ key, value }) => [Id.fromBytes(key), decode(value)] as const))

/** The whole state as a value (one pass over every state table). */
export const snapshot = (tables: Tables): State.State => ({
  coins: mapOf(tables, "coins", decodeCoin),
  spent: HashSet.fromIterable(tables.range("spent").map(({ key }) => Id.fromBytes(key))),
  pending: mapOf(tables, "pending", decodePending),
  rendezvous: mapOf(tables, "rendezvous", decodeRendezvous),
  nonces: mapOf(tables, "nonces", decodeNonce),
  keys: mapOf(tables, "keys", decodeKeys),
  unclaimed: mapOf(tables, "unclaimed", decodeAmount),
  minted: minted(tables)
})

const sortedEntries = <V>(map: HashMap.HashMap<Id.Id, V>) =>
  Array.from(map).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([id, value]) => [id, value] as const)

/** One canonical byte string per state value: equal states, equal bytes (for comparing stores and folds). */
export const encodeState = (state: State.State): Uint8Array =>
  encode({
    coins: sortedEntries(state.coins),
    spent: Array.from(state.spent).sort(),
    pending: sortedEntries(state.pending),
    rendezvous: sortedEntries(state.rendezvous),
    nonces: sortedEntries(state.nonces),
    keys: sortedEntries(state.keys),
    unclaimed: sortedEntries(state.unclaimed),
    minted: state.minted
  })

/** The id schema, re-exported for the store's own records. */
export { IdSchema }
