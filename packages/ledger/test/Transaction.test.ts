import { assert, describe, it } from "@effect/vitest"
import { Canonical } from "@weft/core"
import { Effect, Either, FastCheck as fc } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Account from "../src/Account.js"
import * as Id from "../src/Id.js"
import * as LedgerLimits from "../src/LedgerLimits.js"
import * as Transaction from "../src/Transaction.js"
import { alice, ok, reasonOf } from "./fixtures.js"
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js"

const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 })
const amount = fc.bigInt(0n, 2n ** 64n - 1n)
const ids = fc.array(bytes32, { minLength: 1, maxLength: 4 })
const common = { chain: fc.string({ maxLength: 20 }).filter((text) => !/\p{Cs}/u.test(text)), from: bytes32, nonce: fc.nat() }
const refund = fc.option(bytes32, { nil: undefined })
const kemKey = fc.constant(ml_kem768.keygen(new Uint8Array(64).fill(9)).publicKey)

/** `A` with its possibly-undefined fields made optional instead (exactOptionalPropertyTypes). */
type Exact<A> = { [K in keyof A as undefined extends A[K] ? never : K]: A[K] } & { [K in keyof A as undefined extends A[K] ? K : never]?: Exclude<A[K], undefined> }

const withoutUndefined = <A extends object>(value: A): Exact<A> =>
  Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as Exact<A>

const body: fc.Arbitrary<Transaction.Body> = fc.oneof(
  fc.record({ ...common, inputs: ids, amount, change: amount, recipient: bytes32, refund }).map((fields) => withoutUndefined({ _tag: "Transfer" as const, ...fields })),
  fc.record({ ...common, coin: bytes32, recipient: bytes32, refund }).map((fields) => withoutUndefined({ _tag: "TransferCoin" as const, ...fields })),
  fc.record({ ...common, pending: bytes32 }).map((fields) => ({ _tag: "Accept" as const, ...fields })),
  fc.record({ ...common, pending: bytes32 }).map((fields) => ({ _tag: "Reject" as const, ...fields })),
  fc.record({ ...common, amount, commitment: bytes32 }).map((fields) => ({ _tag: "Rendezvous" as const, ...fields })),
  fc.record({ ...common, rendezvous: bytes32, inputs: ids, amount, change: amount }).map((fields) => ({ _tag: "MutualTransfer" as const, ...fields })),
  fc.record({ ...common, coin: bytes32, amounts: fc.tuple(amount, amount) }).map((fields) => ({ _tag: "Split" as const, ...fields })),
  fc.record({ ...common, coins: fc.array(bytes32, { minLength: 2, maxLength: 4 }) }).map((fields) => ({ _tag: "Merge" as const, ...fields })),
  fc.record({ ...common, into: refund }).map((fields) => withoutUndefined({ _tag: "Mint" as const, ...fields })),
  fc.record({ ...common, kem: kemKey }).map((fields) => ({ _tag: "RegisterKeys" as const, ...fields }))
)

const signature = fc.uint8Array({ minLength: Account.signatureBytes, maxLength: Account.signatureBytes })
const publicKey = fc.option(fc.uint8Array({ minLength: Account.publicKeyBytes, maxLength: Account.publicKeyBytes }), { nil: undefined })

const transaction: fc.Arbitrary<Transaction.Transaction> = fc
  .tuple(body, publicKey, signature, bytes32, publicKey, signature)
  .map(([body, key, sig, secret, receiverKey, receiverSig]) => {
    const auth = withoutUndefined({ publicKey: key, signature: sig })
    return body._tag === "MutualTransfer"
      ? { body, auth, reveal: withoutUndefined({ secret, publicKey: receiverKey, signature: receiverSig }) }
      : { body, auth }
  })

const encoded = (value: Transaction.Transaction) => ok(Transaction.encode(value))

describe("Transaction canonical encoding", () => {
  it.prop("decode(encode(x)) = x", [transaction], ([value]) => {
    assert.deepStrictEqual(ok(Transaction.decode(encoded(value))), value)
  }, { fastCheck: { numRuns: 200 } })

  it.prop("encode(decode(b)) = b for any bytes that decode, mutated or random; never throws", [
    transaction,
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
    fc.uint8Array({ maxLength: 64 })
  ], ([value, mutations, random]) => {
    const bytes = encoded(value)
    for (const [at, byte] of mutations) bytes[at % bytes.length] = byte
    for (const candidate of [bytes, random]) {
      const decoded = Transaction.decode(candidate)
      if (Either.isRight(decoded)) assert.deepStrictEqual(encoded(decoded.right), candidate)
    }
  }, { fastCheck: { numRuns: 200 } })

  it.prop("the id is the SHA-256 of the body's canonical bytes, whatever the key order", [body], ([value]) => {
    const reordered = Object.fromEntries(Object.entries(value).reverse()) as Transaction.Body
    const expected = Id.fromBytes(Canonical.digest(ok(Transaction.encodeBody(value))))
    assert.strictEqual(ok(Transaction.id(value)), expected)
    assert.strictEqual(ok(Transaction.id(reordered)), expected)
  })
})

const sample: Transaction.Transaction = fc.sample(transaction.filter((value) => value.body._tag === "Accept"), { numRuns: 1, seed: 1 })[0]!

