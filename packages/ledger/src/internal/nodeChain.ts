/**
 * The chain side of a ledger node: importing a block into consensus, then keeping the LedgerStore on
 * the fork choice (a reorg rolls the store back to the fork point and imports the new branch), the
 * block's object in the content store, the mempool revalidated against the new head, the
 * inclusion index, and the explorer index moved up to the finalized block. One import at a time (the
 * caller holds the node's lock).
 */
import type { Store } from "@weft/core"
import { Effect, Either, Option } from "effect"
import * as Block from "../Block.js"
import type * as Consensus from "../Consensus.js"
import * as Id from "../Id.js"
import type { LedgerError } from "../LedgerError.js"
import type * as LedgerStore from "../LedgerStore.js"
import * as Mempool from "../Mempool.js"
import * as Transaction from "../Transaction.js"
import type { Runtime } from "./nodeState.js"
import { refused, remember } from "./nodeState.js"
import { encodeObject } from "./nodeWire.js"

/** What the chain side needs. */
export interface Chain {
  readonly runtime: Runtime
  readonly consensus: Consensus.Service
  readonly ledger: LedgerStore.Service
  readonly store: Store.Service
}

/** The store's view of a consensus entry. */
export const toImported = (entry: Consensus.Entry): Either.Either<LedgerStore.ImportedBlock, LedgerError> =>
  Either.map(Block.encode(entry.block), (bytes) => ({
    id: Id.toBytes(entry.id),
    parent: Id.toBytes(entry.parent),
    height: entry.height,
    producer: Id.fromBytes(entry.block.header.producer),
    timeMs: entry.block.header.timeMs,
    txs: entry.block.txs,
    bytes
  }))

/** Puts a block's object (naming its parent's object) into the content store, pinned, and remembers it. */
export const storeObject = (chain: Chain, block: Block.Block, id: Id.Id): Effect.Effect<Option.Option<Store.Id>> => {
  const parentId = Id.fromBytes(block.header.parent)
  const parent = block.header.height === 0 ? undefined : chain.runtime.objects.get(parentId)
  if (block.header.height > 0 && parent === undefined) return Effect.succeedNone
  return Either.match(encodeObject(block, parent), {
    onLeft: () => Effect.succeedNone,
    onRight: (bytes) =>
      chain.store.put(bytes, { pin: true }).pipe(
        Effect.tap((object) => Effect.sync(() => remember(chain.runtime, id, object))),
        Effect.map(Option.some),
        Effect.catchAll((error) =>
          Effect.as(Effect.logWarning(`ledger: cannot store block ${id.slice(0, 12)}: ${error.reason}`), Option.none()))
      )
  })
}

const importIntoStore = (chain: Chain, entries: ReadonlyArray<Consensus.Entry>) =>
  Effect.forEach(entries, (entry) =>
    Either.match(toImported(entry), {
      onLeft: (error) => Effect.fail(error),
      onRight: (block) => chain.ledger.importBlock(block, chain.runtime.genesis.params)
    }), { discard: true })

/** Moves the LedgerStore from the old head to the new one. */
const follow = (chain: Chain, reorg: Consensus.Reorg): Effect.Effect<void> => {
  const lowest = reorg.removed[reorg.removed.length - 1]
  const rollback = lowest === undefined
    ? Effect.void
    : Effect.zipRight(Effect.sync(() => void chain.runtime.counters.reorgs++), chain.ledger.rollbackTo(lowest.height - 1))
  return Effect.zipRight(rollback, importIntoStore(chain, reorg.added)).pipe(
    Effect.catchAll((error) =>
      Effect.zipRight(
        Effect.sync(() => {
          chain.runtime.counters.storeFollowFailures++
          refused(chain.runtime, "store", error.reason)
        }),
        Effect.logError(`ledger: the store could not follow the head: ${error.reason} ${error.detail ?? ""}`)
      ))
  )
}

