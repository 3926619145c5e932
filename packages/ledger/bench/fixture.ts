/**
 * Deterministic inputs of the ledger benchmarks, shared by the main thread and the validation
 * workers (no benchmark code here): `count` genesis coins owned by one account, signed transfers
 * that each spend one of them (all valid against the genesis state), and chains of blocks of such
 * transfers for the import benchmark.
 */
import { Canonical } from "@weft/core"
import { Either } from "effect"
import * as Account from "../src/Account.js"
import type * as Amount from "../src/Amount.js"
import * as Id from "../src/Id.js"
import type { ImportedBlock } from "../src/LedgerStore.js"
import * as Params from "../src/Params.js"
import * as State from "../src/State.js"
import * as Transaction from "../src/Transaction.js"

/** The benchmark chain's parameters. */
export const params = Either.getOrThrow(Params.make({ chainId: "weft-bench" }))

/** The payer: owns every genesis coin and signs every transfer. */
export const alice = Account.generate(new Uint8Array(32).fill(1))

/** The payee. */
export const bob = Account.generate(new Uint8Array(32).fill(2))

/** Each genesis coin: ten tokens. */
export const coinUnits = (10n * params.unitsPerToken) as Amount.Amount

/** `count` coins of `coinUnits` for alice. */
export const allocations = (count: number): ReadonlyArray<State.Allocation> => Array.from({ length: count }, () => ({ owner: alice.id, amount: coinUnits }))

/** The genesis state of `allocations(count)`. */
export const genesis = (count: number): State.State => Either.getOrThrow(State.genesis(params, allocations(count))).state

/** A signed transfer of genesis coin `coin` to bob with 1 unit of change, at `nonce`. */
export const transfer = (coin: number, nonce: number): Transaction.Transaction =>
  Either.getOrThrow(Transaction.sign({
    _tag: "Transfer",
    chain: params.chainId,
    from: Id.toBytes(alice.id),
    nonce,
    inputs: [Id.toBytes(Id.genesis(params.chainId, coin))],
    amount: coinUnits - 1n,
    change: 1n,
    recipient: Id.toBytes(bob.id)
  }, alice))

/** `count` transfers, each valid on its own against `genesis(count)` (nonce 1, its own coin). */
export const transfers = (count: number): ReadonlyArray<Transaction.Transaction> => Array.from({ length: count }, (_, coin) => transfer(coin, 1))

/** A block over `txs` (a benchmark encoding: the store keeps the bytes as they are). */
export const makeBlock = (parent: Uint8Array, height: number, txs: ReadonlyArray<Transaction.Transaction>): ImportedBlock => {
  const timeMs = height * params.blockTimeMs
  const bytes = Either.getOrThrow(Canonical.encode({ parent, height, producer: bob.id, timeMs, txs }))
  return { id: Canonical.digest(bytes), parent, height, producer: bob.id, timeMs, txs, bytes }
}

/** `blocks` blocks of `perBlock` transfers over `genesis(blocks × perBlock)`; block h spends coins of h − 1 with consecutive nonces. */
export const chain = (genesisId: Uint8Array, blocks: number, perBlock: number): ReadonlyArray<ImportedBlock> => {
  const out: Array<ImportedBlock> = []
  let parent = genesisId
  for (let height = 1; height <= blocks; height++) {
    const first = (height - 1) * perBlock
    const block = makeBlock(parent, height, Array.from({ length: perBlock }, (_, at) => transfer(first + at, first + at + 1)))
    out.push(block)
    parent = block.id
  }
  return out
}
