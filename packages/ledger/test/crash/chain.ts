/**
 * Deterministic test chains for the store: a seeded sequence of valid blocks (transfers, accepts,
 * rejects, splits, merges, mints) over three accounts, with the pure fold (`State.applyBlock`, then
 * `State.reward`) each block must reproduce. No vitest import: the crash importer child loads it too.
 */
import { Canonical } from "@weft/core"
import { Either, Schema } from "effect"
import * as Account from "../../src/Account.js"
import type * as Amount from "../../src/Amount.js"
import * as Id from "../../src/Id.js"
import type { ImportedBlock } from "../../src/LedgerStore.js"
import * as Params from "../../src/Params.js"
import * as State from "../../src/State.js"
import * as Transaction from "../../src/Transaction.js"
import * as Wallet from "../../src/Wallet.js"

/** The chain's parameters: a small reward so that mints are frequent and small. */
export const params = Either.getOrThrow(Params.make({ chainId: "weft-store-test", initialRewardUnits: 5_000_000_000n as Amount.Amount, halvingIntervalBlocks: 50 }))

const seeded = (byte: number) => Account.generate(new Uint8Array(32).fill(byte))

/** The chain's accounts (also its producers, in turn). */
export const accounts = [seeded(11), seeded(12), seeded(13)] as const

const units = (tokens: number) => (BigInt(tokens) * params.unitsPerToken) as Amount.Amount

/** Each account starts with three coins. */
export const allocations: ReadonlyArray<State.Allocation> = accounts.flatMap((account, index) =>
  [units(50 - 10 * index), units(7), units(3)].map((amount) => ({ owner: account.id, amount })))

/** The genesis state. */
export const genesisState = (): State.State => Either.getOrThrow(State.genesis(params, allocations)).state

/** A small seeded generator (mulberry32): the same seed, the same chain. */
export const random = (seed: number) => {
  let value = seed >>> 0
  return (bound: number): number => {
    value = (value + 0x6d2b79f5) >>> 0
    let mixed = Math.imul(value ^ (value >>> 15), 1 | value)
    mixed = (mixed + Math.imul(mixed ^ (mixed >>> 7), 61 | mixed)) ^ mixed
    return (((mixed ^ (mixed >>> 14)) >>> 0) % bound)
  }
}

const pick = <A>(items: ReadonlyArray<A>, next: (bound: number) => number): A | undefined => (items.length === 0 ? undefined : items[next(items.length)])

/** A candidate body for `account` against `state`, or nothing when the dice pick something impossible. */
const candidate = (state: State.State, account: Account.Account, next: (bound: number) => number): Transaction.Body | undefined => {
  const common = { chain: params.chainId, from: Id.toBytes(account.id), nonce: State.reader(state).nonce(account.id) + 1 }
  const mine = Wallet.coins(state, account.id)
  const coin = pick(mine, next)
  const other = accounts[(accounts.indexOf(account) + 1 + next(2)) % 3]!
  switch (next(6)) {
    case 0: case 1: {
      if (coin === undefined) return undefined
      const amount = coin.coin.amount / BigInt(2 + next(3))
      return amount === 0n ? undefined : { _tag: "Transfer", ...common, inputs: [Id.toBytes(coin.id)], amount, change: coin.coin.amount - amount, recipient: Id.toBytes(other.id) }
    }
    case 2: {
      const offer = pick(Wallet.pending(state, account.id).incoming, next)
      return offer === undefined ? undefined : { _tag: next(4) === 0 ? "Reject" : "Accept", ...common, pending: Id.toBytes(offer.id) }
    }
    case 3: {
      if (coin === undefined || coin.coin.amount < 2n) return undefined
      const first = coin.coin.amount / 2n
      return { _tag: "Split", ...common, coin: Id.toBytes(coin.id), amounts: [first, coin.coin.amount - first] }
    }
    case 4: return mine.length < 2 ? undefined : { _tag: "Merge", ...common, coins: mine.slice(-2).map(({ id }) => Id.toBytes(id)) }
    default: return Either.getOrUndefined(Wallet.planClaim(state, account.id, params))
  }
}

