/**
 * Catch-up through store sync: from a peer's head object, walk back parent by parent (each object
 * names its parent's object id), fetching what the content store lacks from that peer, until a block
 * whose parent this node knows; then import forward, oldest first.
 *
 * Bounded: a round fetches at most `catchUpFetchBlocksMax` objects (the next round walks the fetched
 * ones from the local store for free and fetches on), and the walk holds at most
 * `catchUpWalkBlocksMax` object ids. Everything a peer serves is checked: StoreSync re-hashes each
 * object (a mismatch penalizes the peer there), and each object must decode and carry a block that
 * passes `Block.decode`, else the catch-up fails with the block's typed reason.
 */
import type { NodeId as NodeIds } from "@weft/core"
import { Store, type StoreSync } from "@weft/core"
import { Clock, Effect, Either, Option } from "effect"
import * as Block from "../Block.js"
import * as Id from "../Id.js"
import { LedgerError, make as fail } from "../LedgerError.js"
import type { Chain } from "./nodeChain.js"
import { importBlock } from "./nodeChain.js"
import { refused } from "./nodeState.js"
import { decodeObject } from "./nodeWire.js"

type NodeId = NodeIds.NodeId

/** What catch-up needs beyond the chain side. */
export interface CatchUp extends Chain {
  readonly sync: StoreSync.StoreSync["Type"]
  /** Runs an import under the node's lock. */
  readonly locked: <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E>
}

/** The outcome of one round. */
type Round = { readonly _tag: "Reached"; readonly path: ReadonlyArray<Store.Id> } | { readonly _tag: "More" }

const objectBytesMax = (chain: Chain) => chain.runtime.limits.blockBytesMax + 1024

/** The local object, fetched from `peer` if missing (counted against the round's budget). */
const obtain = (context: CatchUp, peer: NodeId, object: Store.Id, budget: { fetched: number }) =>
  Effect.gen(function*() {
    const local = yield* context.store.get(object).pipe(Effect.orElseSucceed(() => Option.none<Uint8Array>()))
    if (Option.isSome(local)) return Option.some(local.value)
    if (budget.fetched >= context.runtime.limits.catchUpFetchBlocksMax) return Option.none()
    budget.fetched++
    const result = yield* context.sync.fetch(peer, [object], { pin: true }).pipe(
      Effect.mapError((error) => fail("Malformed", `store sync from ${peer.slice(0, 10)}: ${error.reason} ${error.detail ?? ""}`))
    )
    if (result.fetched.length === 0 && result.held.length === 0) {
      return yield* Effect.fail(fail("UnknownParent", `peer ${peer.slice(0, 10)} does not serve object ${Store.toHex(object).slice(0, 12)}`))
    }
    context.runtime.counters.catchUpBlocksFetched++
    return Option.some(yield* context.store.get(object).pipe(Effect.orDie, Effect.map(Option.getOrThrow)))
  })

/** A block object's checked block. */
const openObject = (context: CatchUp, bytes: Uint8Array, nowMs: number) =>
  Either.flatMap(decodeObject(bytes, objectBytesMax(context)), (decoded) =>
    Either.map(Block.decode(decoded.blockBytes, context.runtime.genesis, nowMs, context.runtime.limits), (block) => ({ block, parent: decoded.parent })))

/** Walks back from `head` until a known parent (Reached, with the path oldest first) or the round's budget (More). */
const walk = (context: CatchUp, peer: NodeId, head: Store.Id) =>
  Effect.gen(function*() {
    const nowMs = yield* Clock.currentTimeMillis
    const budget = { fetched: 0 }
    const path: Array<Store.Id> = []
    let cursor: Store.Id | undefined = head
    while (cursor !== undefined) {
      if (path.length >= context.runtime.limits.catchUpWalkBlocksMax) return yield* Effect.fail(fail("TooLarge", `more than ${context.runtime.limits.catchUpWalkBlocksMax} blocks behind`))
      const bytes: Option.Option<Uint8Array> = yield* obtain(context, peer, cursor, budget)
      if (Option.isNone(bytes)) return { _tag: "More" } as Round
      const opened: { readonly block: Block.Verified; readonly parent: Store.Id | undefined } = yield* openObject(context, bytes.value, nowMs)
      if (context.runtime.objects.has(Block.id(opened.block.header))) break
      path.push(cursor)
      if (context.runtime.objects.has(Id.fromBytes(opened.block.header.parent))) break
      cursor = opened.parent
      if (cursor === undefined) return yield* Effect.fail(fail("Malformed", "a block object names no parent, and its block is not a known block's child"))
    }
    return { _tag: "Reached", path: path.reverse() } as Round
  })

/** Imports the walked path, oldest first, each under the lock. */
const importPath = (context: CatchUp, path: ReadonlyArray<Store.Id>) =>
  Effect.gen(function*() {
    let imported = 0
    for (const object of path) {
      const nowMs = yield* Clock.currentTimeMillis
      const bytes = yield* context.store.get(object).pipe(Effect.orDie, Effect.map(Option.getOrUndefined))
      if (bytes === undefined) return yield* Effect.fail(fail("UnknownParent", "a fetched object left the store"))
      const { block } = yield* openObject(context, bytes, nowMs)
      if (yield* context.locked(importBlock(context, block))) imported++
    }
    context.runtime.counters.catchUpBlocksImported += imported
    return imported
  })

/** Catches up from `peer`'s head object, in rounds; the blocks imported, or the first typed failure (counted). */
export const catchUp = (context: CatchUp, peer: NodeId, head: Store.Id): Effect.Effect<number, LedgerError> =>
  Effect.gen(function*() {
    const roundsMax = Math.ceil(context.runtime.limits.catchUpWalkBlocksMax / context.runtime.limits.catchUpFetchBlocksMax) + 1
    for (let round = 0; round < roundsMax; round++) {
      context.runtime.counters.catchUpRounds++
      const result = yield* walk(context, peer, head)
      if (result._tag === "Reached") return yield* importPath(context, result.path)
    }
    return yield* Effect.fail(fail("TooLarge", "catch-up did not reach a known block"))
  }).pipe(
    Effect.tapError((error: LedgerError) =>
      Effect.sync(() => {
        context.runtime.counters.catchUpFailures++
        refused(context.runtime, "catchUp", error.reason)
      }))
  )

export { LedgerError }
