/**
 * The mempool: signed transactions waiting for a block, bounded by count (`mempoolTransactionsMax`)
 * and canonical bytes (`mempoolBytesMax`). A mutable structure owned by one node (one fiber or one
 * callback at a time), so adding and taking cost no copy.
 *
 * - Dedup: by transaction id, and by (account, nonce): the first transaction seen for a nonce keeps it
 *   (Duplicate for a second one; there is no fee market to rank replacements by).
 * - Admission: the account's next nonce must validate fully against the given state; a later nonce
 *   (a "future" transaction, waiting for its predecessors) must name this chain and carry a valid
 *   signature of its account, and is validated fully when `take` reaches it.
 * - Per account: at most `mempoolTransactionsPerAccountMax`; past it the account's highest nonce
 *   (the newcomer's included) goes, so one account cannot fill the pool with far-future nonces.
 * - Eviction when full: the lowest-ranked transaction goes, where rank is the nonce gap against the
 *   given state (the further ahead of its account's next nonce, the lower), then arrival (the newest
 *   is lower). Only an account's highest nonce is a candidate, so eviction never opens a gap inside an
 *   account's queue. If the newcomer ranks lowest it is refused with MempoolFull. There is no fee:
 *   with equal gaps the oldest stays, so a flood of new transactions cannot push out waiting ones.
 * - `revalidate` against a new head drops what the head included (nonce at or below the account's)
 *   and what spends a coin the head spent; it verifies no signature (admission did; `take` validates).
 * - `take` picks a valid ordered batch: the earliest-arrived of the ready transactions (each account's
 *   next nonce) first, so each account goes in nonce order, every transaction validated against the
 *   state its predecessors in the batch leave; an invalid one is dropped from the pool.
 */
import { Either } from "effect"
import * as Account from "./Account.js"
import * as Id from "./Id.js"
import { MinHeap } from "./internal/mempoolHeap.js"
import { resolveKey } from "./internal/validate.js"
import { make as fail } from "./LedgerError.js"
import type { LedgerError } from "./LedgerError.js"
import * as LedgerLimits from "./LedgerLimits.js"
import type * as Params from "./Params.js"
import * as State from "./State.js"
import * as Transaction from "./Transaction.js"

interface Item {
  readonly id: Id.Id
  readonly tx: Transaction.Transaction
  readonly account: Id.Id
  readonly nonce: number
  readonly bytes: number
  readonly seq: number
}

/** A node's mempool. */
export interface Mempool {
  readonly limits: LedgerLimits.Values
  readonly byId: Map<Id.Id, Item>
  /** Per account, its transactions by nonce. */
  readonly byAccount: Map<Id.Id, Map<number, Item>>
  bytes: number
  seq: number
}

/** An empty mempool with the given bounds. */
export const make = (limits: LedgerLimits.Values = LedgerLimits.defaults): Mempool => ({ limits, byId: new Map(), byAccount: new Map(), bytes: 0, seq: 0 })

/** Transactions held. */
export const size = (pool: Mempool): number => pool.byId.size

/** Canonical bytes held. */
export const bytes = (pool: Mempool): number => pool.bytes

/** Whether the pool holds a transaction. */
export const has = (pool: Mempool, id: Id.Id): boolean => pool.byId.has(id)

/** Every transaction held, oldest first (to re-announce them, or to inspect). */
export const transactions = (pool: Mempool): ReadonlyArray<Transaction.Transaction> =>
  Array.from(pool.byId.values()).sort((a, b) => a.seq - b.seq).map((item) => item.tx)

const remove = (pool: Mempool, item: Item): void => {
  pool.byId.delete(item.id)
  pool.bytes -= item.bytes
  const queue = pool.byAccount.get(item.account)
  queue?.delete(item.nonce)
  if (queue?.size === 0) pool.byAccount.delete(item.account)
}

const insert = (pool: Mempool, item: Item): void => {
  pool.byId.set(item.id, item)
  pool.bytes += item.bytes
  const queue = pool.byAccount.get(item.account) ?? new Map<number, Item>()
  queue.set(item.nonce, item)
  pool.byAccount.set(item.account, queue)
}

/** A future transaction's cheap admission: this chain, and its account's signature. */
const checkFuture = (state: State.State, tx: Transaction.Transaction, txId: Id.Id, account: Id.Id, params: Params.Params): Either.Either<void, LedgerError> => {
  if (tx.body.chain !== params.chainId) return Either.left(fail("WrongChain", `signed for chain ${JSON.stringify(tx.body.chain)}`))
  return Either.flatMap(resolveKey(State.reader(state), account, tx.auth.publicKey), (key) =>
    Account.verify(key, Transaction.signingMessage(txId), tx.auth.signature) ? Either.void : Either.left(fail("BadSignature", "the signer's signature does not verify")))
}

const admit = (pool: Mempool, tx: Transaction.Transaction, state: State.State, params: Params.Params): Either.Either<Item, LedgerError> =>
  Either.gen(function*() {
    yield* Transaction.check(tx, pool.limits)
    const id = yield* Transaction.id(tx.body)
    if (pool.byId.has(id)) return yield* Either.left(fail("Duplicate", `transaction 0x${id} is pending`))
    const account = Transaction.sender(tx.body)
    const { nonce } = tx.body
    const next = State.reader(state).nonce(account) + 1
    if (nonce < next) return yield* Either.left(fail("Replay", `nonce ${nonce} is used; the next is ${next}`))
    if (pool.byAccount.get(account)?.has(nonce) === true) return yield* Either.left(fail("Duplicate", `account 0x${account} has a pending transaction with nonce ${nonce}`))
    if (nonce === next) yield* State.validate(state, tx, params, pool.limits)
    else yield* checkFuture(state, tx, id, account, params)
    const encoded = yield* Transaction.encode(tx)
    return { id, tx, account, nonce, bytes: encoded.length, seq: pool.seq++ }
  })