/** The state after a block: its transactions all or nothing, then the producer's reward. */
export const foldBlock = (state: State.State, block: Pick<ImportedBlock, "txs" | "producer" | "height">): State.State => {
  const applied = Either.getOrThrow(State.applyBlock(state, block.txs, params))
  return State.applyDiff(applied.state, Either.getOrThrow(State.reward(applied.state, block.producer, block.height, params)))
}

/** A block over the given transactions: a made-up but deterministic id and encoding. */
export const makeBlock = (parent: Uint8Array, height: number, producer: Id.Id, txs: ReadonlyArray<Transaction.Transaction>): ImportedBlock => {
  const timeMs = height * params.blockTimeMs
  const bytes = Either.getOrThrow(Canonical.encode({ parent, height, producer, timeMs, txs }))
  return { id: Canonical.digest(bytes), parent, height, producer, timeMs, txs, bytes }
}

/** Up to `perBlock` valid transactions against `state`, applied in order. */
const blockTransactions = (state: State.State, perBlock: number, next: (bound: number) => number): Array<Transaction.Transaction> => {
  const txs: Array<Transaction.Transaction> = []
  let current = state
  for (let attempt = 0; attempt < perBlock * 3 && txs.length < perBlock; attempt++) {
    const account = accounts[next(3)]!
    const body = candidate(current, account, next)
    if (body === undefined) continue
    const transaction = Either.getOrThrow(Transaction.sign(body, account))
    const diff = State.validate(current, transaction, params)
    if (Either.isLeft(diff)) continue
    current = State.applyDiff(current, diff.right)
    txs.push(transaction)
  }
  return txs
}

/** A chain and its pure fold: `states[h]` is the state after block `h` (`states[0]` the genesis). */
export interface Chain {
  readonly genesisId: Uint8Array
  readonly blocks: ReadonlyArray<ImportedBlock>
  readonly states: ReadonlyArray<State.State>
}

/** `count` valid blocks of up to `perBlock` transactions each, from the seed; block `h` is `blocks[h - 1]`. */
export const buildChain = (genesisId: Uint8Array, count: number, perBlock: number, seed: number): Chain => {
  const next = random(seed)
  const blocks: Array<ImportedBlock> = []
  const states: Array<State.State> = [genesisState()]
  let parent = genesisId
  for (let height = 1; height <= count; height++) {
    const state = states[height - 1]!
    const block = makeBlock(parent, height, accounts[height % 3]!.id, blockTransactions(state, perBlock, next))
    blocks.push(block)
    states.push(foldBlock(state, block))
    parent = block.id
  }
  return { genesisId, blocks, states }
}

const WireBlock = Schema.Struct({
  id: Schema.Uint8ArrayFromSelf,
  parent: Schema.Uint8ArrayFromSelf,
  height: Schema.Int,
  producer: Schema.String,
  timeMs: Schema.Int,
  txs: Schema.Array(Transaction.Transaction),
  bytes: Schema.Uint8ArrayFromSelf
})

/** The blocks as one byte string (for the crash importer, which must not sign them again). */
export const encodeBlocks = (blocks: ReadonlyArray<ImportedBlock>): Uint8Array => Either.getOrThrow(Canonical.encode(blocks))

/** The blocks back from `encodeBlocks`. */
export const decodeBlocks = (bytes: Uint8Array): ReadonlyArray<ImportedBlock> =>
  Schema.decodeUnknownSync(Schema.Array(WireBlock))(Either.getOrThrow(Canonical.decode(bytes, bytes.length))).map((block) => ({ ...block, producer: block.producer as Id.Id }))

/** How far below the head the crash importer treats blocks as finalized (the explorer index follows finality). */
export const finalityLag = 2
