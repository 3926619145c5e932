/**
 * The state checks of each transaction kind, after `Transaction.check` and the chain, nonce and key
 * checks, and before any signature is verified. Each returns the kind's diff (without the nonce bump).
 */
import { Either } from "effect"
import * as Amount from "../Amount.js"
import * as Diff from "../Diff.js"
import * as Id from "../Id.js"
import { LedgerError, make as fail } from "../LedgerError.js"
import type { Reader } from "../State.js"
import type * as Transaction from "../Transaction.js"

type Result = Either.Either<Diff.Diff, LedgerError>

/** What a kind's check sees. */
export interface Input<B> {
  readonly reader: Reader
  readonly body: B
  readonly txId: Id.Id
  readonly from: Id.Id
}

interface Spent {
  readonly ids: ReadonlyArray<Id.Id>
  readonly total: Amount.Amount
}

/** Checks that `owner` may spend every coin once, and sums them. */
export const spend = (reader: Reader, coins: ReadonlyArray<Uint8Array>, owner: Id.Id): Either.Either<Spent, LedgerError> => {
  const ids: Array<Id.Id> = []
  let total = Amount.zero
  for (const bytes of coins) {
    const id = Id.fromBytes(bytes)
    if (ids.includes(id) || reader.isSpent(id)) return Either.left(fail("DoubleSpend", `coin ${Id.display(id)} is already spent`))
    const coin = reader.coin(id)
    if (coin === undefined) return Either.left(fail("CoinNotFound", `no coin ${Id.display(id)}`))
    if (coin.lock !== undefined) return Either.left(fail("CoinLocked", `coin ${Id.display(id)} is locked by pending ${Id.display(coin.lock)}`))
    if (coin.owner !== owner) return Either.left(fail("NotOwner", `coin ${Id.display(id)} belongs to ${Id.display(coin.owner)}`))
    const sum = Amount.add(total, coin.amount)
    if (Either.isLeft(sum)) return Either.left(sum.left)
    ids.push(id)
    total = sum.right
  }
  return Either.right({ ids, total })
}

const positive = (amount: Amount.Amount, what: string): Either.Either<Amount.Amount, LedgerError> =>
  amount === 0n ? Either.left(fail("ZeroAmount", `${what} of nothing`)) : Either.right(amount)

/** inputs = amount + change, or NotConserved. */
const conserved = (total: Amount.Amount, amount: Amount.Amount, change: Amount.Amount): Either.Either<void, LedgerError> =>
  Either.flatMap(Amount.add(amount, change), (outputs) =>
    outputs === total ? Either.void : Either.left(fail("NotConserved", `inputs ${total} ≠ outputs ${outputs}`)))

const changeCoin = (txId: Id.Id, from: Id.Id, change: Amount.Amount) =>
  change === 0n ? [] : [{ id: Id.coin(txId, 1), owner: from, amount: change }]

const refundOf = (body: { readonly recipient: Uint8Array; readonly refund?: Uint8Array }, from: Id.Id): Either.Either<{ recipient: Id.Id; refund: Id.Id }, LedgerError> => {
  const recipient = Id.fromBytes(body.recipient)
  const refund = body.refund === undefined ? from : Id.fromBytes(body.refund)
  return refund === recipient ? Either.left(fail("RefundIsRecipient", `the refund account ${Id.display(refund)} is the recipient`)) : Either.right({ recipient, refund })
}

/** A pending transaction holding `coin`, and the coin locked to it (owned by whoever may accept it). */
const offer = (txId: Id.Id, coin: Id.Id, amount: Amount.Amount, parties: { recipient: Id.Id; refund: Id.Id }) => {
  const pendingId = Id.pending(txId)
  return {
    coinsPut: [{ id: coin, owner: parties.recipient, amount, lock: pendingId }],
    pendingPut: [{ id: pendingId, coin, ...parties }]
  }
}

/** Transfer: spend inputs, lock output 0 in a pending transaction, change as output 1. */
export const transfer = ({ reader, body, txId, from }: Input<typeof Transaction.Transfer.Type>): Result =>
  Either.gen(function*() {
    const parties = yield* refundOf(body, from)
    const amount = yield* positive(body.amount as Amount.Amount, "a transfer")
    const spent = yield* spend(reader, body.inputs, from)
    yield* conserved(spent.total, amount, body.change as Amount.Amount)
    const offered = offer(txId, Id.coin(txId, 0), amount, parties)
    return Diff.make({ ...offered, coinsPut: [...offered.coinsPut, ...changeCoin(txId, from, body.change as Amount.Amount)], coinsSpent: spent.ids })
  })

/** TransferCoin: lock the coin, as it is, in a pending transaction. */
export const transferCoin = ({ reader, body, txId, from }: Input<typeof Transaction.TransferCoin.Type>): Result =>
  Either.gen(function*() {
    const parties = yield* refundOf(body, from)
    const spent = yield* spend(reader, [body.coin], from)
    return Diff.make(offer(txId, spent.ids[0]!, spent.total, parties))
  })

