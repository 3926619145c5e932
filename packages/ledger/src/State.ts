/**
 * Ledger state as a value: coins, the ids of spent coins, pending transactions, rendezvous, nonces,
 * registered keys, unclaimed rewards and the total ever minted. Persistent maps (structural sharing),
 * so a new state per transaction costs O(log n), and a rejected transaction leaves the old value as it was.
 *
 * Validation reads state only through a `Reader`, so a block importer can validate against LMDB with
 * the same code; what a transaction changes comes back as an explicit `Diff` to write in one LMDB
 * transaction. Value: coins (locked ones are the value of pending transactions) plus unclaimed rewards
 * always equals `minted`.
 */
import { Either, HashMap, HashSet, Option } from "effect"
import * as Amount from "./Amount.js"
import * as Diff from "./Diff.js"
import * as Id from "./Id.js"
import * as validation from "./internal/validate.js"
import { LedgerError, make as fail } from "./LedgerError.js"
import * as LedgerLimits from "./LedgerLimits.js"
import * as Params from "./Params.js"
import type { Coin, Keys, Pending, Rendezvous } from "./Records.js"
import type * as Transaction from "./Transaction.js"

/** The ledger state. */
export interface State {
  readonly coins: HashMap.HashMap<Id.Id, Coin>
  /** Spent coin ids, so a second spend is DoubleSpend rather than CoinNotFound (and ids are never reused). */
  readonly spent: HashSet.HashSet<Id.Id>
  readonly pending: HashMap.HashMap<Id.Id, Pending>
  readonly rendezvous: HashMap.HashMap<Id.Id, Rendezvous>
  /** Last nonce used per account (absent: 0, so the first transaction carries 1). */
  readonly nonces: HashMap.HashMap<Id.Id, number>
  readonly keys: HashMap.HashMap<Id.Id, Keys>
  /** Accrued block rewards not yet minted into coins (absent: zero). */
  readonly unclaimed: HashMap.HashMap<Id.Id, Amount.Amount>
  /** Everything ever created: genesis allocations and block rewards. */
  readonly minted: Amount.Amount
}

/** Read access to state, as validation needs it (an LMDB store can implement it too). */
export interface Reader {
  readonly coin: (id: Id.Id) => Coin | undefined
  readonly isSpent: (id: Id.Id) => boolean
  readonly pending: (id: Id.Id) => Pending | undefined
  readonly rendezvous: (id: Id.Id) => Rendezvous | undefined
  readonly nonce: (account: Id.Id) => number
  readonly keys: (account: Id.Id) => Keys | undefined
  readonly unclaimed: (account: Id.Id) => Amount.Amount
}

/** Nothing at all. */
export const empty: State = {
  coins: HashMap.empty(),
  spent: HashSet.empty(),
  pending: HashMap.empty(),
  rendezvous: HashMap.empty(),
  nonces: HashMap.empty(),
  keys: HashMap.empty(),
  unclaimed: HashMap.empty(),
  minted: Amount.zero
}

/** A reader over a state value. */
export const reader = (state: State): Reader => ({
  coin: (id) => Option.getOrUndefined(HashMap.get(state.coins, id)),
  isSpent: (id) => HashSet.has(state.spent, id),
  pending: (id) => Option.getOrUndefined(HashMap.get(state.pending, id)),
  rendezvous: (id) => Option.getOrUndefined(HashMap.get(state.rendezvous, id)),
  nonce: (account) => Option.getOrElse(HashMap.get(state.nonces, account), () => 0),
  keys: (account) => Option.getOrUndefined(HashMap.get(state.keys, account)),
  unclaimed: (account) => Option.getOrElse(HashMap.get(state.unclaimed, account), () => Amount.zero)
})

/** Validates a signed transaction against any reader: the diff it makes, or a typed reason. */
export const validateWith = (
  source: Reader,
  transaction: Transaction.Transaction,
  params: Params.Params,
  limits: LedgerLimits.Values = LedgerLimits.defaults
): Either.Either<Diff.Diff, LedgerError> => validation.validate(source, transaction, params, limits)

/** Validates a signed transaction against a state value. */
export const validate = (
  state: State,
  transaction: Transaction.Transaction,
  params: Params.Params,
  limits: LedgerLimits.Values = LedgerLimits.defaults
): Either.Either<Diff.Diff, LedgerError> => validation.validate(reader(state), transaction, params, limits)

const putAll = <V>(map: HashMap.HashMap<Id.Id, V>, entries: ReadonlyArray<{ readonly id: Id.Id } & V>, value: (entry: { readonly id: Id.Id } & V) => V) =>
  entries.length === 0 ? map : HashMap.mutate(map, (draft) => {
    for (const entry of entries) HashMap.set(draft, entry.id, value(entry))
  })

