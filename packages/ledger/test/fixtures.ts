/** Shared test fixtures: deterministic accounts, a test chain, and Either helpers. */
import { assert } from "@effect/vitest"
import { Either, HashMap, HashSet } from "effect"
import * as Account from "../src/Account.js"
import * as Amount from "../src/Amount.js"
import * as Id from "../src/Id.js"
import type { LedgerError } from "../src/LedgerError.js"
import * as Params from "../src/Params.js"
import * as State from "../src/State.js"
import * as Transaction from "../src/Transaction.js"

/** The test chain's parameters. */
export const params = Either.getOrThrow(Params.make({ chainId: "weft-test" }))

const seeded = (byte: number) => Account.generate(new Uint8Array(32).fill(byte))

/** Three deterministic accounts. */
export const alice = seeded(1)
export const bob = seeded(2)
export const carol = seeded(3)

/** Whole tokens as an amount. */
export const tokens = (count: number | bigint): Amount.Amount => (BigInt(count) * params.unitsPerToken) as Amount.Amount

/** The Right of an Either, or a failed assertion naming the Left. */
export const ok = <A>(result: Either.Either<A, LedgerError>): A => {
  if (Either.isLeft(result)) assert.fail(`expected success, got ${result.left.reason}: ${result.left.detail}`)
  return result.right
}

/** The reason of a Left, or "ok". */
export const reasonOf = (result: Either.Either<unknown, LedgerError>): string => (Either.isLeft(result) ? result.left.reason : "ok")

/** Alice holds 100 tokens, Bob 50 (one coin each). */
export const genesis = (allocations: ReadonlyArray<State.Allocation> = [{ owner: alice.id, amount: tokens(100) }, { owner: bob.id, amount: tokens(50) }]) =>
  ok(State.genesis(params, allocations)).state

/** The id of genesis coin `index`. */
export const genesisCoin = (index: number): Id.Id => Id.genesis(params.chainId, index)

/** Common body fields for `account` with the next nonce in `state`. */
export const base = (state: State.State, account: Account.Account, nonceOffset = 1) => ({
  chain: params.chainId,
  from: Id.toBytes(account.id),
  nonce: State.reader(state).nonce(account.id) + nonceOffset
})

/** Signs a body. */
export const signed = (body: Transaction.Body, account: Account.Account, options?: Transaction.SignOptions): Transaction.Transaction =>
  ok(Transaction.sign(body, account, options))

/** Validates and applies, failing the test on a rejection. */
export const apply = (state: State.State, transaction: Transaction.Transaction): State.State =>
  State.applyDiff(state, ok(State.validate(state, transaction, params)))

/** A deterministic, comparable picture of a state. */
export const snapshot = (state: State.State) => {
  const sorted = <V>(map: HashMap.HashMap<string, V>) => Array.from(map).sort(([a], [b]) => (a < b ? -1 : 1))
  return {
    coins: sorted(state.coins),
    spent: Array.from(HashSet.values(state.spent)).sort(),
    pending: sorted(state.pending),
    rendezvous: sorted(state.rendezvous),
    nonces: sorted(state.nonces),
    keys: sorted(state.keys),
    unclaimed: sorted(state.unclaimed),
    minted: state.minted
  }
}