/** Inclusion index and mempool after a head change; transactions of abandoned blocks go back to the pool. */
const settle = (chain: Chain, imported: Consensus.Imported): void => {
  const { runtime } = chain
  for (const entry of imported.reorg.removed) {
    for (const tx of entry.block.txs) Either.map(Transaction.id(tx.body), (id) => runtime.included.delete(id))
  }
  for (const entry of imported.reorg.added) {
    for (const tx of entry.block.txs) Either.map(Transaction.id(tx.body), (id) => runtime.included.set(id, entry.height))
  }
  runtime.headState = imported.head.state
  runtime.headHeight = imported.head.height
  Mempool.revalidate(runtime.pool, runtime.headState)
  for (const entry of imported.reorg.removed) {
    for (const tx of entry.block.txs) Mempool.add(runtime.pool, tx, runtime.headState, runtime.genesis.params)
  }
}

/**
 * Moves the explorer index up to the finalized block (a no-op when finality did not move). A refusal
 * (the store could not follow the head to it) is counted and retried at the next import.
 */
export const advanceIndex = (chain: Chain, finalized: Consensus.Entry): Effect.Effect<void> =>
  chain.ledger.advanceIndex({ height: finalized.height, id: Id.toBytes(finalized.id) }).pipe(
    Effect.asVoid,
    Effect.catchAll((error) =>
      Effect.zipRight(
        Effect.sync(() => refused(chain.runtime, "index", error.reason)),
        Effect.logWarning(`ledger: the explorer index cannot reach the finalized block ${finalized.height}: ${error.reason} ${error.detail ?? ""}`)
      ))
  )

/** Everything that follows a consensus import: object, store, pool, inclusions, explorer index. */
export const afterImport = (chain: Chain, imported: Consensus.Imported): Effect.Effect<Option.Option<Store.Id>> =>
  Effect.gen(function*() {
    const object = yield* storeObject(chain, imported.entry.block, imported.entry.id)
    yield* follow(chain, imported.reorg)
    settle(chain, imported)
    yield* advanceIndex(chain, imported.finalized)
    chain.runtime.onHead?.(imported.head.height)
    return object
  })

/** Imports a checked block and everything after it; Duplicate is success (nothing to do). */
export const importBlock = (chain: Chain, block: Block.Verified): Effect.Effect<boolean, LedgerError> =>
  chain.consensus.importBlock(block).pipe(
    Effect.tap((imported) => afterImport(chain, imported)),
    Effect.tap(() => Effect.sync(() => void chain.runtime.counters.blocksImported++)),
    Effect.as(true),
    Effect.catchIf((error) => error.reason === "Duplicate", () => Effect.succeed(false))
  )

/**
 * Replays the stored chain into a fresh consensus on start (consensus keeps its tree in memory); a
 * stored block consensus refuses ends the replay and the store is rolled back to below it.
 */
export const replay = (chain: Chain, nowMs: number): Effect.Effect<number> =>
  Effect.gen(function*() {
    const head = yield* chain.ledger.head
    const top = Option.match(head, { onNone: () => 0, onSome: (h) => h.height })
    for (let height = 1; height <= top; height++) {
      const stored = yield* chain.ledger.blockAt(height)
      if (Option.isNone(stored)) break
      const result = yield* Block.decode(stored.value.bytes, chain.runtime.genesis, nowMs, chain.runtime.limits).pipe(
        Effect.flatMap((block) => chain.consensus.importBlock(block)),
        Effect.either
      )
      if (Either.isLeft(result)) {
        yield* Effect.logWarning(`ledger: stored block ${height} does not replay (${result.left.reason}); rolling the store back to ${height - 1}`)
        yield* Effect.ignore(chain.ledger.rollbackTo(height - 1))
        yield* advanceIndex(chain, yield* chain.consensus.finalized)
        return height - 1
      }
      yield* storeObject(chain, result.right.entry.block, result.right.entry.id)
      settle(chain, { ...result.right, reorg: { removed: [], added: [result.right.entry] } })
    }
    yield* advanceIndex(chain, yield* chain.consensus.finalized)
    return top
  })
