/** Shared chain fixtures for the block, consensus and mempool tests and the multi-node simulation. */
import { Either } from "effect"
import * as Account from "../../src/Account.js"
import * as Amount from "../../src/Amount.js"
import * as Block from "../../src/Block.js"
import * as Consensus from "../../src/Consensus.js"
import * as Id from "../../src/Id.js"
import type { LedgerError } from "../../src/LedgerError.js"
import * as Params from "../../src/Params.js"
import * as Transaction from "../../src/Transaction.js"

/** The Right of an Either, or a thrown error naming the Left. */
export const ok = <A>(result: Either.Either<A, LedgerError>): A => {
  if (Either.isLeft(result)) throw new Error(`expected success, got ${result.left.reason}: ${result.left.detail}`)
  return result.right
}

/** The reason of a Left, or "ok". */
export const reasonOf = (result: Either.Either<unknown, LedgerError>): string => (Either.isLeft(result) ? result.left.reason : "ok")

const cache = new Map<number, Account.Account>()

/** A deterministic account (key generation is the slow part, so each is made once per process). */
export const account = (seed: number): Account.Account => {
  const known = cache.get(seed)
  if (known !== undefined) return known
  const made = Account.generate(new Uint8Array(32).fill(seed))
  cache.set(seed, made)
  return made
}

/** `count` authorities, in slot order. */
export const authorities = (count = 5): ReadonlyArray<Account.Account> => Array.from({ length: count }, (_, index) => account(100 + index))

/** `count` users. */
export const users = (count = 3): ReadonlyArray<Account.Account> => Array.from({ length: count }, (_, index) => account(1 + index))

/** One whole token of the test chain. */
export const token = 1_000_000n

/** A genesis: 1-second blocks, `coinsEach` one-token coins per user (coin k of user u is allocation u·coinsEach + k). */
export const genesis = (options: { readonly authorities?: number; readonly users?: number; readonly coinsEach?: number; readonly chainId?: string; readonly blockTimeMs?: number } = {}): Block.Genesis => {
  const coinsEach = options.coinsEach ?? 4
  const holders = users(options.users ?? 3)
  const params = ok(Params.make({ chainId: options.chainId ?? "weft-consensus-test", unitsPerToken: token, blockTimeMs: options.blockTimeMs ?? 1000, initialRewardUnits: (10n * token) as Amount.Amount }))
  const allocations = holders.flatMap((user) => Array.from({ length: coinsEach }, () => ({ owner: user.id, amount: token as Amount.Amount })))
  return ok(Block.makeGenesis({ params, allocations, authorities: authorities(options.authorities ?? 5).map(({ id, publicKey }) => ({ id, publicKey })), timeMs: 0 }))
}

/** The id of allocation `index`. */
export const allocationCoin = (chain: Block.Genesis, index: number): Uint8Array => Id.toBytes(Id.genesis(chain.params.chainId, index))

/** A signed transfer of a whole genesis coin's token minus one unit from `from` to `to`, at `nonce`. */
export const transfer = (chain: Block.Genesis, from: Account.Account, to: Account.Account, coinIndex: number, nonce: number): Transaction.Transaction =>
  ok(Transaction.sign({
    _tag: "Transfer",
    chain: chain.params.chainId,
    from: Id.toBytes(from.id),
    nonce,
    inputs: [allocationCoin(chain, coinIndex)],
    amount: token - 1n,
    change: 1n,
    recipient: Id.toBytes(to.id)
  }, from))

/** The authority account that owns `slot`. */
export const producerAccount = (chain: Block.Genesis, slot: number): Account.Account => {
  const owner = Consensus.producerOf(chain, slot).id
  return authorities(chain.authorities.length).find((candidate) => candidate.id === owner)!
}

/** Builds the slot owner's block on `parent` (no transactions unless given). */
export const blockAt = (chain: Block.Genesis, parent: Consensus.Entry, slot: number, txs: ReadonlyArray<Transaction.Transaction> = []): Block.Verified =>
  ok(Block.make({ genesis: chain, parent, slot, txs, producer: producerAccount(chain, slot) }))

/** Inserts a block built at `slot` on `parentId`; the new tree and entry. */
export const extend = (tree: Consensus.Tree, parentId: Id.Id, slot: number, txs: ReadonlyArray<Transaction.Transaction> = []): Consensus.Inserted => {
  const parent = Consensus.get(tree, parentId)
  if (parent._tag === "None") throw new Error(`extend: no parent 0x${parentId}`)
  return ok(Consensus.insert(tree, blockAt(tree.genesis, parent.value, slot, txs)))
}

/** Extends `parentId` with one block per slot in `slots`, in order; the tree and the last entry's id. */
export const extendAll = (tree: Consensus.Tree, parentId: Id.Id, slots: Iterable<number>): { tree: Consensus.Tree; tip: Id.Id } => {
  let current = { tree, tip: parentId }
  for (const slot of slots) {
    const { tree: next, entry } = extend(current.tree, current.tip, slot)
    current = { tree: next, tip: entry.id }
  }
  return current
}

/** Integers from `from` to `to` inclusive. */
export const range = (from: number, to: number): ReadonlyArray<number> => Array.from({ length: Math.max(0, to - from + 1) }, (_, index) => from + index)
