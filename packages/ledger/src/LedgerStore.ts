/**
 * The ledger store: the state tables (coins, spent ids, pending transactions, rendezvous, nonces, keys,
 * unclaimed rewards, the total minted), the chain (blocks by id, the id at each height, the head) and
 * the explorer index, in one lmdb environment (or in memory). It implements `State.Reader`, so the
 * mempool and consensus validate against it with the pure ledger's own rules.
 *
 * The state follows the head (imports and rollbacks); the explorer index follows finality: it folds
 * the stored blocks up to a finalized one (`advanceIndex`), never rolls back, and a rollback below
 * it is refused (`Stale`), since a finalized block never leaves the chain.
 *
 * Crash safety: `importBlock` is one lmdb transaction (`transactionSync`: state diff, the prior the
 * explorer will fold the block against, block bytes, height, head, undo record), and `advanceIndex`
 * is another, each committed when it returns; a rejected block, or a
 * process killed midway, leaves the store as it was after the previous block (a test SIGKILLs a real
 * importer to check it). lmdb flushes commits to disk just after they return (its default
 * `overlappingSync`), so a power loss may lose the last blocks imported, but never leaves part of one.
 * Every block keeps an undo record of the keys it wrote for `LedgerLimits.undoBlocksMax` blocks, so
 * `rollbackTo` is one transaction too.
 *
 * ```ts
 * const store = yield* LedgerStore.LedgerStore          // LedgerStore.layerLmdb(dir) or layerMemory, with LedgerLimits.layer()
 * yield* store.initGenesis(params, allocations)         // once; the same genesis again is a no-op
 * const head = yield* store.importBlock(block, params)  // all or nothing
 * yield* store.advanceIndex(finalized)                  // the explorer folds up to the finalized block
 * ```
 */
import { Context, Effect, Either, Layer, Option } from "effect"
import type { AccountId } from "./Account.js"
import type { LedgerError } from "./LedgerError.js"
import * as LedgerLimits from "./LedgerLimits.js"
import type * as Params from "./Params.js"
import type * as State from "./State.js"
import type * as Transaction from "./Transaction.js"
import * as core from "./internal/storeCore.js"
import * as codec from "./internal/storeCodec.js"
import * as backend from "./internal/storeTables.js"

/** A block as the store imports it: consensus decoded and checked it; the store checks that it extends the head and that its transactions apply. */
export interface ImportedBlock {
  /** 32 bytes. */
  readonly id: Uint8Array
  /** 32 bytes: the head's id. */
  readonly parent: Uint8Array
  /** The head's height + 1. */
  readonly height: number
  /** Credited with the block reward of `height` (`State.reward`). */
  readonly producer: AccountId
  readonly timeMs: number
  readonly txs: ReadonlyArray<Transaction.Transaction>
  /** The block's canonical encoding, stored as it is. */
  readonly bytes: Uint8Array
}

/** The last imported block (height 0: the genesis). */
export interface Head {
  readonly height: number
  readonly id: Uint8Array
}

/** A stored block: its header fields and its bytes as imported (the genesis: parent and producer all zero, no time). */
export interface StoredBlock {
  readonly id: Uint8Array
  readonly parent: Uint8Array
  readonly height: number
  readonly producer: AccountId
  readonly timeMs: number
  readonly bytes: Uint8Array
}

/** The genesis block as the store keeps it: its id (the parent of block 1) and bytes. */
export interface GenesisBlock {
  readonly id: Uint8Array
  readonly bytes: Uint8Array
}

