/**
 * The explorer index: per account its balances and its history, as a deterministic fold over the
 * FINALIZED blocks only, so it shows finalized state (the head's state, which `weft token balance`
 * reads, may be ahead of it). The index stands at an indexed block: `advance(finalized)` (which
 * `LedgerNode` calls whenever finality moves) folds the stored blocks above it up to the finalized
 * one, in one transaction; imports and rollbacks never touch it, so it never holds a block a reorg
 * could remove. Each block is folded from the steps stored with it (each transaction's validated
 * diff) against the prior recorded at import (what the fold reads of the state before each step).
 * `reindex` drops the index and folds the stored blocks up to the indexed one again, replaying the
 * state in memory instead of reading priors (no signature is checked twice), and produces the same
 * bytes, so the same `digest`.
 *
 * A history entry is one per account per step that moved its value or that it signed: the genesis
 * (index 0 of height 0), each transaction (its index in the block) and the block reward (index
 * `txs.length`). `delta` is the change of spendable + incoming + unclaimed.
 */
import { Context, Effect, Layer, type Option } from "effect"
import type * as Amount from "./Amount.js"
import type * as Id from "./Id.js"
import type { LedgerError } from "./LedgerError.js"
import * as LedgerLimits from "./LedgerLimits.js"
import * as LedgerStore from "./LedgerStore.js"
import type * as Transaction from "./Transaction.js"
import { encodeState, snapshot } from "./internal/storeCodec.js"
import { readHead, readIndexed, tablesOf } from "./internal/storeCore.js"
import * as index from "./internal/storeExplorer.js"
import { hex, type Tables } from "./internal/storeTables.js"

/** What an account holds, as `Wallet.balance` counts it. */
export interface Balance {
  /** Unlocked coins it owns. */
  readonly spendable: Amount.Amount
  /** Coins locked in pending transactions addressed to it. */
  readonly incoming: Amount.Amount
  /** Block rewards not minted yet. */
  readonly unclaimed: Amount.Amount
}

/** What a history entry records. */
export type Kind = Transaction.Body["_tag"] | "Genesis" | "Reward"

/** One step of an account's history. */
export interface Entry {
  readonly height: number
  /** Position in the block: the transaction's index, `txs.length` for the reward. */
  readonly index: number
  /** The transaction id (the block id for a reward, the genesis id for the genesis). */
  readonly txId: Id.Id
  readonly kind: Kind
  /** Change of the account's spendable + incoming + unclaimed value. */
  readonly delta: bigint
  /** For the signer, the one other account whose value moved (if exactly one); for the others, the signer. */
  readonly counterparty?: Id.Id
}

/** A position in an account's history. */
export interface Cursor {
  readonly height: number
  readonly index: number
}

/** One page of history, oldest first; `next` is where the following page starts, if there is one. */
export interface Page {
  readonly entries: ReadonlyArray<Entry>
  readonly next?: Cursor
}

/** The block the index stands at (the last one it folded). */
export type Indexed = LedgerStore.Head

/** What a reindex did: the blocks it folded (the genesis included) and the digest of the index it wrote. */
export interface Reindexed {
  readonly blocks: number
  /** SHA-256 of the index bytes (as `digest` reads them): equal before and after a reindex of a sound index. */
  readonly digest: Uint8Array
}

/** The index's operations; none has requirements. */
export interface Service {
  /** The account's balances (all zero for an account the index never saw, or a string that is no id). */
  readonly balance: (account: Id.Id) => Effect.Effect<Balance>
  /** Entries from `from` (default: the first), at most `limit`, itself at most `historyEntriesMax`; none for a cursor out of range or a string that is no id. */
  readonly history: (account: Id.Id, options: { readonly from?: Cursor; readonly limit: number }) => Effect.Effect<Page>
  /** The last block the index folded (the genesis at first), once a genesis is written. */
  readonly indexed: Effect.Effect<Option.Option<Indexed>>
  /** Folds the stored blocks up to `finalized` (`LedgerStore.Service.advanceIndex`): the new indexed block. */
  readonly advance: (finalized: Indexed) => Effect.Effect<Indexed, LedgerError>
  /**
   * Drops the index and folds the stored blocks up to the indexed one again (from the steps stored
   * with each block), in one transaction, checking that replaying every stored block reaches the
   * stored state. For `weft ledger reindex`.
   */
  readonly reindex: Effect.Effect<Reindexed>
  /** SHA-256 of the index bytes as they are (no rebuild): what two stores of the same chain agree on. */
  readonly digest: Effect.Effect<Uint8Array>
  /** Every index key and value in key order, per table: what a reindex must reproduce byte for byte (all in memory: for tests and small stores; `digest` for big ones). */
  readonly dump: Effect.Effect<ReadonlyArray<readonly [table: string, key: string, value: string]>>
}

