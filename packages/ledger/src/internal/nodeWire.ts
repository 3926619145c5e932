/**
 * What a ledger node puts in the content store and on gossip.
 *
 * A block object is the canonical `[blockBytes, parentObjectId]` (the genesis names no parent: an
 * empty byte string). Its store id is the SHA-256 of those bytes, so an object names its whole
 * ancestry, and a node that holds one object id can walk back to the genesis through store sync alone.
 * A block is gossiped as its object, so a receiver stores exactly the bytes its peers serve.
 *
 * A head announcement is `[objectId, height, timeMs]`: the time makes each announcement distinct,
 * so gossip's duplicate filter never swallows a repeated announcement of an unchanged head.
 */
import { Canonical, Store } from "@weft/core"
import { Either, Schema } from "effect"
import * as Block from "../Block.js"
import { LedgerError, make as fail } from "../LedgerError.js"

/** Gossip topics of a chain. */
export const topics = (chainId: string) => ({
  blocks: `weft/ledger/${chainId}/blocks`,
  transactions: `weft/ledger/${chainId}/txs`,
  heads: `weft/ledger/${chainId}/heads`,
  offers: `weft/ledger/${chainId}/offers`
})

const ObjectId = Schema.Uint8ArrayFromSelf.pipe(Schema.filter((bytes) => bytes.length === 0 || bytes.length === Store.idBytes || "expected 0 or 32 bytes"))

const BlockObject = Schema.Tuple(Schema.Uint8ArrayFromSelf, ObjectId)
const HeadAnnouncement = Schema.Tuple(
  Schema.Uint8ArrayFromSelf.pipe(Schema.filter((bytes) => bytes.length === Store.idBytes || "expected 32 bytes")),
  Schema.Int.pipe(Schema.nonNegative()),
  Schema.Int.pipe(Schema.nonNegative())
)

/** A decoded block object: the block's bytes and its parent's object id (none for the genesis). */
export interface BlockObject {
  readonly blockBytes: Uint8Array
  readonly parent: Store.Id | undefined
}

/** A decoded head announcement. */
export interface Head {
  readonly object: Store.Id
  readonly height: number
  readonly timeMs: number
}

const malformed = (what: string) => (error: { readonly message?: string; readonly detail?: string | undefined }) =>
  fail("Malformed", `${what}: ${(error.detail ?? error.message ?? "does not decode").slice(0, 300)}`)

/** The object of a block whose parent's object is `parent` (undefined for the genesis). */
export const encodeObject = (block: Block.Block, parent: Store.Id | undefined): Either.Either<Uint8Array, LedgerError> =>
  Either.flatMap(Block.encode(block), (bytes) =>
    Either.mapLeft(Canonical.encode([bytes, parent ?? new Uint8Array(0)]), malformed("block object")))

/** Decodes untrusted object bytes (at most `bytesMax`). */
export const decodeObject = (bytes: Uint8Array, bytesMax: number): Either.Either<BlockObject, LedgerError> =>
  Canonical.decode(bytes, bytesMax).pipe(
    Either.mapLeft(malformed("block object")),
    Either.flatMap((value) => Either.mapLeft(Schema.decodeUnknownEither(BlockObject)(value), malformed("block object"))),
    Either.map(([blockBytes, parent]) => ({ blockBytes, parent: parent.length === 0 ? undefined : (parent as Store.Id) }))
  )

/** A head announcement's bytes. */
export const encodeHead = (head: Head): Uint8Array => Either.getOrThrow(Canonical.encode([head.object, head.height, head.timeMs]))

/** Decodes an untrusted head announcement. */
export const decodeHead = (bytes: Uint8Array): Either.Either<Head, LedgerError> =>
  Canonical.decode(bytes, 256).pipe(
    Either.mapLeft(malformed("head announcement")),
    Either.flatMap((value) => Either.mapLeft(Schema.decodeUnknownEither(HeadAnnouncement)(value), malformed("head announcement"))),
    Either.map(([object, height, timeMs]) => ({ object: object as Store.Id, height, timeMs }))
  )

/** A bounded insertion-ordered map: past `max` entries the oldest goes. */
export class Recent<K, V> {
  private readonly map = new Map<K, V>()
  constructor(private readonly max: number) {}
  get size(): number {
    return this.map.size
  }
  get(key: K): V | undefined {
    return this.map.get(key)
  }
  has(key: K): boolean {
    return this.map.has(key)
  }
  set(key: K, value: V): void {
    this.map.delete(key)
    this.map.set(key, value)
    while (this.map.size > this.max) {
      const oldest = this.map.keys().next()
      if (oldest.done === true) break
      this.map.delete(oldest.value)
    }
  }
  delete(key: K): void {
    this.map.delete(key)
  }
  values(): IterableIterator<V> {
    return this.map.values()
  }
}

/** Whether a block rejection proves the sender wrong whatever this node's view (so gossip penalizes it). */
export const provablyBad = (error: LedgerError): boolean =>
  !["FutureBlock", "UnknownParent", "Duplicate", "Stale", "MempoolFull", "Replay", "NonceGap", "CoinNotFound", "CoinLocked", "DoubleSpend",
    "InsufficientFunds", "PendingNotFound", "RendezvousNotFound", "UnknownKey", "CoinExists", "NothingToClaim", "NotOwner", "NotRecipient",
    "AmountMismatch", "BadSecret"].includes(error.reason)

export { LedgerError }