const removeAll = <V>(map: HashMap.HashMap<Id.Id, V>, ids: ReadonlyArray<Id.Id>) =>
  ids.length === 0 ? map : HashMap.mutate(map, (draft) => {
    for (const id of ids) HashMap.remove(draft, id)
  })

const withoutId = <V extends { readonly id: Id.Id }>({ id: _, ...rest }: V): Omit<V, "id"> => rest

const applyAccounts = (state: State, diff: Diff.Diff): State => ({
  ...state,
  nonces: diff.nonces.reduce((map, { account, nonce }) => HashMap.set(map, account, nonce), state.nonces),
  keys: diff.keysPut.reduce((map, { account, dsa, kem }) => HashMap.set(map, account, { dsa, kem }), state.keys),
  unclaimed: diff.unclaimed.reduce(
    (map, { account, amount }) => (amount === 0n ? HashMap.remove(map, account) : HashMap.set(map, account, amount)),
    state.unclaimed
  ),
  minted: diff.minted ?? state.minted
})

/** The state after a diff (puts before removals; later entries win). */
export const applyDiff = (state: State, diff: Diff.Diff): State =>
  applyAccounts({
    ...state,
    coins: removeAll(putAll(state.coins, diff.coinsPut, withoutId), diff.coinsSpent),
    spent: diff.coinsSpent.length === 0 ? state.spent : HashSet.mutate(state.spent, (draft) => {
      for (const id of diff.coinsSpent) HashSet.add(draft, id)
    }),
    pending: removeAll(putAll(state.pending, diff.pendingPut, withoutId), diff.pendingRemoved),
    rendezvous: removeAll(putAll(state.rendezvous, diff.rendezvousPut, withoutId), diff.rendezvousRemoved)
  }, diff)

/** A block's outcome: the new state and everything it changed as one diff. */
export interface Applied {
  readonly state: State
  readonly diff: Diff.Diff
}

/** Applies a block's transactions in order, all or nothing; a rejection carries the transaction's `index`. A coin spent twice in the block is DoubleSpend. */
export const applyBlock = (
  state: State,
  transactions: ReadonlyArray<Transaction.Transaction>,
  params: Params.Params,
  limits: LedgerLimits.Values = LedgerLimits.defaults
): Either.Either<Applied, LedgerError> => {
  if (transactions.length > limits.transactionsPerBlockMax) {
    return Either.left(fail("TooLarge", `${transactions.length} transactions, at most ${limits.transactionsPerBlockMax} per block`))
  }
  let current = state
  let combined = Diff.empty
  for (const [index, transaction] of transactions.entries()) {
    const result = validate(current, transaction, params, limits)
    if (Either.isLeft(result)) return Either.left(new LedgerError({ ...result.left, index }))
    current = applyDiff(current, result.right)
    combined = Diff.combine(combined, result.right)
  }
  return Either.right({ state: current, diff: combined })
}

/** An initial allocation. */
export interface Allocation {
  readonly owner: Id.Id
  readonly amount: Amount.Amount
}

/** The genesis diff: one coin per allocation; the allocations and all future issuance must fit in an amount. */
export const genesis = (params: Params.Params, allocations: ReadonlyArray<Allocation>): Either.Either<Applied, LedgerError> =>
  Either.gen(function*() {
    const allocated = yield* Amount.sum(allocations.map((allocation) => allocation.amount))
    yield* Amount.fromBigInt(allocated + Params.issuanceTotal(params)).pipe(Either.mapLeft(() => fail("Overflow", "genesis allocations and issuance reach 2^64")))
    const diff = Diff.make({
      coinsPut: allocations.map((allocation, index) => ({ id: Id.genesis(params.chainId, index), ...allocation })),
      minted: allocated
    })
    return { state: applyDiff(empty, diff), diff }
  })

/** The diff crediting the reward of block `height` to `producer`'s unclaimed rewards. */
export const reward = (state: State, producer: Id.Id, height: number, params: Params.Params): Either.Either<Diff.Diff, LedgerError> =>
  Either.gen(function*() {
    const amount = Params.rewardAt(params, height)
    const minted = yield* Amount.add(state.minted, amount)
    const unclaimed = yield* Amount.add(reader(state).unclaimed(producer), amount)
    return Diff.make({ unclaimed: [{ account: producer, amount: unclaimed }], minted })
  })

/** Value held in coins, in unclaimed rewards, and ever minted (coins + unclaimed = minted). */
export const totals = (state: State): { readonly coins: bigint; readonly unclaimed: bigint; readonly minted: bigint } => {
  let coins = 0n
  for (const coin of HashMap.values(state.coins)) coins += coin.amount
  let unclaimed = 0n
  for (const amount of HashMap.values(state.unclaimed)) unclaimed += amount
  return { coins, unclaimed, minted: state.minted }
}
