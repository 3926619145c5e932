/**
 * Transactions: every kind as a Schema, their one canonical encoding, ids and signatures.
 *
 * A transaction is `{ body, auth, reveal? }`. The body names the chain (`chain`), the signing account
 * (`from`) and its `nonce`; its id is the SHA-256 of its canonical bytes, and `auth.signature` signs
 * `"weft/ledger/tx/v1" ‖ id` (a domain label, so no other Weft signature can pass for a transaction's).
 * Signatures are outside the id, so nobody can change an id by re-signing (no malleability of the ids
 * that outputs derive from).
 *
 * Replay guard: one nonce per account, and every transaction must carry exactly the account's last
 * nonce + 1. Spent coins would already stop a spending transaction from applying twice, but Accept,
 * Reject, Rendezvous, Mint and RegisterKeys consume no coin (replaying an old RegisterKeys would roll a
 * key back), and identical bodies (the same transfer made twice on purpose) need distinct ids. One rule
 * for every kind covers both, and `chain` in the signed body stops replay on another chain.
 *
 * Mutual transfer: the receiver publishes a `Rendezvous` (amount, and `commitment = Id.commitment(secret)`
 * for a 32-byte secret only it holds). The sender signs a `MutualTransfer` body naming the rendezvous
 * and paying its amount, and hands it to the receiver, who adds `reveal`: the secret and the receiver's
 * signature over `"weft/ledger/reveal/v1" ‖ id ‖ secret`. The coin lands in one step, owned by the
 * receiver, with id `Id.mutualCoin(rendezvous, secret)`. The sender knows the amount but not the coin:
 * nothing it sees or signs determines the coin id, and it cannot guess the secret (2^256). Validators
 * check the secret against the commitment, so the receiver cannot pick the coin id after the fact (no
 * grinding for a colliding id), and the receiver's signature binds the secret to this very body, so a
 * node that sees the reveal in its mempool cannot reuse it to complete the rendezvous differently. Once
 * the block is public, the coin is as public as the rest of the ledger: the scheme keeps the coin out of
 * the sender's hands, it is not an anonymity layer.
 */
import { Canonical } from "@weft/core"
import { Either, Schema } from "effect"
import * as Account from "./Account.js"
import * as Amount from "./Amount.js"
import * as Id from "./Id.js"
import { LedgerError, make as fail } from "./LedgerError.js"
import * as LedgerLimits from "./LedgerLimits.js"
import { concat } from "./internal/bytes.js"

/** Length of an ML-KEM-768 public (encapsulation) key. */
export const kemPublicKeyBytes = 1184

/** 32 raw bytes: an account, coin, pending, rendezvous id or a secret. */
export const Bytes32 = Schema.Uint8ArrayFromSelf.pipe(Schema.filter((bytes) => bytes.length === Id.bytes || "expected 32 bytes"))

/** An amount field as decoded: any 64-bit integer, so that `check` can say NegativeAmount rather than Malformed. */
const Integer = Canonical.BigIntFromInteger

const common = {
  chain: Schema.String,
  from: Bytes32,
  nonce: Schema.Int.pipe(Schema.nonNegative())
}
const optionalBytes32 = Schema.optionalWith(Bytes32, { exact: true })

/** Pays `amount` from `inputs` (the rest back to the sender as `change`) into a pending transaction to `recipient`. */
export const Transfer = Schema.TaggedStruct("Transfer", {
  ...common,
  inputs: Schema.Array(Bytes32),
  amount: Integer,
  change: Integer,
  recipient: Bytes32,
  /** Where a rejection sends the value (the sender when absent); never the recipient. */
  refund: optionalBytes32
})
/** Offers one whole coin, as it is, in a pending transaction to `recipient`. */
export const TransferCoin = Schema.TaggedStruct("TransferCoin", { ...common, coin: Bytes32, recipient: Bytes32, refund: optionalBytes32 })
/** The recipient takes a pending transaction's coin. */
export const Accept = Schema.TaggedStruct("Accept", { ...common, pending: Bytes32 })
/** The recipient turns a pending transaction back to its refund account. */
export const Reject = Schema.TaggedStruct("Reject", { ...common, pending: Bytes32 })
/** The receiver (`from`) expects `amount`, committing to a secret. */
export const Rendezvous = Schema.TaggedStruct("Rendezvous", { ...common, amount: Integer, commitment: Bytes32 })
/** The sender pays a rendezvous; needs the receiver's `reveal`. */
export const MutualTransfer = Schema.TaggedStruct("MutualTransfer", {
  ...common,
  rendezvous: Bytes32,
  inputs: Schema.Array(Bytes32),
  amount: Integer,
  change: Integer
})
/** Splits a coin into two that sum to it. */
export const Split = Schema.TaggedStruct("Split", { ...common, coin: Bytes32, amounts: Schema.Tuple(Integer, Integer) })
/** Merges coins into one. */
export const Merge = Schema.TaggedStruct("Merge", { ...common, coins: Schema.Array(Bytes32) })
/** Claims every accrued block reward into one coin, merged with coin `into` when given. */
export const Mint = Schema.TaggedStruct("Mint", { ...common, into: optionalBytes32 })
/** Binds an ML-KEM-768 public key (and the signer's ML-DSA key) to the account: the chain as key directory. */
export const RegisterKeys = Schema.TaggedStruct("RegisterKeys", { ...common, kem: Schema.Uint8ArrayFromSelf })