/** The explorer index. */
export class Explorer extends Context.Tag("@weft/ledger/Explorer")<Explorer, Service>() {}

const toEntry = (key: Uint8Array, value: Uint8Array): Entry => {
  const stored = index.decodeEntry(value)
  return {
    ...index.positionOf(key),
    txId: stored.txId,
    kind: stored.kind as Kind,
    delta: stored.credit - stored.debit,
    ...(stored.counterparty === undefined ? {} : { counterparty: stored.counterparty })
  }
}

const validPosition = (value: number) => Number.isSafeInteger(value) && value >= 0 && value <= 0xffff_ffff

// The type brands ids, but one cast from outside would make a short key prefix, whose range spans other accounts.
const validAccount = (account: Id.Id) => typeof account === "string" && /^[0-9a-f]{64}$/.test(account)

const history = (tables: Tables, account: Id.Id, from: Cursor | undefined, limit: number): Page => {
  if (!validAccount(account)) return { entries: [] }
  if (from !== undefined && !(validPosition(from.height) && validPosition(from.index))) return { entries: [] }
  const start = from === undefined ? index.historyKey(account, 0, 0) : index.historyKey(account, from.height, from.index)
  const rows = tables.range("history", { start, end: index.historyEnd(account), limit: limit + 1 })
  const entries = rows.slice(0, limit).map(({ key, value }) => toEntry(key, value))
  const after = rows[limit]
  return after === undefined ? { entries } : { entries, next: index.positionOf(after.key) }
}

/** Refolds the index; the replayed state must equal the stored one (a paired check of import and fold). */
const reindex = (tables: Tables): Reindexed =>
  tables.transaction(() => {
    const head = readHead(tables)
    if (head === undefined) return { blocks: 0, digest: index.digest(tables) }
    const indexed = readIndexed(tables)?.height ?? 0
    const replayed = index.rebuild(tables, head.height, indexed)
    if (!Buffer.from(encodeState(replayed)).equals(encodeState(snapshot(tables)))) throw new Error("explorer: the stored diffs do not replay to the stored state")
    return { blocks: indexed + 1, digest: index.digest(tables) }
  })

const dump = (tables: Tables) =>
  index.indexTables.flatMap((table) => tables.range(table).map(({ key, value }) => [table, hex(key), hex(value)] as const))

const clamp = (limit: number, max: number) => (Number.isSafeInteger(limit) ? Math.min(Math.max(limit, 0), max) : 0)

/** The index of the store in context (same environment, same transactions). */
export const layer: Layer.Layer<Explorer, never, LedgerStore.LedgerStore | LedgerLimits.LedgerLimits> = Layer.effect(
  Explorer,
  Effect.gen(function*() {
    const store = yield* LedgerStore.LedgerStore
    const tables = tablesOf(store)
    const limits = yield* LedgerLimits.LedgerLimits
    return {
      indexed: store.indexed,
      advance: store.advanceIndex,
      balance: (account) => Effect.sync(() => (validAccount(account) ? index.balance(tables, account) : index.zeroBalance)),
      history: (account, options) => Effect.sync(() => history(tables, account, options.from, clamp(options.limit, limits.historyEntriesMax))),
      reindex: Effect.sync(() => reindex(tables)),
      digest: Effect.sync(() => index.digest(tables)),
      dump: Effect.sync(() => dump(tables))
    }
  })
)