/** The store's operations; none has requirements. Backend failures (lmdb I/O) are defects. */
export interface Service {
  /** Synchronous reads of the current (committed) state, for validation. */
  readonly reader: State.Reader
  /** The head, once a genesis is written. */
  readonly head: Effect.Effect<Option.Option<Head>>
  /**
   * Writes the genesis state once (block 0, default id `genesisId(params, allocations)`). The same
   * genesis again returns the head; another one (parameters, allocations or id) is WrongChain.
   */
  readonly initGenesis: (params: Params.Params, allocations: ReadonlyArray<State.Allocation>, block?: GenesisBlock) => Effect.Effect<Head, LedgerError>
  /**
   * Imports the next block in one transaction and returns the new head. Refusals, with nothing written:
   * Malformed (ids, height, time, producer), UnknownParent (no genesis, or a parent not stored), BadParams
   * (not the genesis parameters), BadSlot (height ≠ head + 1), Stale (the parent is stored but is not
   * the head, or the block is already stored), TooLarge (more than `transactionsPerBlockMax` transactions, or more than
   * `blockBytesMax` bytes), or the first invalid
   * transaction's reason with its `index` (`txs.length` for the reward).
   */
  readonly importBlock: (block: ImportedBlock, params: Params.Params) => Effect.Effect<Head, LedgerError>
  /** The block at a height of the stored chain. */
  readonly blockAt: (height: number) => Effect.Effect<Option.Option<StoredBlock>>
  /** The stored block with this id. */
  readonly block: (id: Uint8Array) => Effect.Effect<Option.Option<StoredBlock>>
  /** The whole current state as a value (one pass over the state tables). */
  readonly stateSnapshot: Effect.Effect<State.State>
  /**
   * Undoes the blocks above `height` in one transaction: Stale past the last `undoBlocksMax` or below
   * the indexed (finalized) block, Malformed above the head. The explorer index is never touched.
   */
  readonly rollbackTo: (height: number) => Effect.Effect<Head, LedgerError>
  /** The last block the explorer index folded (the genesis at first), once a genesis is written. */
  readonly indexed: Effect.Effect<Option.Option<Head>>
  /**
   * Folds the stored blocks above the indexed one up to `finalized` (a block of the stored chain the
   * caller knows final) into the explorer index in one transaction; returns the new indexed block.
   * At or below the indexed height it does nothing. Refused, with nothing written: UnknownParent (no
   * genesis), Malformed (a height not in 0 … head), Stale (not the block stored at its height).
   */
  readonly advanceIndex: (finalized: Head) => Effect.Effect<Head, LedgerError>
}

/** The ledger store. */
export class LedgerStore extends Context.Tag("@weft/ledger/LedgerStore")<LedgerStore, Service>() {}

/** The default genesis id: SHA-256 of the canonical parameters and allocations. */
export const genesisId = (params: Params.Params, allocations: ReadonlyArray<State.Allocation>): Uint8Array => core.genesisId(params, allocations)

/** One canonical byte string per state value: equal states give equal bytes (to compare stores and folds). */
export const encodeState = (state: State.State): Uint8Array => codec.encodeState(state)

const fromEither = <A>(run: () => Either.Either<A, LedgerError>): Effect.Effect<A, LedgerError> => Effect.suspend(() => run())

const service = (tables: backend.Tables, limits: LedgerLimits.Values): Service =>
  core.register({
    reader: codec.reader(tables),
    head: Effect.sync(() => Option.fromNullable(core.readHead(tables))),
    initGenesis: (params, allocations, block) =>
      fromEither(() => core.initGenesis(tables, params, allocations, block ?? { id: core.genesisId(params, allocations), bytes: codec.encode({ params, allocations }) })),
    importBlock: (block, params) => fromEither(() => core.importBlock(tables, block, params, limits)),
    blockAt: (height) => Effect.sync(() => core.blockAt(tables, height)),
    block: (id) => Effect.sync(() => core.blockById(tables, id)),
    stateSnapshot: Effect.sync(() => codec.snapshot(tables)),
    rollbackTo: (height) => fromEither(() => core.rollbackTo(tables, height)),
    indexed: Effect.sync(() => Option.fromNullable(core.readIndexed(tables))),
    advanceIndex: (finalized) => fromEither(() => core.advanceIndex(tables, finalized))
  }, tables)

const make = (open: () => backend.Tables) =>
  Effect.gen(function*() {
    const limits = yield* LedgerLimits.LedgerLimits
    const tables = yield* Effect.acquireRelease(Effect.sync(open), (tables) => Effect.promise(() => tables.close()))
    return service(tables, limits)
  })

/** A store in memory (lost with its scope): for tests and nodes that keep nothing. */
export const layerMemory: Layer.Layer<LedgerStore, never, LedgerLimits.LedgerLimits> = Layer.scoped(LedgerStore, make(backend.memory))

/** The store in an lmdb environment in `dir` (created if needed), closed with the scope. lmdb failing to open it is a defect. */
export const layerLmdb = (dir: string): Layer.Layer<LedgerStore, never, LedgerLimits.LedgerLimits> => Layer.scoped(LedgerStore, make(() => backend.lmdb(dir)))
