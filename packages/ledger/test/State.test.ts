import { assert, describe, it } from "@effect/vitest"
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js"
import { Either, HashMap } from "effect"
import * as Amount from "../src/Amount.js"
import * as Diff from "../src/Diff.js"
import * as Display from "../src/Display.js"
import * as Id from "../src/Id.js"
import * as LedgerLimits from "../src/LedgerLimits.js"
import * as State from "../src/State.js"
import * as Transaction from "../src/Transaction.js"
import * as Wallet from "../src/Wallet.js"
import { alice, apply, base, bob, carol, genesis, genesisCoin, ok, params, reasonOf, signed, snapshot, tokens } from "./fixtures.js"

const aliceCoin = Id.toBytes(genesisCoin(0))
const bobCoin = Id.toBytes(genesisCoin(1))

const transferBody = (state: State.State, patch: Partial<typeof Transaction.Transfer.Type> = {}): Transaction.Body => ({
  _tag: "Transfer",
  ...base(state, alice),
  inputs: [aliceCoin],
  amount: tokens(30),
  change: tokens(70),
  recipient: Id.toBytes(bob.id),
  ...patch
})

/** The reason `validate` gives for a body signed by `signer` (Alice by default). */
const rejection = (state: State.State, body: Transaction.Body, signer = alice) => reasonOf(State.validate(state, signed(body, signer), params))

/** Alice sends Bob 30 of her 100 tokens: a pending transaction holding a locked coin. */
const sent = () => {
  const state = genesis()
  const transaction = signed(transferBody(state), alice)
  const txId = ok(Transaction.id(transaction.body))
  return { state: apply(state, transaction), pendingId: Id.pending(txId), lockedCoin: Id.coin(txId, 0), changeCoin: Id.coin(txId, 1) }
}

const secret = new Uint8Array(32).fill(7)

/** Bob publishes a rendezvous for 20 tokens. */
const rendezvousFor = (amount = tokens(20)) => {
  const state = genesis()
  const transaction = signed({ _tag: "Rendezvous", ...base(state, bob), amount, commitment: Id.toBytes(Id.commitment(secret)) }, bob)
  return { state: apply(state, transaction), rendezvousId: Id.rendezvous(ok(Transaction.id(transaction.body))) }
}

const mutualBody = (state: State.State, rendezvousId: Id.Id, patch: Partial<typeof Transaction.MutualTransfer.Type> = {}): Transaction.Body => ({
  _tag: "MutualTransfer",
  ...base(state, alice),
  rendezvous: Id.toBytes(rendezvousId),
  inputs: [aliceCoin],
  amount: tokens(20),
  change: tokens(80),
  ...patch
})