/** Any body. */
export const Body = Schema.Union(Transfer, TransferCoin, Accept, Reject, Rendezvous, MutualTransfer, Split, Merge, Mint, RegisterKeys)
/** Any body. */
export type Body = typeof Body.Type

/** A signature, with the signer's public key unless the account registered it (`RegisterKeys`). */
export const Auth = Schema.Struct({
  publicKey: Schema.optionalWith(Schema.Uint8ArrayFromSelf, { exact: true }),
  signature: Schema.Uint8ArrayFromSelf
})
/** An authorization. */
export type Auth = typeof Auth.Type

/** The receiver's half of a mutual transfer: the secret and its signature over id and secret. */
export const Reveal = Schema.Struct({
  secret: Bytes32,
  publicKey: Schema.optionalWith(Schema.Uint8ArrayFromSelf, { exact: true }),
  signature: Schema.Uint8ArrayFromSelf
})
/** A reveal. */
export type Reveal = typeof Reveal.Type

/** A signed transaction. */
export const Transaction = Schema.Struct({ body: Body, auth: Auth, reveal: Schema.optionalWith(Reveal, { exact: true }) })
/** A signed transaction. */
export type Transaction = typeof Transaction.Type

const codecFailure = (what: string) => (error: { readonly reason: string; readonly detail?: string | undefined }) =>
  fail(error.reason === "TooLarge" ? "TooLarge" : "Malformed", `${what}: ${error.detail ?? error.reason}`)

/** The body's canonical bytes (fails only for integers beyond 64 bits: see `check`). */
export const encodeBody = (body: Body): Either.Either<Uint8Array, LedgerError> => Either.mapLeft(Canonical.encode(body), codecFailure("body"))

/** The transaction id: SHA-256 of the body's canonical bytes. */
export const id = (body: Body): Either.Either<Id.Id, LedgerError> => Either.map(encodeBody(body), (bytes) => Id.fromBytes(Canonical.digest(bytes)))

const label = (text: string) => new TextEncoder().encode(text)
const txLabel = label("weft/ledger/tx/v1")
const revealLabel = label("weft/ledger/reveal/v1")

/** What the signer signs: the domain label and the id. */
export const signingMessage = (txId: Id.Id): Uint8Array => concat(txLabel, Id.toBytes(txId))

/** What the receiver of a mutual transfer signs: its own label, the id and the secret. */
export const revealMessage = (txId: Id.Id, secret: Uint8Array): Uint8Array => concat(revealLabel, Id.toBytes(txId), secret)

/** How a signer presents its key: in the transaction (default) or by reference to its registered keys. */
export interface SignOptions {
  readonly includePublicKey?: boolean
}

/** Signs a body as `account` (deterministic). */
export const sign = (body: Body, account: Account.Account, options: SignOptions = {}): Either.Either<Transaction, LedgerError> =>
  Either.map(id(body), (txId) => {
    const signature = Account.sign(account, signingMessage(txId))
    const auth: Auth = options.includePublicKey === false ? { signature } : { publicKey: account.publicKey, signature }
    return { body, auth }
  })

/** The receiver completes a mutual transfer with its secret. */
export const reveal = (transaction: Transaction, receiver: Account.Account, secret: Uint8Array, options: SignOptions = {}): Either.Either<Transaction, LedgerError> =>
  Either.map(id(transaction.body), (txId) => {
    const signature = Account.sign(receiver, revealMessage(txId, secret))
    const revealed: Reveal = options.includePublicKey === false ? { secret, signature } : { secret, publicKey: receiver.publicKey, signature }
    return { ...transaction, reveal: revealed }
  })

/** The transaction's canonical bytes. */
export const encode = (transaction: Transaction): Either.Either<Uint8Array, LedgerError> =>
  Either.mapLeft(Canonical.encode(transaction), codecFailure("transaction"))

/** The amounts a body carries. */
export const amounts = (body: Body): ReadonlyArray<bigint> => {
  switch (body._tag) {
    case "Transfer": case "MutualTransfer": return [body.amount, body.change]
    case "Rendezvous": return [body.amount]
    case "Split": return body.amounts
    default: return []
  }
}

