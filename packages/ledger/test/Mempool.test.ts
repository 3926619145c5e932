import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"
import * as FastCheck from "effect/FastCheck"
import type * as Account from "../src/Account.js"
import * as Consensus from "../src/Consensus.js"
import * as Id from "../src/Id.js"
import * as LedgerLimits from "../src/LedgerLimits.js"
import * as Mempool from "../src/Mempool.js"
import * as State from "../src/State.js"
import * as Transaction from "../src/Transaction.js"
import { allocationCoin, genesis, ok, reasonOf, token, transfer, users } from "./sim/chain.js"

const coinsEach = 4
const chain = genesis({ users: 4, coinsEach })
const { params } = chain
const start = Consensus.finalized(ok(Consensus.init(chain))).state
const people = users(4)
const [alice, bob, carol, dave] = people as [Account.Account, Account.Account, Account.Account, Account.Account]

const signed = new Map<string, Transaction.Transaction>()
/** `from`'s transfer of its own coin `coin` (0..3) to the next user, at `nonce` (signing is slow: each is made once). */
const tx = (from: Account.Account, coin: number, nonce: number): Transaction.Transaction => {
  const key = `${from.id}/${coin}/${nonce}`
  const known = signed.get(key)
  if (known !== undefined) return known
  const index = people.indexOf(from)
  const made = transfer(chain, from, people[(index + 1) % people.length]!, index * coinsEach + coin, nonce)
  signed.set(key, made)
  return made
}
const idOf = (transaction: Transaction.Transaction): Id.Id => ok(Transaction.id(transaction.body))
const bytesOf = (transaction: Transaction.Transaction): number => ok(Transaction.encode(transaction)).length
const limited = (overrides: Partial<LedgerLimits.Values>) => Mempool.make({ ...LedgerLimits.defaults, ...overrides })
const add = (pool: Mempool.Mempool, transaction: Transaction.Transaction, state = start) => reasonOf(Mempool.add(pool, transaction, state, params))
const applied = (state: State.State, txs: ReadonlyArray<Transaction.Transaction>) => ok(State.applyBlock(state, txs, params)).state
const held = (pool: Mempool.Mempool) => Mempool.transactions(pool).map(idOf).sort()

describe("Mempool admission", () => {
  it("adds a valid transaction once: a second copy, or another with the same nonce, is Duplicate", () => {
    const pool = Mempool.make()
    assert.strictEqual(ok(Mempool.add(pool, tx(alice, 0, 1), start, params)), idOf(tx(alice, 0, 1)))
    assert.isTrue(Mempool.has(pool, idOf(tx(alice, 0, 1))))
    assert.strictEqual(Mempool.size(pool), 1)
    assert.strictEqual(Mempool.bytes(pool), bytesOf(tx(alice, 0, 1)))
    assert.strictEqual(add(pool, tx(alice, 0, 1)), "Duplicate")
    assert.strictEqual(add(pool, tx(alice, 1, 1)), "Duplicate")
    assert.strictEqual(Mempool.size(pool), 1)
  })

  it("refuses invalid transactions and leaves the pool as it was", () => {
    const pool = Mempool.make()
    const badSignature = tx(alice, 0, 1)
    const signature = Uint8Array.from(badSignature.auth.signature)
    signature[7] = signature[7]! ^ 1
    assert.strictEqual(add(pool, { ...badSignature, auth: { ...badSignature.auth, signature } }), "BadSignature")
    const foreign = transfer(genesis({ users: 4, coinsEach, chainId: "weft-elsewhere" }), alice, bob, 0, 1)
    assert.strictEqual(add(pool, foreign), "WrongChain")
    assert.strictEqual(add(pool, transfer(chain, alice, bob, coinsEach, 1)), "NotOwner", "bob's coin")
    assert.strictEqual(add(pool, tx(alice, 0, 0)), "Replay")
    const later = applied(start, [tx(alice, 0, 1)])
    assert.strictEqual(add(pool, tx(alice, 1, 1), later), "Replay")
    assert.strictEqual(Mempool.size(pool), 0)
    assert.strictEqual(Mempool.bytes(pool), 0)
  })

  it("admits a future nonce on its signature alone, but not a forged one", () => {
    const pool = Mempool.make()
    assert.strictEqual(add(pool, tx(alice, 2, 3)), "ok")
    const forged = tx(bob, 2, 3)
    const signature = Uint8Array.from(forged.auth.signature)
    signature[0] = signature[0]! ^ 1
    assert.strictEqual(add(pool, { ...forged, auth: { ...forged.auth, signature } }), "BadSignature")
    assert.strictEqual(Mempool.size(pool), 1)
  })
})