describe("State: transactions that apply", () => {
  it("transfer, then accept: the coin becomes the recipient's", () => {
    const { state, pendingId, lockedCoin, changeCoin } = sent()
    assert.deepStrictEqual(Wallet.balance(state, alice.id), { spendable: tokens(70), incoming: 0n, unclaimed: 0n })
    assert.deepStrictEqual(Wallet.balance(state, bob.id), { spendable: tokens(50), incoming: tokens(30), unclaimed: 0n })
    assert.strictEqual(Wallet.pending(state, alice.id).outgoing[0]?.id, pendingId)
    const accepted = apply(state, signed({ _tag: "Accept", ...base(state, bob), pending: Id.toBytes(pendingId) }, bob))
    assert.deepStrictEqual(HashMap.get(accepted.coins, lockedCoin).pipe((coin) => coin._tag === "Some" ? coin.value : undefined), { owner: bob.id, amount: tokens(30) })
    assert.strictEqual(HashMap.size(accepted.pending), 0)
    assert.strictEqual(Wallet.balance(accepted, bob.id).spendable, tokens(80))
    assert.isTrue(HashMap.has(accepted.coins, changeCoin))
    assert.strictEqual(State.reader(accepted).nonce(bob.id), 1)
  })

  it("reject: a new pending transaction back to the refund account", () => {
    const { state, pendingId, lockedCoin } = sent()
    const rejected = signed({ _tag: "Reject", ...base(state, bob), pending: Id.toBytes(pendingId) }, bob)
    const after = apply(state, rejected)
    const bounced = Id.pending(ok(Transaction.id(rejected.body)))
    assert.deepStrictEqual(State.reader(after).pending(bounced), { coin: lockedCoin, recipient: alice.id, refund: bob.id })
    assert.strictEqual(State.reader(after).coin(lockedCoin)?.lock, bounced)
    const back = apply(after, signed({ _tag: "Accept", ...base(after, alice), pending: Id.toBytes(bounced) }, alice))
    assert.strictEqual(Wallet.balance(back, alice.id).spendable, tokens(100))
  })

  it("a refund account other than the sender gets a rejected transfer", () => {
    const state = genesis()
    const after = apply(state, signed(transferBody(state, { refund: Id.toBytes(carol.id) }), alice))
    const [view] = Wallet.pending(after, bob.id).incoming
    assert.strictEqual(view?.pending.refund, carol.id)
    const rejected = apply(after, signed({ _tag: "Reject", ...base(after, bob), pending: Id.toBytes(view!.id) }, bob))
    assert.strictEqual(Wallet.pending(rejected, carol.id).incoming[0]?.amount, tokens(30))
  })

  it("transfer of a specific coin locks that very coin", () => {
    const state = genesis()
    const transaction = signed({ _tag: "TransferCoin", ...base(state, alice), coin: aliceCoin, recipient: Id.toBytes(bob.id) }, alice)
    const after = apply(state, transaction)
    assert.deepStrictEqual(State.reader(after).coin(genesisCoin(0)), { owner: bob.id, amount: tokens(100), lock: Id.pending(ok(Transaction.id(transaction.body))) })
  })

  it("mutual transfer: one step, the coin id depends on the receiver's secret", () => {
    const { state, rendezvousId } = rendezvousFor()
    const half = signed(mutualBody(state, rendezvousId), alice)
    const whole = ok(Transaction.reveal(half, bob, secret))
    const after = apply(state, whole)
    const coin = Id.mutualCoin(rendezvousId, secret)
    assert.deepStrictEqual(State.reader(after).coin(coin), { owner: bob.id, amount: tokens(20) })
    assert.strictEqual(HashMap.size(after.rendezvous), 0)
    assert.strictEqual(Wallet.balance(after, bob.id).spendable, tokens(70))
    assert.strictEqual(Display.privateCoin(tokens(20), params), "20.0 WEFT (Coin [private])")
  })

  it("split, merge, and a reward minted into one coin", () => {
    const state = genesis()
    const split = signed({ _tag: "Split", ...base(state, alice), coin: aliceCoin, amounts: [tokens(40), tokens(60)] }, alice)
    const splitId = ok(Transaction.id(split.body))
    const afterSplit = apply(state, split)
    assert.strictEqual(Wallet.coins(afterSplit, alice.id).length, 2)
    const merge = signed({ _tag: "Merge", ...base(afterSplit, alice), coins: [Id.toBytes(Id.coin(splitId, 0)), Id.toBytes(Id.coin(splitId, 1))] }, alice)
    const afterMerge = apply(afterSplit, merge)
    assert.deepStrictEqual(Wallet.coins(afterMerge, alice.id).map(({ coin }) => coin.amount), [tokens(100)])
    const rewarded = State.applyDiff(afterMerge, ok(State.reward(afterMerge, alice.id, 0, params)))
    assert.strictEqual(Wallet.balance(rewarded, alice.id).unclaimed, params.initialRewardUnits)
    const claimed = apply(rewarded, signed(ok(Wallet.planClaim(rewarded, alice.id, params)), alice))
    assert.deepStrictEqual(Wallet.coins(claimed, alice.id).map(({ coin }) => coin.amount), [tokens(100) + params.initialRewardUnits])
    assert.deepStrictEqual(Wallet.balance(claimed, alice.id).unclaimed, 0n)
  })

  it("register keys: the chain serves them, and the account may then sign without its public key", () => {
    const state = genesis()
    const kem = ml_kem768.keygen(new Uint8Array(64).fill(3)).publicKey
    const after = apply(state, signed({ _tag: "RegisterKeys", ...base(state, alice), kem }, alice))
    assert.deepStrictEqual(State.reader(after).keys(alice.id), { dsa: alice.publicKey, kem })
    const compact = signed(transferBody(after), alice, { includePublicKey: false })
    assert.strictEqual(reasonOf(State.validate(after, compact, params)), "ok")
  })

  it("the wallet merges first when a transfer needs more coins than one transaction may spend", () => {
    const many = genesis(Array.from({ length: 7 }, () => ({ owner: alice.id, amount: tokens(10) })))
    const limits = { ...LedgerLimits.defaults, inputsPerTransactionMax: 3 }
    const bodies = ok(Wallet.planTransfer(many, alice.id, { amount: tokens(65), recipient: bob.id }, params, limits))
    assert.deepStrictEqual(bodies.map((body) => body._tag), ["Merge", "Merge", "Transfer"])
    const { state } = ok(State.applyBlock(many, ok(Wallet.signAll(bodies, alice)), params, limits))
    assert.deepStrictEqual(Wallet.balance(state, alice.id).spendable, tokens(5))
    assert.deepStrictEqual(Wallet.balance(state, bob.id).incoming, tokens(65))
  })

  it("prints value the way the CLI does", () => {
    assert.strictEqual(Display.account(tokens(50), alice.id, params), `50.0 WEFT (Account 0x${alice.id})`)
    assert.strictEqual(Display.coin(tokens(25), genesisCoin(0), params), `25.0 WEFT (Coin 0x${genesisCoin(0)})`)
    assert.strictEqual(Display.pending((tokens(25) / 2n) as Amount.Amount, genesisCoin(0), params), `12.5 WEFT (Pending Transaction 0x${genesisCoin(0)})`)
  })
})