/** The coins a body spends or locks. */
export const inputs = (body: Body): ReadonlyArray<Uint8Array> => {
  switch (body._tag) {
    case "Transfer": case "MutualTransfer": return body.inputs
    case "Merge": return body.coins
    case "TransferCoin": case "Split": return [body.coin]
    case "Mint": return body.into === undefined ? [] : [body.into]
    default: return []
  }
}

/** An ML-KEM-768 encapsulation key is 384·k 12-bit coefficients below q = 3329 (FIPS 203 modulus check) and a 32-byte seed. */
export const isKemPublicKey = (key: Uint8Array): boolean => {
  if (key.length !== kemPublicKeyBytes) return false
  for (let at = 0; at < kemPublicKeyBytes - 32; at += 3) {
    const b0 = key[at]!, b1 = key[at + 1]!, b2 = key[at + 2]!
    if ((b0 | ((b1 & 0x0f) << 8)) >= 3329 || ((b1 >> 4) | (b2 << 4)) >= 3329) return false
  }
  return true
}

const checkAmounts = (body: Body): Either.Either<void, LedgerError> => {
  for (const value of amounts(body)) {
    const checked = Amount.fromBigInt(value)
    if (Either.isLeft(checked)) return Either.left(checked.left)
  }
  return Either.void
}

const checkCounts = (body: Body, limits: LedgerLimits.Values): Either.Either<void, LedgerError> => {
  const spent = inputs(body).length
  if (spent > limits.inputsPerTransactionMax) return Either.left(fail("TooLarge", `${spent} inputs, at most ${limits.inputsPerTransactionMax}`))
  if ((body._tag === "Transfer" || body._tag === "MutualTransfer") && spent === 0) return Either.left(fail("Malformed", `a ${body._tag} needs inputs`))
  if (body._tag === "Merge" && spent < 2) return Either.left(fail("Malformed", "a merge needs two coins or more"))
  return Either.void
}

const checkKeys = (transaction: Transaction): Either.Either<void, LedgerError> => {
  const { auth, reveal, body } = transaction
  for (const part of reveal === undefined ? [auth] : [auth, reveal]) {
    if (part.publicKey !== undefined && part.publicKey.length !== Account.publicKeyBytes) return Either.left(fail("BadKey", `a public key is ${part.publicKey.length} bytes, expected ${Account.publicKeyBytes}`))
    if (part.signature.length !== Account.signatureBytes) return Either.left(fail("BadSignature", `a signature is ${part.signature.length} bytes, expected ${Account.signatureBytes}`))
  }
  if ((body._tag === "MutualTransfer") !== (reveal !== undefined)) return Either.left(fail("Malformed", "a reveal belongs to a MutualTransfer, and only there"))
  if (body._tag === "RegisterKeys" && !isKemPublicKey(body.kem)) return Either.left(fail("BadKey", "not an ML-KEM-768 public key"))
  return Either.void
}

const checkSize = (transaction: Transaction, limits: LedgerLimits.Values): Either.Either<void, LedgerError> =>
  Either.flatMap(encode(transaction), (bytes) =>
    bytes.length > limits.transactionBytesMax ? Either.left(fail("TooLarge", `${bytes.length} bytes, at most ${limits.transactionBytesMax}`)) : Either.void)

/** Checks what needs no state: amounts in range, counts and lengths, chain id length, encoded size. */
export const check = (transaction: Transaction, limits: LedgerLimits.Values = LedgerLimits.defaults): Either.Either<void, LedgerError> => {
  const { body } = transaction
  if (body.chain.length > limits.chainIdCharsMax) return Either.left(fail("Malformed", `chain id longer than ${limits.chainIdCharsMax} characters`))
  return checkAmounts(body).pipe(
    Either.flatMap(() => checkCounts(body, limits)),
    Either.flatMap(() => checkKeys(transaction)),
    Either.flatMap(() => checkSize(transaction, limits))
  )
}

const decodeSchema = Schema.decodeUnknownEither(Transaction, { onExcessProperty: "error" })

/** Decodes untrusted bytes (at most `transactionBytesMax`, else TooLarge) and runs `check`: the edge for transactions. */
export const decode = (bytes: Uint8Array, limits: LedgerLimits.Values = LedgerLimits.defaults): Either.Either<Transaction, LedgerError> =>
  Canonical.decode(bytes, limits.transactionBytesMax).pipe(
    Either.mapLeft(codecFailure("transaction")),
    Either.flatMap((value) => Either.mapLeft(decodeSchema(value), (error) => fail("Malformed", error.message.slice(0, 1000)))),
    Either.flatMap((transaction) => Either.map(check(transaction, limits), () => transaction))
  )

/** The account id a body's `from` names. */
export const sender = (body: Body): Id.Id => Id.fromBytes(body.from)

