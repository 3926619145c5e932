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
}

/** The defaults: room for two ML-DSA-65 public keys and signatures (a mutual transfer) and 16 inputs. */
export const defaults: Values = {
  transactionBytesMax: 16 * 1024,
  inputsPerTransactionMax: 16,
  chainIdCharsMax: 64,
  transactionsPerBlockMax: 4096
}

/** The ledger's limits as a service. */
export class LedgerLimits extends Context.Tag("@weft/ledger/LedgerLimits")<LedgerLimits, Values>() {}

/** Provides the defaults with some limits overridden (for a whole network: see the module comment). */
export const layer = (overrides: Partial<Values> = {}): Layer.Layer<LedgerLimits> =>
  Layer.succeed(LedgerLimits, { ...defaults, ...overrides })