describe("State: every rejection reason, with a hostile transaction", () => {
  it("NegativeAmount", () => {
    const state = genesis()
    assert.strictEqual(rejection(state, transferBody(state, { amount: -tokens(1), change: tokens(101) })), "NegativeAmount")
    assert.strictEqual(rejection(state, { _tag: "Split", ...base(state, alice), coin: aliceCoin, amounts: [tokens(101), -tokens(1)] }), "NegativeAmount")
  })

  it("AmountTooLarge", () => {
    const state = genesis()
    // Unsignable (no canonical form), so it carries a dummy signature: the amount check comes first.
    const hostile = { body: transferBody(state, { amount: 2n ** 64n, change: 0n }), auth: { publicKey: alice.publicKey, signature: new Uint8Array(3309) } }
    assert.strictEqual(reasonOf(State.validate(state, hostile, params)), "AmountTooLarge")
    assert.strictEqual(reasonOf(Transaction.encode(hostile)), "Malformed")
  })

  it("Overflow: a sum of outputs that wraps past 2^64", () => {
    const rich = genesis([{ owner: alice.id, amount: (2n ** 62n) as Amount.Amount }])
    const body = transferBody(rich, { amount: Amount.max, change: 2n ** 62n + 1n })
    assert.strictEqual(rejection(rich, body), "Overflow")
    assert.strictEqual(reasonOf(State.genesis(params, [{ owner: alice.id, amount: Amount.max }])), "Overflow")
  })

  it("NotConserved", () => {
    const state = genesis()
    assert.strictEqual(rejection(state, transferBody(state, { change: tokens(80) })), "NotConserved")
    assert.strictEqual(rejection(state, { _tag: "Split", ...base(state, alice), coin: aliceCoin, amounts: [tokens(60), tokens(60)] }), "NotConserved")
    const { state: rv, rendezvousId } = rendezvousFor()
    const overpaid = ok(Transaction.reveal(signed(mutualBody(rv, rendezvousId, { change: tokens(81) }), alice), bob, secret))
    assert.strictEqual(reasonOf(State.validate(rv, overpaid, params)), "NotConserved")
  })

  it("DoubleSpend: in one transaction, in one block, across blocks", () => {
    const state = genesis()
    assert.strictEqual(rejection(state, transferBody(state, { inputs: [aliceCoin, aliceCoin], change: tokens(170) })), "DoubleSpend")
    const first = signed(transferBody(state), alice)
    const second = signed({ _tag: "Split", ...base(state, alice, 2), coin: aliceCoin, amounts: [tokens(1), tokens(99)] }, alice)
    const inBlock = State.applyBlock(state, [first, second], params)
    assert.strictEqual(reasonOf(inBlock), "DoubleSpend")
    assert.strictEqual(Either.isLeft(inBlock) ? inBlock.left.index : -1, 1)
    const { state: next } = ok(State.applyBlock(state, [first], params))
    assert.strictEqual(reasonOf(State.applyBlock(next, [second], params)), "DoubleSpend")
  })

  it("CoinLocked: the recipient cannot spend a pending coin before accepting it", () => {
    const { state, lockedCoin } = sent()
    const body: Transaction.Body = { _tag: "Split", ...base(state, bob), coin: Id.toBytes(lockedCoin), amounts: [tokens(10), tokens(20)] }
    assert.strictEqual(rejection(state, body, bob), "CoinLocked")
    assert.strictEqual(rejection(state, transferBody(state, { inputs: [Id.toBytes(lockedCoin)] })), "CoinLocked")
  })

  it("CoinNotFound", () => {
    const state = genesis()
    assert.strictEqual(rejection(state, transferBody(state, { inputs: [new Uint8Array(32).fill(0xab)] })), "CoinNotFound")
  })

  it("NotOwner", () => {
    const state = genesis()
    assert.strictEqual(rejection(state, transferBody(state, { inputs: [bobCoin], amount: tokens(30), change: tokens(20) })), "NotOwner")
  })

  it("BadSignature: a flipped bit, another signer's signature, a forged reveal", () => {
    const state = genesis()
    const good = signed(transferBody(state), alice)
    const flipped = Uint8Array.from(good.auth.signature)
    flipped[100]! ^= 1
    assert.strictEqual(reasonOf(State.validate(state, { ...good, auth: { ...good.auth, signature: flipped } }, params)), "BadSignature")
    const byBob = signed(transferBody(state), bob)
    assert.strictEqual(reasonOf(State.validate(state, { ...good, auth: { ...good.auth, signature: byBob.auth.signature } }, params)), "BadSignature")
    const { state: rv, rendezvousId } = rendezvousFor()
    const forged = ok(Transaction.reveal(signed(mutualBody(rv, rendezvousId), alice), carol, secret))
    const carolSignsForBob = { ...forged, reveal: { ...forged.reveal!, publicKey: bob.publicKey } }
    assert.strictEqual(reasonOf(State.validate(rv, carolSignsForBob, params)), "BadSignature")
  })

  it("BadKey: a public key of another account, a bad ML-KEM key", () => {
    const state = genesis()
    const good = signed(transferBody(state), alice)
    assert.strictEqual(reasonOf(State.validate(state, { ...good, auth: { ...good.auth, publicKey: bob.publicKey } }, params)), "BadKey")
    assert.strictEqual(rejection(state, { _tag: "RegisterKeys", ...base(state, alice), kem: new Uint8Array(1184).fill(0xff) }), "BadKey")
    const { state: rv, rendezvousId } = rendezvousFor()
    const byCarol = ok(Transaction.reveal(signed(mutualBody(rv, rendezvousId), alice), carol, secret))
    assert.strictEqual(reasonOf(State.validate(rv, byCarol, params)), "BadKey")
  })

  it("UnknownKey: no public key, none registered", () => {
    const state = genesis()
    assert.strictEqual(reasonOf(State.validate(state, signed(transferBody(state), alice, { includePublicKey: false }), params)), "UnknownKey")
  })

  it("WrongChain", () => {
    const state = genesis()
    assert.strictEqual(rejection(state, transferBody(state, { chain: "weft-main" })), "WrongChain")
  })

  it("Replay: the same signed transaction twice, and an old nonce", () => {
    const state = genesis()
    const transaction = signed(transferBody(state), alice)
    const after = apply(state, transaction)
    assert.strictEqual(reasonOf(State.validate(after, transaction, params)), "Replay")
    assert.strictEqual(rejection(after, { _tag: "Mint", ...base(after, alice, 0) }), "Replay")
    assert.strictEqual(rejection(after, { _tag: "Mint", ...base(after, alice, 2) }), "NonceGap")
  })

  it("TooLarge: bytes, inputs, block size", () => {
    const state = genesis()
    const transaction = signed(transferBody(state), alice)
    const small = { ...LedgerLimits.defaults, transactionBytesMax: 5000 }
    assert.strictEqual(reasonOf(State.validate(state, transaction, params, small)), "TooLarge")
    const inputs = Array.from({ length: 17 }, (_, index) => new Uint8Array(32).fill(index))
    assert.strictEqual(rejection(state, transferBody(state, { inputs })), "TooLarge")
    const oneTransaction = { ...LedgerLimits.defaults, transactionsPerBlockMax: 1 }
    assert.strictEqual(reasonOf(State.applyBlock(state, [transaction, transaction], params, oneTransaction)), "TooLarge")
    const bytes = ok(Transaction.encode(transaction))
    assert.strictEqual(reasonOf(Transaction.decode(bytes, small)), "TooLarge")
  })

  it("RefundIsRecipient: explicit, and a transfer to oneself with the default refund", () => {
    const state = genesis()
    assert.strictEqual(rejection(state, transferBody(state, { refund: Id.toBytes(bob.id) })), "RefundIsRecipient")
    assert.strictEqual(rejection(state, transferBody(state, { recipient: Id.toBytes(alice.id) })), "RefundIsRecipient")
    assert.strictEqual(rejection(state, { _tag: "TransferCoin", ...base(state, alice), coin: aliceCoin, recipient: Id.toBytes(carol.id), refund: Id.toBytes(carol.id) }), "RefundIsRecipient")
  })

  it("PendingNotFound and NotRecipient", () => {
    const { state, pendingId } = sent()
    assert.strictEqual(rejection(state, { _tag: "Accept", ...base(state, bob), pending: new Uint8Array(32) }, bob), "PendingNotFound")
    assert.strictEqual(rejection(state, { _tag: "Accept", ...base(state, carol), pending: Id.toBytes(pendingId) }, carol), "NotRecipient")
    assert.strictEqual(rejection(state, { _tag: "Reject", ...base(state, alice), pending: Id.toBytes(pendingId) }, alice), "NotRecipient")
  })

  it("RendezvousNotFound, AmountMismatch, BadSecret, and a missing reveal", () => {
    const { state, rendezvousId } = rendezvousFor()
    const complete = (body: Transaction.Body, key = secret) => reasonOf(State.validate(state, ok(Transaction.reveal(signed(body, alice), bob, key)), params))
    assert.strictEqual(complete(mutualBody(state, Id.rendezvous(genesisCoin(5)))), "RendezvousNotFound")
    assert.strictEqual(complete(mutualBody(state, rendezvousId, { amount: tokens(21), change: tokens(79) })), "AmountMismatch")
    assert.strictEqual(complete(mutualBody(state, rendezvousId), new Uint8Array(32).fill(8)), "BadSecret")
    assert.strictEqual(reasonOf(State.validate(state, signed(mutualBody(state, rendezvousId), alice), params)), "Malformed")
    const done = apply(state, ok(Transaction.reveal(signed(mutualBody(state, rendezvousId), alice), bob, secret)))
    assert.strictEqual(reasonOf(State.validate(done, ok(Transaction.reveal(signed(mutualBody(done, rendezvousId, { inputs: [bobCoin] }), alice), bob, secret)), params)), "RendezvousNotFound")
  })

  it("CoinExists: a mutual coin id already taken (a defensive check, reached through a Reader)", () => {
    const { state, rendezvousId } = rendezvousFor()
    const transaction = ok(Transaction.reveal(signed(mutualBody(state, rendezvousId), alice), bob, secret))
    const taken = Id.mutualCoin(rendezvousId, secret)
    const reader: State.Reader = { ...State.reader(state), isSpent: (id) => id === taken }
    assert.strictEqual(reasonOf(State.validateWith(reader, transaction, params)), "CoinExists")
  })

  it("ZeroAmount and NothingToClaim", () => {
    const state = genesis()
    assert.strictEqual(rejection(state, transferBody(state, { amount: 0n, change: tokens(100) })), "ZeroAmount")
    assert.strictEqual(rejection(state, { _tag: "Split", ...base(state, alice), coin: aliceCoin, amounts: [0n, tokens(100)] }), "ZeroAmount")
    assert.strictEqual(rejection(state, { _tag: "Rendezvous", ...base(state, alice), amount: 0n, commitment: new Uint8Array(32) }), "ZeroAmount")
    assert.strictEqual(rejection(state, { _tag: "Mint", ...base(state, alice) }), "NothingToClaim")
    assert.strictEqual(reasonOf(Wallet.planClaim(state, alice.id, params)), "NothingToClaim")
  })

  it("InsufficientFunds in the wallet", () => {
    assert.strictEqual(reasonOf(Wallet.planTransfer(genesis(), alice.id, { amount: tokens(101), recipient: bob.id }, params)), "InsufficientFunds")
  })

  it("a rejected transaction leaves the state as it was, and a rejected block changes nothing", () => {
    const state = genesis()
    const before = snapshot(state)
    const good = signed(transferBody(state), alice)
    const bad = signed({ _tag: "Mint", ...base(state, alice, 2) }, alice)
    assert.strictEqual(reasonOf(State.validate(state, bad, params)), "NonceGap")
    assert.strictEqual(reasonOf(State.applyBlock(state, [good, bad], params)), "NothingToClaim")
    assert.deepStrictEqual(snapshot(state), before)
  })
})

describe("Diff", () => {
  it("round-trips its canonical bytes and replays to the same state", () => {
    const { state, pendingId } = sent()
    const diff = ok(State.validate(state, signed({ _tag: "Reject", ...base(state, bob), pending: Id.toBytes(pendingId) }, bob), params))
    const bytes = ok(Diff.encode(diff))
    const decoded = ok(Diff.decode(bytes, 1 << 20))
    assert.deepStrictEqual(decoded, diff)
    assert.deepStrictEqual(snapshot(State.applyDiff(state, decoded)), snapshot(State.applyDiff(state, diff)))
    assert.strictEqual(reasonOf(Diff.decode(bytes, bytes.length - 1)), "TooLarge")
    assert.strictEqual(reasonOf(Diff.decode(ok(Diff.encode({ ...diff, unclaimed: [{ account: alice.id, amount: -1n as Amount.Amount }] })), 1 << 20)), "Malformed")
  })
})