describe("Mempool bounds and eviction", () => {
  it("full by count: a newcomer that ranks lowest is MempoolFull; a far-future transaction is evicted first", () => {
    const pool = limited({ mempoolTransactionsMax: 3 })
    for (const user of [alice, bob, carol]) assert.strictEqual(add(pool, tx(user, 0, 1)), "ok")
    assert.strictEqual(add(pool, tx(dave, 0, 1)), "MempoolFull", "equal gaps: the oldest stay")
    assert.strictEqual(add(pool, tx(dave, 1, 2)), "MempoolFull", "a future nonce ranks below every next nonce")
    const mixed = limited({ mempoolTransactionsMax: 3 })
    assert.strictEqual(add(mixed, tx(alice, 0, 1)), "ok")
    assert.strictEqual(add(mixed, tx(bob, 3, 4)), "ok")
    assert.strictEqual(add(mixed, tx(carol, 1, 2)), "ok")
    assert.strictEqual(add(mixed, tx(dave, 0, 1)), "ok")
    assert.deepStrictEqual(held(mixed), [tx(alice, 0, 1), tx(carol, 1, 2), tx(dave, 0, 1)].map(idOf).sort(), "bob's gap of 3 went first")
    assert.strictEqual(Mempool.size(mixed), 3)
  })

  it("full by bytes: evicts until the newcomer fits, and never holds more than mempoolBytesMax", () => {
    const one = bytesOf(tx(alice, 0, 1))
    const pool = limited({ mempoolBytesMax: Math.floor(2.5 * one) })
    assert.strictEqual(add(pool, tx(alice, 2, 3)), "ok")
    assert.strictEqual(add(pool, tx(bob, 0, 1)), "ok")
    assert.strictEqual(add(pool, tx(carol, 0, 1)), "ok")
    assert.isFalse(Mempool.has(pool, idOf(tx(alice, 2, 3))))
    assert.isAtMost(Mempool.bytes(pool), Math.floor(2.5 * one))
    assert.strictEqual(add(pool, tx(dave, 0, 1)), "MempoolFull")
    assert.strictEqual(add(limited({ mempoolBytesMax: one - 1 }), tx(alice, 0, 1)), "MempoolFull", "larger than the whole pool")
  })

  it("only an account's highest nonce is evicted, so no gap opens inside its queue", () => {
    const pool = limited({ mempoolTransactionsMax: 3 })
    for (const nonce of [1, 2, 3]) assert.strictEqual(add(pool, tx(alice, nonce - 1, nonce)), "ok")
    assert.strictEqual(add(pool, tx(bob, 0, 1)), "ok")
    assert.deepStrictEqual(held(pool), [tx(alice, 0, 1), tx(alice, 1, 2), tx(bob, 0, 1)].map(idOf).sort())
  })

  it("per account: past the cap its highest nonce goes, or the newcomer if it is the highest", () => {
    const pool = limited({ mempoolTransactionsPerAccountMax: 2 })
    assert.strictEqual(add(pool, tx(alice, 0, 1)), "ok")
    assert.strictEqual(add(pool, tx(alice, 2, 3)), "ok")
    assert.strictEqual(add(pool, tx(alice, 3, 4)), "MempoolFull")
    assert.strictEqual(add(pool, tx(alice, 1, 2)), "ok")
    assert.deepStrictEqual(held(pool), [tx(alice, 0, 1), tx(alice, 1, 2)].map(idOf).sort())
    assert.strictEqual(add(pool, tx(bob, 0, 1)), "ok", "other accounts are not affected")
  })

  it("a refusal after evictions puts everything back", () => {
    const one = bytesOf(tx(alice, 0, 1))
    // Alice's nonce 3 spending two coins: a little larger than the others.
    const larger = ok(Transaction.sign({
      _tag: "Transfer", chain: params.chainId, from: Id.toBytes(alice.id), nonce: 3,
      inputs: [allocationCoin(chain, 2), allocationCoin(chain, 3)], amount: 2n * token - 1n, change: 1n, recipient: Id.toBytes(bob.id)
    }, alice))
    assert.isAbove(bytesOf(larger), one)
    const pool = limited({ mempoolTransactionsPerAccountMax: 2, mempoolBytesMax: 3 * one })
    for (const transaction of [tx(alice, 0, 1), tx(alice, 3, 4), tx(bob, 0, 1)]) assert.strictEqual(add(pool, transaction), "ok")
    const before = held(pool)
    // The cap takes alice's nonce 4 out for it; it still does not fit and ranks lowest: refused, nonce 4 back.
    assert.strictEqual(add(pool, larger), "MempoolFull")
    assert.deepStrictEqual(held(pool), before)
    assert.strictEqual(Mempool.bytes(pool), 3 * one)
    assert.strictEqual(add(pool, tx(alice, 2, 3)), "ok", "one of the usual size fits once nonce 4 goes")
    assert.deepStrictEqual(held(pool), [tx(alice, 0, 1), tx(alice, 2, 3), tx(bob, 0, 1)].map(idOf).sort())
  })
})

