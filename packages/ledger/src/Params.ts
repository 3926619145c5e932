/**
 * Chain parameters: fixed at genesis and the same for every validator of a chain. The issuance
 * schedule halves the block reward every `halvingIntervalBlocks` blocks (down to zero after 64
 * halvings), so total issuance is below 2 × initial reward × interval; `make` refuses a schedule whose
 * total does not fit in an amount, so no reward sum can ever overflow.
 */
import { Either } from "effect"
import * as Amount from "./Amount.js"
import { LedgerError, make as fail } from "./LedgerError.js"

/** The parameters of one chain. */
export interface Params {
  /** Every transaction names it; a transaction for another chain is WrongChain. */
  readonly chainId: string
  /** Token symbol for display. */
  readonly symbol: string
  /** Base units in one token; of the form 2^a·5^b so that every amount has a finite decimal form. */
  readonly unitsPerToken: bigint
  /** Target time between blocks, in milliseconds. */
  readonly blockTimeMs: number
  /** Reward of each block before the first halving, in base units. */
  readonly initialRewardUnits: Amount.Amount
  /** Blocks between two halvings of the reward. */
  readonly halvingIntervalBlocks: number
}

/** The defaults: 8,000,000,000 units per token, 10 s blocks, 10 WEFT per block halving every ~4 years. */
export const defaults: Params = {
  chainId: "weft-dev",
  symbol: "WEFT",
  unitsPerToken: 8_000_000_000n,
  blockTimeMs: 10_000,
  initialRewardUnits: 80_000_000_000n as Amount.Amount,
  halvingIntervalBlocks: 12_614_400
}

/** The reward of the block at `height` (0-based). */
export const rewardAt = (params: Params, height: number): Amount.Amount => {
  const halvings = BigInt(Math.floor(height / params.halvingIntervalBlocks))
  return (halvings >= 64n ? 0n : params.initialRewardUnits >> halvings) as Amount.Amount
}

/** Everything the schedule will ever mint, exactly. */
export const issuanceTotal = (params: Params): bigint => {
  let total = 0n
  for (let halving = 0n; halving < 64n; halving++) total += (params.initialRewardUnits >> halving) * BigInt(params.halvingIntervalBlocks)
  return total
}

const problem = (params: Params): string | undefined => {
  if (params.chainId.length === 0) return "chainId is empty"
  if (params.unitsPerToken < 1n || params.unitsPerToken > Amount.max) return "unitsPerToken must be in 1 … 2^64 − 1"
  if (Amount.decimalsOf(params.unitsPerToken) === undefined) return "unitsPerToken must be 2^a·5^b (a finite decimal per unit)"
  if (!Number.isSafeInteger(params.blockTimeMs) || params.blockTimeMs < 1) return "blockTimeMs must be a positive integer"
  if (!Number.isSafeInteger(params.halvingIntervalBlocks) || params.halvingIntervalBlocks < 1) return "halvingIntervalBlocks must be a positive integer"
  if (params.initialRewardUnits < 0n || params.initialRewardUnits > Amount.max) return "initialRewardUnits must be an amount"
  if (issuanceTotal(params) > Amount.max) return "total issuance reaches 2^64 units"
  return undefined
}

/** The defaults with some parameters overridden, checked: BadParams names the first problem. */
export const make = (overrides: Partial<Params> = {}): Either.Either<Params, LedgerError> => {
  const params = { ...defaults, ...overrides }
  const reason = problem(params)
  return reason === undefined ? Either.right(params) : Either.left(fail("BadParams", reason))
}