/** The lower-ranked of two items: the larger nonce gap, then the later arrival. */
const lower = (state: State.State) => {
  const reader = State.reader(state)
  const gap = (item: Item) => item.nonce - reader.nonce(item.account) - 1
  return (a: Item, b: Item): Item => (gap(a) !== gap(b) ? (gap(a) > gap(b) ? a : b) : a.seq > b.seq ? a : b)
}

const tailOf = (queue: ReadonlyMap<number, Item>): Item | undefined => {
  let tail: Item | undefined
  for (const item of queue.values()) if (tail === undefined || item.nonce > tail.nonce) tail = item
  return tail
}

/** The lowest-ranked of the newcomer and every account's highest nonce. */
const victim = (pool: Mempool, state: State.State, newcomer: Item): Item => {
  const pick = lower(state)
  let lowest = newcomer
  for (const queue of pool.byAccount.values()) {
    const tail = tailOf(queue)
    if (tail !== undefined) lowest = pick(lowest, tail)
  }
  return lowest
}

/** The item to drop to keep the newcomer's account within its cap: none, the account's highest nonce, or the newcomer itself. */
const overCap = (pool: Mempool, item: Item): Item | undefined => {
  const queue = pool.byAccount.get(item.account)
  if (queue === undefined || queue.size < pool.limits.mempoolTransactionsPerAccountMax) return undefined
  const tail = tailOf(queue)
  return tail === undefined || tail.nonce < item.nonce ? item : tail
}

const full = (pool: Mempool, extraBytes: number): boolean =>
  pool.byId.size + 1 > pool.limits.mempoolTransactionsMax || pool.bytes + extraBytes > pool.limits.mempoolBytesMax

/**
 * Adds a transaction checked against `state` (the node's head): its id, or why not (the validation
 * reason, Duplicate, Replay, or MempoolFull when it ranks below everything held in a full pool).
 */
export const add = (pool: Mempool, tx: Transaction.Transaction, state: State.State, params: Params.Params): Either.Either<Id.Id, LedgerError> =>
  Either.flatMap(admit(pool, tx, state, params), (item) => {
    if (item.bytes > pool.limits.mempoolBytesMax) return Either.left(fail("MempoolFull", `a ${item.bytes}-byte transaction exceeds the mempool's ${pool.limits.mempoolBytesMax} bytes`))
    const capped = overCap(pool, item)
    if (capped === item) return Either.left(fail("MempoolFull", `account 0x${item.account} holds ${pool.limits.mempoolTransactionsPerAccountMax} pending transactions with lower nonces`))
    if (capped !== undefined) remove(pool, capped)
    const evicted: Array<Item> = []
    while (full(pool, item.bytes)) {
      const lowest = victim(pool, state, item)
      if (lowest === item) {
        // Refused after all: put back what was taken out for it, so a refusal changes nothing.
        for (const back of [...evicted, ...(capped === undefined ? [] : [capped])]) insert(pool, back)
        return Either.left(fail("MempoolFull", "the mempool is full of transactions that rank above this one"))
      }
      remove(pool, lowest)
      evicted.push(lowest)
    }
    insert(pool, item)
    return Either.right(item.id)
  })

/** Drops what `state` (a new head) included or made unspendable; returns how many were dropped. No signature work. */
export const revalidate = (pool: Mempool, state: State.State): number => {
  const reader = State.reader(state)
  let dropped = 0
  for (const item of Array.from(pool.byId.values())) {
    const stale = item.nonce <= reader.nonce(item.account) ||
      Transaction.inputs(item.tx.body).some((coin) => reader.isSpent(Id.fromBytes(coin)))
    if (stale) {
      remove(pool, item)
      dropped++
    }
  }
  return dropped
}

/**
 * A valid ordered batch for a block on `state`: at most `max` transactions and `bytesMax` canonical
 * bytes; the pool keeps them (a later `revalidate` against the new head drops what was included).
 */
export const take = (pool: Mempool, state: State.State, params: Params.Params, max: number, bytesMax = pool.limits.blockBytesMax - 4096): ReadonlyArray<Transaction.Transaction> => {
  const heads = new MinHeap<Item>((a, b) => a.seq < b.seq)
  const reader = State.reader(state)
  for (const [account, queue] of pool.byAccount) {
    const head = queue.get(reader.nonce(account) + 1)
    if (head !== undefined) heads.push(head)
  }
  const batch: Array<Transaction.Transaction> = []
  let current = state
  let used = 0
  for (let item = heads.pop(); item !== undefined && batch.length < max; item = heads.pop()) {
    if (used + item.bytes > bytesMax) continue
    const result = State.validate(current, item.tx, params, pool.limits)
    if (Either.isLeft(result)) {
      remove(pool, item)
      continue
    }
    current = State.applyDiff(current, result.right)
    used += item.bytes
    batch.push(item.tx)
    const successor = pool.byAccount.get(item.account)?.get(item.nonce + 1)
    if (successor !== undefined) heads.push(successor)
  }
  return batch
}