const pendingFor = (reader: Reader, pendingBytes: Uint8Array, from: Id.Id) => {
  const id = Id.fromBytes(pendingBytes)
  const pending = reader.pending(id)
  if (pending === undefined) return Either.left(fail("PendingNotFound", `no pending transaction ${Id.display(id)}`))
  if (pending.recipient !== from) return Either.left(fail("NotRecipient", `pending ${Id.display(id)} is for ${Id.display(pending.recipient)}`))
  const coin = reader.coin(pending.coin)
  // A pending transaction always holds its live locked coin: anything else is a broken invariant.
  if (coin === undefined) throw new Error(`ledger state: pending ${id} lost its coin ${pending.coin}`)
  return Either.right({ id, pending, coin })
}

/** Accept: the locked coin becomes the recipient's, same id, unlocked. */
export const accept = ({ reader, body, from }: Input<typeof Transaction.Accept.Type>): Result =>
  Either.map(pendingFor(reader, body.pending, from), ({ id, pending, coin }) =>
    Diff.make({ coinsPut: [{ id: pending.coin, owner: from, amount: coin.amount }], pendingRemoved: [id] }))

/** Reject: a new pending transaction of the same coin to the refund account (which may reject it back). */
export const reject = ({ reader, body, txId, from }: Input<typeof Transaction.Reject.Type>): Result =>
  Either.map(pendingFor(reader, body.pending, from), ({ id, pending, coin }) =>
    Diff.make({ ...offer(txId, pending.coin, coin.amount, { recipient: pending.refund, refund: from }), pendingRemoved: [id] }))

/** Rendezvous: publish what the receiver expects. */
export const rendezvous = ({ body, txId, from }: Input<typeof Transaction.Rendezvous.Type>): Result =>
  Either.map(positive(body.amount as Amount.Amount, "a rendezvous"), (amount) =>
    Diff.make({ rendezvousPut: [{ id: Id.rendezvous(txId), receiver: from, amount, commitment: Id.fromBytes(body.commitment) }] }))

/** MutualTransfer: pay the rendezvous; the coin lands owned by the receiver, its id hidden behind the secret. */
export const mutualTransfer = ({ reader, body, txId, from }: Input<typeof Transaction.MutualTransfer.Type>, secret: Uint8Array): Result =>
  Either.gen(function*() {
    const rendezvousId = Id.fromBytes(body.rendezvous)
    const target = reader.rendezvous(rendezvousId)
    if (target === undefined) return yield* Either.left(fail("RendezvousNotFound", `no rendezvous ${Id.display(rendezvousId)}`))
    if (body.amount !== target.amount) return yield* Either.left(fail("AmountMismatch", `the rendezvous expects ${target.amount}, not ${body.amount}`))
    if (Id.commitment(secret) !== target.commitment) return yield* Either.left(fail("BadSecret", "the secret does not open the rendezvous commitment"))
    const spent = yield* spend(reader, body.inputs, from)
    yield* conserved(spent.total, target.amount, body.change as Amount.Amount)
    const coin = Id.mutualCoin(rendezvousId, secret)
    if (reader.coin(coin) !== undefined || reader.isSpent(coin)) return yield* Either.left(fail("CoinExists", `coin ${Id.display(coin)} exists`))
    return Diff.make({
      coinsPut: [{ id: coin, owner: target.receiver, amount: target.amount }, ...changeCoin(txId, from, body.change as Amount.Amount)],
      coinsSpent: spent.ids,
      rendezvousRemoved: [rendezvousId]
    })
  })

/** Split: one coin into two that sum to it. */
export const split = ({ reader, body, txId, from }: Input<typeof Transaction.Split.Type>): Result =>
  Either.gen(function*() {
    const [first, second] = body.amounts as readonly [Amount.Amount, Amount.Amount]
    yield* positive(first, "a split part")
    yield* positive(second, "a split part")
    const spent = yield* spend(reader, [body.coin], from)
    yield* conserved(spent.total, first, second)
    return Diff.make({
      coinsPut: [{ id: Id.coin(txId, 0), owner: from, amount: first }, { id: Id.coin(txId, 1), owner: from, amount: second }],
      coinsSpent: spent.ids
    })
  })

/** Merge: coins into one. */
export const merge = ({ reader, body, txId, from }: Input<typeof Transaction.Merge.Type>): Result =>
  Either.map(spend(reader, body.coins, from), (spent) =>
    Diff.make({ coinsPut: [{ id: Id.coin(txId, 0), owner: from, amount: spent.total }], coinsSpent: spent.ids }))

/** Mint: every accrued reward into one coin (with `into` merged in). */
export const mint = ({ reader, body, txId, from }: Input<typeof Transaction.Mint.Type>): Result =>
  Either.gen(function*() {
    const accrued = reader.unclaimed(from)
    if (accrued === 0n) return yield* Either.left(fail("NothingToClaim", `${Id.display(from)} has no unclaimed rewards`))
    const spent = yield* spend(reader, body.into === undefined ? [] : [body.into], from)
    const amount = yield* Amount.add(accrued, spent.total)
    return Diff.make({
      coinsPut: [{ id: Id.coin(txId, 0), owner: from, amount }],
      coinsSpent: spent.ids,
      unclaimed: [{ account: from, amount: Amount.zero }]
    })
  })

/** RegisterKeys: bind the signer's ML-DSA key and an ML-KEM key to the account. */
export const registerKeys = ({ body, from }: Input<typeof Transaction.RegisterKeys.Type>, dsa: Uint8Array): Result =>
  Either.right(Diff.make({ keysPut: [{ account: from, dsa, kem: body.kem }] }))
