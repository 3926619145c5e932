/**
 * The explorer index as a fold over steps (what each transaction, genesis and block reward changed):
 * per account a balance (`balances`: account → spendable, incoming, unclaimed) and a history
 * (`history`: account ‖ height ‖ index → entry). Each step reads only the state before the step, so
 * the import (state in the tables) and a reindex (state replayed in memory) run the same code on the
 * same inputs and write the same bytes.
 */
import { Schema } from "effect"
import { createHash } from "node:crypto"
import * as Amount from "../Amount.js"
import * as Diff from "../Diff.js"
import * as Id from "../Id.js"
import { AmountSchema, Coin, IdSchema } from "../Records.js"
import * as State from "../State.js"
import { concat, decoder, encode, readU32, u32 } from "./storeCodec.js"
import type { Table, Tables } from "./storeTables.js"

/** What one step of a block changed: a transaction (`kind` is its tag), the genesis or a block reward. */
export const Step = Schema.Struct({
  /** The transaction id; the block id for a reward; the genesis id for the genesis. */
  id: IdSchema,
  kind: Schema.String,
  /** The signer; the producer for a reward; absent for the genesis. */
  from: Schema.optionalWith(IdSchema, { exact: true }),
  diff: Diff.Diff
})
/** A step. */
export type Step = typeof Step.Type

/** Every step of one block, in order (stored per height so a reindex needs no signature check). */
export const decodeSteps = decoder(Schema.Array(Step))

/**
 * What the fold of a step reads of the state before it: the previous record of every coin the step puts
 * or spends, and the unclaimed rewards of every account whose rewards it sets. Stored per block at
 * import, so the index can fold the block later (once finalized), when the state has moved on.
 */
export const Prior = Schema.Struct({
  coins: Schema.Array(Schema.Tuple(IdSchema, Schema.NullOr(Coin))),
  unclaimed: Schema.Array(Schema.Tuple(IdSchema, AmountSchema))
})
/** A prior. */
export type Prior = typeof Prior.Type

/** The priors of every step of one block, in step order. */
export const decodePriors = decoder(Schema.Array(Prior))

/** What `changesOf(reader, diff)` reads of `reader`, read now. */
export const priorOf = (reader: State.Reader, diff: Diff.Diff): Prior => {
  const ids = new Set<Id.Id>([...diff.coinsPut.map(({ id }) => id), ...diff.coinsSpent])
  const accounts = new Set<Id.Id>(diff.unclaimed.map(({ account }) => account))
  return {
    coins: Array.from(ids, (id) => [id, reader.coin(id) ?? null] as const),
    unclaimed: Array.from(accounts, (account) => [account, reader.unclaimed(account)] as const)
  }
}

const notRecorded = (what: string): never => {
  throw new Error(`explorer: the stored prior does not record ${what}`)
}

/** A reader answering from a prior: exactly what `changesOf` asks of the step it was recorded for. */
export const priorReader = (prior: Prior): State.Reader => {
  const coins = new Map(prior.coins)
  const unclaimed = new Map(prior.unclaimed)
  return {
    coin: (id) => (coins.has(id) ? coins.get(id) ?? undefined : notRecorded(`coin ${id}`)),
    unclaimed: (account) => unclaimed.get(account) ?? notRecorded(`the unclaimed rewards of ${account}`),
    isSpent: () => notRecorded("spent coins"),
    pending: () => notRecorded("pending transactions"),
    rendezvous: () => notRecorded("rendezvous"),
    nonce: () => notRecorded("nonces"),
    keys: () => notRecorded("keys")
  }
}

/** An account's balances in the index. */
export const Balance = Schema.Struct({ spendable: AmountSchema, incoming: AmountSchema, unclaimed: AmountSchema })
/** Balances. */
export type Balance = typeof Balance.Type

const decodeBalance = decoder(Balance)

/** A stored history entry (the delta as credit and debit, both amounts). */
export const Entry = Schema.Struct({
  txId: IdSchema,
  kind: Schema.String,
  credit: AmountSchema,
  debit: AmountSchema,
  counterparty: Schema.optionalWith(IdSchema, { exact: true })
})
/** A stored history entry. */
export type Entry = typeof Entry.Type

/** Decodes a stored history entry. */
export const decodeEntry = decoder(Entry)

/** No value at all. */
export const zeroBalance: Balance = { spendable: Amount.zero, incoming: Amount.zero, unclaimed: Amount.zero }

type Field = keyof Balance
type Delta = Record<Field, bigint>

/** Per account, how much each balance moves under `diff`, read against the state before it. */
export const changesOf = (reader: State.Reader, diff: Diff.Diff): Map<Id.Id, Delta> => {
  const deltas = new Map<Id.Id, Delta>()
  const bump = (account: Id.Id, field: Field, amount: bigint) => {
    const delta = deltas.get(account) ?? { spendable: 0n, incoming: 0n, unclaimed: 0n }
    delta[field] += amount
    deltas.set(account, delta)
  }
  // A locked coin is an offer to its owner (the recipient): incoming until accepted.
  const count = (coin: Coin, sign: bigint) => bump(coin.owner, coin.lock === undefined ? "spendable" : "incoming", sign * coin.amount)
  const coins = new Map<Id.Id, Coin | undefined>()
  const current = (id: Id.Id) => (coins.has(id) ? coins.get(id) : reader.coin(id))
  for (const { id, ...coin } of diff.coinsPut) {
    const old = current(id)
    if (old !== undefined) count(old, -1n)
    count(coin, 1n)
    coins.set(id, coin)
  }
  for (const id of diff.coinsSpent) {
    const old = current(id)
    if (old !== undefined) count(old, -1n)
    coins.set(id, undefined)
  }
  const unclaimed = new Map<Id.Id, bigint>()
  for (const { account, amount } of diff.unclaimed) {
    bump(account, "unclaimed", amount - (unclaimed.get(account) ?? reader.unclaimed(account)))
    unclaimed.set(account, amount)
  }
  return deltas
}

