/**
 * Pure wallet helpers over a state value: balances, spendable coins, pending transactions, and plans
 * (unsigned bodies with consecutive nonces) for a transfer of an amount or a reward claim. A transfer's
 * change output does the splitting; merges come first only when more coins are needed than one
 * transaction may spend.
 */
import { Either, HashMap } from "effect"
import type * as Account from "./Account.js"
import * as Amount from "./Amount.js"
import * as Id from "./Id.js"
import { LedgerError, make as fail } from "./LedgerError.js"
import * as LedgerLimits from "./LedgerLimits.js"
import type * as Params from "./Params.js"
import type { Coin, Pending } from "./Records.js"
import * as State from "./State.js"
import * as Transaction from "./Transaction.js"

/** A coin with its id. */
export interface OwnedCoin {
  readonly id: Id.Id
  readonly coin: Coin
}

/** A pending transaction with its id and amount. */
export interface PendingView {
  readonly id: Id.Id
  readonly pending: Pending
  readonly amount: Amount.Amount
}

/** What an account holds. */
export interface Balance {
  /** Unlocked coins it owns. */
  readonly spendable: Amount.Amount
  /** Pending transactions addressed to it, not yet accepted. */
  readonly incoming: Amount.Amount
  /** Block rewards it has not minted yet. */
  readonly unclaimed: Amount.Amount
}

// Sums of state amounts cannot overflow: they are parts of `minted`, itself an amount. A failure is a broken invariant.
const total = (amounts: Iterable<Amount.Amount>): Amount.Amount => Either.getOrThrow(Amount.sum(amounts))

/** The account's unlocked coins, largest first. */
export const coins = (state: State.State, account: Id.Id): ReadonlyArray<OwnedCoin> =>
  Array.from(HashMap.filter(state.coins, (coin) => coin.owner === account && coin.lock === undefined), ([id, coin]) => ({ id, coin }))
    .sort((a, b) => (a.coin.amount === b.coin.amount ? (a.id < b.id ? -1 : 1) : a.coin.amount > b.coin.amount ? -1 : 1))

/** Pending transactions to the account (`incoming`) and those that would refund to it (`outgoing`). */
export const pending = (state: State.State, account: Id.Id): { readonly incoming: ReadonlyArray<PendingView>; readonly outgoing: ReadonlyArray<PendingView> } => {
  const views = Array.from(state.pending, ([id, entry]): PendingView => ({
    id,
    pending: entry,
    amount: State.reader(state).coin(entry.coin)?.amount ?? Amount.zero
  }))
  return { incoming: views.filter((view) => view.pending.recipient === account), outgoing: views.filter((view) => view.pending.refund === account) }
}

/** The account's balances. */
export const balance = (state: State.State, account: Id.Id): Balance => ({
  spendable: total(coins(state, account).map(({ coin }) => coin.amount)),
  incoming: total(pending(state, account).incoming.map((view) => view.amount)),
  unclaimed: State.reader(state).unclaimed(account)
})

/** What to pay, to whom. */
export interface TransferRequest {
  readonly amount: Amount.Amount
  readonly recipient: Id.Id
  readonly refund?: Id.Id
}

const select = (available: ReadonlyArray<OwnedCoin>, amount: Amount.Amount): Either.Either<ReadonlyArray<OwnedCoin>, LedgerError> => {
  const chosen: Array<OwnedCoin> = []
  let sum = 0n
  for (const owned of available) {
    if (sum >= amount) break
    chosen.push(owned)
    sum += owned.coin.amount
  }
  return sum >= amount ? Either.right(chosen) : Either.left(fail("InsufficientFunds", `${sum} spendable units, ${amount} needed`))
}

interface Held {
  readonly id: Id.Id
  readonly amount: Amount.Amount
}

/** Merges the first `max` held coins into one until at most `max` remain; returns the merges and what remains. */
const mergeDown = (held: ReadonlyArray<Held>, max: number, base: { chain: string; from: Uint8Array }, nonce: number) => {
  const merges: Array<Transaction.Body> = []
  let pool = held
  while (pool.length > max) {
    const chunk = pool.slice(0, max)
    const body: Transaction.Body = { _tag: "Merge", ...base, nonce: nonce + merges.length + 1, coins: chunk.map((coin) => Id.toBytes(coin.id)) }
    const merged = { id: Id.coin(Either.getOrThrow(Transaction.id(body)), 0), amount: total(chunk.map((coin) => coin.amount)) }
    merges.push(body)
    pool = [merged, ...pool.slice(max)]
  }
  return { merges, pool }
}

/** Plans a transfer of an amount: coin selection (largest first), merges if needed, then the Transfer with change. */
export const planTransfer = (
  state: State.State,
  account: Id.Id,
  request: TransferRequest,
  params: Params.Params,
  limits: LedgerLimits.Values = LedgerLimits.defaults
): Either.Either<ReadonlyArray<Transaction.Body>, LedgerError> =>
  Either.map(select(coins(state, account), request.amount), (chosen) => {
    const base = { chain: params.chainId, from: Id.toBytes(account) }
    const nonce = State.reader(state).nonce(account)
    const held = chosen.map(({ id, coin }) => ({ id, amount: coin.amount }))
    const { merges, pool } = mergeDown(held, limits.inputsPerTransactionMax, base, nonce)
    const transfer: Transaction.Body = {
      _tag: "Transfer",
      ...base,
      nonce: nonce + merges.length + 1,
      inputs: pool.map((coin) => Id.toBytes(coin.id)),
      amount: request.amount,
      change: total(pool.map((coin) => coin.amount)) - request.amount,
      recipient: Id.toBytes(request.recipient),
      ...(request.refund === undefined ? {} : { refund: Id.toBytes(request.refund) })
    }
    return [...merges, transfer]
  })

/** Plans a claim of every accrued reward, merged into the account's largest coin so rewards stay in one coin. */
export const planClaim = (state: State.State, account: Id.Id, params: Params.Params): Either.Either<Transaction.Body, LedgerError> => {
  if (State.reader(state).unclaimed(account) === 0n) return Either.left(fail("NothingToClaim", `${Id.display(account)} has no unclaimed rewards`))
  const largest = coins(state, account)[0]
  const body: Transaction.Body = {
    _tag: "Mint",
    chain: params.chainId,
    from: Id.toBytes(account),
    nonce: State.reader(state).nonce(account) + 1,
    ...(largest === undefined ? {} : { into: Id.toBytes(largest.id) })
  }
  return Either.right(body)
}

/** Signs planned bodies as `account`. */
export const signAll = (
  bodies: ReadonlyArray<Transaction.Body>,
  account: Account.Account,
  options: Transaction.SignOptions = {}
): Either.Either<ReadonlyArray<Transaction.Transaction>, LedgerError> => Either.all(bodies.map((body) => Transaction.sign(body, account, options)))
