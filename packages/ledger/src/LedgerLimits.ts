/**
 * The ledger's bounds, with units in their names (see `docs/LIMITS.md`, section "Ledger").
 *
 * These are validity rules, not local tuning: a transaction one validator accepts and another refuses
 * for size would fork the chain. Every validator of a chain must run with the same values; override
 * them only for a whole network (or in tests).
 */
import { Context, Layer } from "effect"

/** The ledger's bounds. */
export interface Values {
  /** Largest canonical encoding of a signed transaction; a larger one is LedgerError("TooLarge") before any other work. */
  readonly transactionBytesMax: number
  /** Coins one transfer, mutual transfer or merge may spend; more is LedgerError("TooLarge"). */
  readonly inputsPerTransactionMax: number
  /** Longest chain id in a transaction; longer is LedgerError("Malformed"). */
  readonly chainIdCharsMax: number
  /** Transactions one block may carry; more rejects the block with LedgerError("TooLarge"). */
  readonly transactionsPerBlockMax: number
  /** Largest canonical encoding of a block; a larger one is LedgerError("TooLarge") before it is decoded. */
  readonly blockBytesMax: number
  /** How far ahead of the local clock a block's time may be; further is LedgerError("FutureBlock"). */
  readonly blockClockSkewMsMax: number
  /** Blocks above the finalized one a node holds; past it a new block is LedgerError("TooLarge") (a local bound). */
  readonly unfinalizedBlocksMax: number
  /** Transactions the mempool holds; past it the lowest-ranked one is evicted (a local bound). */
  readonly mempoolTransactionsMax: number
  /** Canonical bytes of the transactions the mempool holds; past it the lowest-ranked ones are evicted (a local bound). */
  readonly mempoolBytesMax: number
  /** Transactions of one account the mempool holds; past it the account's highest nonce goes (a local bound). */
  readonly mempoolTransactionsPerAccountMax: number
  /** Recent blocks whose undo records the store keeps; `LedgerStore.rollbackTo` deeper is LedgerError("Stale") (a local bound). */
  readonly undoBlocksMax: number
  /** Entries one `Explorer.history` page returns at most; a larger `limit` is cut to it (a local bound). */
  readonly historyEntriesMax: number
  /** Blocks one catch-up round fetches from a peer through store sync; the rest wait for the next round (a local bound). */
  readonly catchUpFetchBlocksMax: number
  /** Blocks one catch-up walks back from a peer's head before it gives up (ids only are held; a local bound). */
  readonly catchUpWalkBlocksMax: number
  /** Catch-up requests waiting for the node's one catch-up fiber; past it new requests are dropped and counted (a local bound). */
  readonly catchUpQueueMax: number
  /** Blocks the gossip validator decoded and holds for the importer (so it does not decode them again); past it they are decoded twice. */
  readonly checkedBlocksMax: number
  /** Recent block ids a node remembers with their store object ids; past it the oldest is forgotten (a local bound). */
  readonly knownBlocksMax: number
  /** Recently included transaction ids a node remembers (to answer "is it in a block?"); past it the oldest is forgotten (a local bound). */
  readonly includedTransactionsMax: number
  /** Unrevealed mutual-transfer offers a node holds for their receivers; past it the oldest is dropped (a local bound). */
  readonly mutualOffersMax: number
  /** Blocks between two checks of an authority node for rewards to claim automatically (`LedgerNode.Options.autoClaim`; a local bound). */
  readonly autoClaimIntervalBlocks: number
}

/** The defaults: room for two ML-DSA-65 public keys and signatures (a mutual transfer) and 16 inputs. */
export const defaults: Values = {
  transactionBytesMax: 16 * 1024,
  inputsPerTransactionMax: 16,
  chainIdCharsMax: 64,
  transactionsPerBlockMax: 4096,
  blockBytesMax: 8 * 1024 * 1024,
  blockClockSkewMsMax: 1000,
  unfinalizedBlocksMax: 4096,
  mempoolTransactionsMax: 10_000,
  mempoolBytesMax: 32 * 1024 * 1024,
  mempoolTransactionsPerAccountMax: 64,
  undoBlocksMax: 256,
  historyEntriesMax: 1000,
  catchUpFetchBlocksMax: 64,
  catchUpWalkBlocksMax: 65_536,
  catchUpQueueMax: 16,
  checkedBlocksMax: 64,
  knownBlocksMax: 16_384,
  includedTransactionsMax: 65_536,
  mutualOffersMax: 1024,
  autoClaimIntervalBlocks: 4
}

/** The ledger's limits as a service. */
export class LedgerLimits extends Context.Tag("@weft/ledger/LedgerLimits")<LedgerLimits, Values>() {}

/** Provides the defaults with some limits overridden (for a whole network: see the module comment). */
export const layer = (overrides: Partial<Values> = {}): Layer.Layer<LedgerLimits> =>
  Layer.succeed(LedgerLimits, { ...defaults, ...overrides })