/** The history key of an account's entry at a block position. */
export const historyKey = (account: Id.Id, height: number, index: number): Uint8Array => concat(Id.toBytes(account), u32(height), u32(index))

/** Past every history key of the account. */
export const historyEnd = (account: Id.Id): Uint8Array => concat(Id.toBytes(account), new Uint8Array(9).fill(0xff))

/** Height and index of a history key. */
export const positionOf = (key: Uint8Array): { readonly height: number; readonly index: number } => ({ height: readU32(key, Id.bytes), index: readU32(key, Id.bytes + 4) })

/** The stored balances of an account (zero when absent). */
export const balance = (tables: Tables, account: Id.Id): Balance => {
  const bytes = tables.get("balances", Id.toBytes(account))
  return bytes === undefined ? zeroBalance : decodeBalance(bytes)
}

const moved = (delta: Delta) => delta.spendable !== 0n || delta.incoming !== 0n || delta.unclaimed !== 0n

const writeBalance = (tables: Tables, account: Id.Id, delta: Delta) => {
  const old = balance(tables, account)
  const next = { spendable: old.spendable + delta.spendable, incoming: old.incoming + delta.incoming, unclaimed: old.unclaimed + delta.unclaimed }
  // A negative balance cannot come out of a valid fold: decoding it back (below) would throw, so refuse it here.
  if (next.spendable < 0n || next.incoming < 0n || next.unclaimed < 0n) throw new Error(`explorer: balance of ${account} goes negative`)
  if (!moved(next)) tables.remove("balances", Id.toBytes(account))
  else tables.put("balances", Id.toBytes(account), encode(next))
}

/** The other party of an entry: for the signer, the one other account that moved; for everyone else, the signer. */
const counterpartyOf = (account: Id.Id, from: Id.Id | undefined, movers: ReadonlyArray<Id.Id>): Id.Id | undefined => {
  if (from === undefined) return undefined
  if (account !== from) return from
  const others = movers.filter((other) => other !== from)
  return others.length === 1 ? others[0] : undefined
}

/** Folds one step into the index: `reader` must show the state before the step. */
export const record = (tables: Tables, reader: State.Reader, height: number, index: number, step: Step): void => {
  const deltas = changesOf(reader, step.diff)
  const movers = Array.from(deltas).filter(([, delta]) => moved(delta)).map(([account]) => account).sort()
  const accounts = step.from === undefined || movers.includes(step.from) ? movers : [...movers, step.from].sort()
  for (const account of accounts) {
    const delta = deltas.get(account) ?? { spendable: 0n, incoming: 0n, unclaimed: 0n }
    writeBalance(tables, account, delta)
    const total = delta.spendable + delta.incoming + delta.unclaimed
    const counterparty = counterpartyOf(account, step.from, movers)
    const entry: Entry = {
      txId: step.id,
      kind: step.kind,
      credit: (total > 0n ? total : 0n) as Amount.Amount,
      debit: (total < 0n ? -total : 0n) as Amount.Amount,
      ...(counterparty === undefined ? {} : { counterparty })
    }
    tables.put("history", historyKey(account, height, index), encode(entry))
  }
}

/** The stored steps of a height (every stored block has them). */
export const stepsAt = (tables: Tables, height: number): ReadonlyArray<Step> => {
  const bytes = tables.get("steps", u32(height))
  if (bytes === undefined) throw new Error(`explorer: no steps stored for height ${height}`)
  return decodeSteps(bytes)
}

/**
 * Rebuilds the index from the stored steps of heights 0 … `indexed`, replaying state in memory on to
 * `head`; returns the state replayed to `head` (to compare with the stored one).
 */
export const rebuild = (tables: Tables, head: number, indexed: number): State.State => {
  tables.clear("balances")
  tables.clear("history")
  let state = State.empty
  for (let height = 0; height <= head; height++) {
    for (const [index, step] of stepsAt(tables, height).entries()) {
      if (height <= indexed) record(tables, State.reader(state), height, index, step)
      state = State.applyDiff(state, step.diff)
    }
  }
  return state
}

/** Folds the stored steps of `height` into the index, each read against its stored prior. */
export const fold = (tables: Tables, height: number): void => {
  const bytes = tables.get("priors", u32(height))
  if (bytes === undefined) throw new Error(`explorer: no priors stored for height ${height}`)
  const priors = decodePriors(bytes)
  for (const [index, step] of stepsAt(tables, height).entries()) {
    const prior = priors[index]
    if (prior === undefined) throw new Error(`explorer: no prior for step ${index} of height ${height}`)
    record(tables, priorReader(prior), height, index, step)
  }
}

/** The index's tables, in the order the digest reads them. */
export const indexTables: ReadonlyArray<Table> = ["balances", "history"]

const lengthPrefix = (bytes: Uint8Array) => u32(bytes.length)

/**
 * SHA-256 of every index entry in table and key order, each as table number, key and value with
 * 4-byte lengths (so no two different indexes hash the same byte string).
 */
export const digest = (tables: Tables): Uint8Array => {
  const hash = createHash("sha256").update("weft/ledger/explorer-index/v1")
  for (const [number, table] of indexTables.entries()) {
    tables.scan(table, (key, value) => {
      hash.update(u32(number)).update(lengthPrefix(key)).update(key).update(lengthPrefix(value)).update(value)
    })
  }
  return new Uint8Array(hash.digest())
}