describe("Transaction.decode at the edge", () => {
  it("refuses oversized bytes before decoding them", () => {
    const bytes = encoded(sample)
    assert.strictEqual(reasonOf(Transaction.decode(bytes, { ...LedgerLimits.defaults, transactionBytesMax: bytes.length - 1 })), "TooLarge")
    assert.strictEqual(reasonOf(Transaction.decode(new Uint8Array(LedgerLimits.defaults.transactionBytesMax + 1))), "TooLarge")
  })

  it("refuses unknown fields, unknown kinds, wrong lengths and broken bytes as Malformed", () => {
    const reencode = (value: unknown) => Either.getOrThrow(Canonical.encode(value))
    const hostile: ReadonlyArray<unknown> = [
      { ...sample, extra: 1 },
      { ...sample, body: { ...sample.body, extra: 1 } },
      { ...sample, body: { ...sample.body, _tag: "Steal" } },
      { ...sample, body: { ...sample.body, from: new Uint8Array(31) } },
      { ...sample, body: { ...sample.body, nonce: -1 } },
      { ...sample, body: { ...sample.body, nonce: 2n ** 60n } },
      { body: sample.body },
      [sample.body, sample.auth],
      "transaction"
    ]
    for (const value of hostile) assert.strictEqual(reasonOf(Transaction.decode(reencode(value))), "Malformed", JSON.stringify(value, (_, v) => typeof v === "bigint" ? `${v}` : v).slice(0, 80))
    assert.strictEqual(reasonOf(Transaction.decode(new Uint8Array([0xc1]))), "Malformed")
    assert.strictEqual(reasonOf(Transaction.decode(encoded(sample).slice(0, 100))), "Malformed")
  })

  it("gives typed reasons for hostile amounts, keys and signatures in well-formed bytes", () => {
    const transfer = fc.sample(transaction.filter((value) => value.body._tag === "Transfer"), { numRuns: 1, seed: 2 })[0]!
    const withBody = (patch: object) => Either.getOrThrow(Canonical.encode({ ...transfer, body: { ...transfer.body, ...patch } }))
    assert.strictEqual(reasonOf(Transaction.decode(withBody({ amount: -1 }))), "NegativeAmount")
    assert.strictEqual(reasonOf(Transaction.decode(withBody({ change: -(2n ** 63n) }))), "NegativeAmount")
    assert.strictEqual(reasonOf(Transaction.decode(withBody({ inputs: Array.from({ length: 17 }, () => new Uint8Array(32)) }))), "TooLarge")
    assert.strictEqual(reasonOf(Transaction.decode(withBody({ inputs: [] }))), "Malformed")
    assert.strictEqual(reasonOf(Transaction.decode(withBody({ chain: "x".repeat(65) }))), "Malformed")
    const bad = (patch: object) => Either.getOrThrow(Canonical.encode({ ...transfer, ...patch }))
    assert.strictEqual(reasonOf(Transaction.decode(bad({ auth: { signature: new Uint8Array(3308) } }))), "BadSignature")
    assert.strictEqual(reasonOf(Transaction.decode(bad({ auth: { publicKey: new Uint8Array(10), signature: new Uint8Array(3309) } }))), "BadKey")
    assert.strictEqual(reasonOf(Transaction.decode(bad({ reveal: { secret: new Uint8Array(32), signature: new Uint8Array(3309) } }))), "Malformed")
    const register = { ...sample, body: { _tag: "RegisterKeys", chain: "c", from: new Uint8Array(32), nonce: 1, kem: new Uint8Array(1184).fill(0xff) } }
    assert.strictEqual(reasonOf(Transaction.decode(Either.getOrThrow(Canonical.encode(register)))), "BadKey")
  })
})

describe("Transaction signing", () => {
  it("signs the id under a domain label, deterministically", () => {
    const body: Transaction.Body = { _tag: "Accept", chain: "c", from: Id.toBytes(alice.id), nonce: 1, pending: new Uint8Array(32) }
    const first = ok(Transaction.sign(body, alice))
    assert.deepStrictEqual(first, ok(Transaction.sign(body, alice)))
    const txId = ok(Transaction.id(body))
    assert.isTrue(Account.verify(alice.publicKey, Transaction.signingMessage(txId), first.auth.signature))
    assert.isFalse(Account.verify(alice.publicKey, Transaction.revealMessage(txId, new Uint8Array(32)), first.auth.signature))
    assert.isFalse(Account.verify(alice.publicKey, Id.toBytes(txId), first.auth.signature))
    assert.isUndefined(ok(Transaction.sign(body, alice, { includePublicKey: false })).auth.publicKey)
  })
})

describe("Account", () => {
  it.effect("names an account by the SHA-256 of its key and round-trips the key file", () =>
    Effect.gen(function*() {
      assert.strictEqual(alice.id, Account.idOf(alice.publicKey))
      assert.strictEqual(Account.display(alice.id), `0x${alice.id}`)
      const dir = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "weft-ledger-")))
      const file = path.join(dir, "account.json")
      yield* Account.save(file, alice)
      const loaded = yield* Account.load(file)
      assert.strictEqual(loaded.id, alice.id)
      assert.deepStrictEqual(loaded.secretKey, alice.secretKey)
      const mode = (yield* Effect.promise(() => fs.stat(file))).mode & 0o777
      assert.strictEqual(mode, 0o600)
      const broken = yield* Effect.flip(Account.load(path.join(dir, "missing.json")))
      assert.strictEqual(broken.reason, "KeyFileRead")
      yield* Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
    }))

  it("parses ids and refuses junk", () => {
    assert.strictEqual(ok(Id.parse(`0x${alice.id.toUpperCase()}`)), alice.id)
    assert.strictEqual(reasonOf(Id.parse("0x1234")), "Malformed")
    assert.strictEqual(reasonOf(Id.parse("z".repeat(64))), "Malformed")
  })
})
