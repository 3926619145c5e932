/**
 * Validation of one signed transaction against a state reader. Order matters for cost: everything that
 * needs no signature (structure, amounts, chain, nonce, keys, state) first; then each signature once.
 */
import { Either } from "effect"
import * as Account from "../Account.js"
import * as Diff from "../Diff.js"
import * as Id from "../Id.js"
import { LedgerError, make as fail } from "../LedgerError.js"
import type * as LedgerLimits from "../LedgerLimits.js"
import type * as Params from "../Params.js"
import type { Reader } from "../State.js"
import * as Transaction from "../Transaction.js"
import * as Kinds from "./validateKinds.js"

const checkNonce = (reader: Reader, from: Id.Id, nonce: number): Either.Either<void, LedgerError> => {
  const expected = reader.nonce(from) + 1
  if (nonce < expected) return Either.left(fail("Replay", `nonce ${nonce} is used; the next is ${expected}`))
  if (nonce > expected) return Either.left(fail("NonceGap", `nonce ${nonce} skips ahead; the next is ${expected}`))
  return Either.void
}

/** The ML-DSA key that speaks for `account`: the one carried (it must hash to the account) or the registered one. */
export const resolveKey = (reader: Reader, account: Id.Id, carried: Uint8Array | undefined): Either.Either<Uint8Array, LedgerError> => {
  if (carried !== undefined) {
    return Account.idOf(carried) === account ? Either.right(carried) : Either.left(fail("BadKey", `the public key does not name account 0x${account}`))
  }
  const registered = reader.keys(account)
  return registered === undefined ? Either.left(fail("UnknownKey", `no public key given and none registered for 0x${account}`)) : Either.right(registered.dsa)
}

const verified = (key: Uint8Array, message: Uint8Array, signature: Uint8Array, who: string): Either.Either<void, LedgerError> =>
  Account.verify(key, message, signature) ? Either.void : Either.left(fail("BadSignature", `the ${who}'s signature does not verify`))

/** The receiver's key, for a mutual transfer (the rendezvous names the receiver; kinds report a missing one). */
const receiverKey = (reader: Reader, transaction: Transaction.Transaction): Either.Either<Uint8Array | undefined, LedgerError> => {
  const { body, reveal } = transaction
  if (body._tag !== "MutualTransfer" || reveal === undefined) return Either.right(undefined)
  const target = reader.rendezvous(Id.fromBytes(body.rendezvous))
  return target === undefined ? Either.right(undefined) : resolveKey(reader, target.receiver, reveal.publicKey)
}

const kindDiff = (input: Kinds.Input<Transaction.Body>, transaction: Transaction.Transaction, key: Uint8Array): Either.Either<Diff.Diff, LedgerError> => {
  const body = input.body
  switch (body._tag) {
    case "Transfer": return Kinds.transfer({ ...input, body })
    case "TransferCoin": return Kinds.transferCoin({ ...input, body })
    case "Accept": return Kinds.accept({ ...input, body })
    case "Reject": return Kinds.reject({ ...input, body })
    case "Rendezvous": return Kinds.rendezvous({ ...input, body })
    case "MutualTransfer": return Kinds.mutualTransfer({ ...input, body }, transaction.reveal!.secret)
    case "Split": return Kinds.split({ ...input, body })
    case "Merge": return Kinds.merge({ ...input, body })
    case "Mint": return Kinds.mint({ ...input, body })
    case "RegisterKeys": return Kinds.registerKeys({ ...input, body }, key)
  }
}

const signatures = (transaction: Transaction.Transaction, txId: Id.Id, key: Uint8Array, receiver: Uint8Array | undefined): Either.Either<void, LedgerError> =>
  Either.flatMap(verified(key, Transaction.signingMessage(txId), transaction.auth.signature, "signer"), () =>
    receiver === undefined || transaction.reveal === undefined
      ? Either.void
      : verified(receiver, Transaction.revealMessage(txId, transaction.reveal.secret), transaction.reveal.signature, "receiver"))

/** Validates a signed transaction against `reader`: its diff (with the nonce bump), or why not. */
export const validate = (
  reader: Reader,
  transaction: Transaction.Transaction,
  params: Params.Params,
  limits: LedgerLimits.Values
): Either.Either<Diff.Diff, LedgerError> =>
  Either.gen(function*() {
    const { body } = transaction
    yield* Transaction.check(transaction, limits)
    if (body.chain !== params.chainId) return yield* Either.left(fail("WrongChain", `signed for chain ${JSON.stringify(body.chain)}, this is ${JSON.stringify(params.chainId)}`))
    const from = Transaction.sender(body)
    yield* checkNonce(reader, from, body.nonce)
    const key = yield* resolveKey(reader, from, transaction.auth.publicKey)
    const receiver = yield* receiverKey(reader, transaction)
    const txId = yield* Transaction.id(body)
    const diff = yield* kindDiff({ reader, body, txId, from }, transaction, key)
    yield* signatures(transaction, txId, key, receiver)
    return Diff.combine(diff, Diff.make({ nonces: [{ account: from, nonce: body.nonce }] }))
  })