describe("Mempool revalidate and take", () => {
  it("revalidate drops what a new head included, and what spends a coin it spent", () => {
    const pool = Mempool.make()
    for (const transaction of [tx(alice, 0, 1), tx(alice, 0, 2), tx(bob, 0, 1), tx(carol, 0, 1)]) assert.strictEqual(add(pool, transaction), "ok")
    const head = applied(start, [tx(alice, 0, 1), tx(bob, 0, 1)])
    assert.strictEqual(Mempool.revalidate(pool, head), 3, "alice's nonce 1, bob's nonce 1, and alice's nonce 2 re-spends coin 0")
    assert.deepStrictEqual(held(pool), [idOf(tx(carol, 0, 1))])
    assert.strictEqual(Mempool.bytes(pool), bytesOf(tx(carol, 0, 1)))
  })

  it("take: nonce order per account, the earliest-arrived ready transaction first, within the count and byte limits", () => {
    const pool = Mempool.make()
    for (const transaction of [tx(bob, 1, 2), tx(alice, 0, 1), tx(bob, 0, 1), tx(alice, 1, 2), tx(carol, 0, 1)]) assert.strictEqual(add(pool, transaction), "ok")
    const all = Mempool.take(pool, start, params, 10)
    // Bob's nonce 2 arrived first but waits for his nonce 1; once that is in, it is the oldest ready one.
    assert.deepStrictEqual(all.map(idOf), [tx(alice, 0, 1), tx(bob, 0, 1), tx(bob, 1, 2), tx(alice, 1, 2), tx(carol, 0, 1)].map(idOf))
    assert.strictEqual(Either.isRight(State.applyBlock(start, all, params)), true)
    assert.strictEqual(Mempool.take(pool, start, params, 2).length, 2)
    const one = bytesOf(tx(alice, 0, 1))
    assert.strictEqual(Mempool.take(pool, start, params, 10, 3 * one).length, 3)
    assert.strictEqual(Mempool.size(pool), 5, "take keeps the transactions until revalidate")
  })

  it("take drops a transaction that no longer validates, and skips its successors", () => {
    const pool = Mempool.make()
    const stolen = transfer(chain, alice, bob, coinsEach, 2) // bob's coin: signed by alice, caught only at take
    assert.strictEqual(add(pool, tx(alice, 0, 1)), "ok")
    assert.strictEqual(add(pool, stolen), "ok")
    assert.strictEqual(add(pool, tx(alice, 2, 3)), "ok")
    assert.deepStrictEqual(Mempool.take(pool, start, params, 10).map(idOf), [idOf(tx(alice, 0, 1))])
    assert.isFalse(Mempool.has(pool, idOf(stolen)))
    assert.strictEqual(Mempool.size(pool), 2)
  })

  it("property: random adds under small bounds keep every bound, and take always yields a block that applies", () => {
    const candidates = people.flatMap((user) => [1, 2, 3, 4].flatMap((nonce) => [tx(user, nonce - 1, nonce), tx(user, nonce % coinsEach, nonce)]))
    const one = bytesOf(candidates[0]!)
    FastCheck.assert(FastCheck.property(
      FastCheck.array(FastCheck.nat(candidates.length - 1), { maxLength: 40 }),
      FastCheck.integer({ min: 1, max: 8 }),
      FastCheck.integer({ min: 1, max: 8 }),
      FastCheck.integer({ min: 1, max: 4 }),
      (picks, count, slots, perAccount) => {
        const limits = { ...LedgerLimits.defaults, mempoolTransactionsMax: count, mempoolBytesMax: slots * one + 100, mempoolTransactionsPerAccountMax: perAccount }
        const pool = Mempool.make(limits)
        for (const pick of picks) {
          Mempool.add(pool, candidates[pick]!, start, params)
          const perAccountHeld = new Map<string, number>()
          for (const held of Mempool.transactions(pool)) perAccountHeld.set(Transaction.sender(held.body), (perAccountHeld.get(Transaction.sender(held.body)) ?? 0) + 1)
          const total = Mempool.transactions(pool).reduce((sum, held) => sum + bytesOf(held), 0)
          if (Mempool.size(pool) > count || Mempool.bytes(pool) > limits.mempoolBytesMax || Mempool.bytes(pool) !== total) return false
          if (Array.from(perAccountHeld.values()).some((n) => n > perAccount)) return false
        }
        return Either.isRight(State.applyBlock(start, Mempool.take(pool, start, params, 16), params))
      }
    ), { numRuns: 100 })
  })
})
