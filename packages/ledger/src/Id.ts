/**
 * Ledger ids: 32-byte SHA-256 digests (accounts, coins, pending transactions, rendezvous, transactions).
 * Inside state and diffs an id is its lowercase hex (a branded string, so it keys maps and crosses JSON
 * untouched); in transactions it travels as 32 raw bytes; people see `0x` + hex.
 *
 * Derived ids hash one canonical encoding of `[label, …]`: the label separates the kinds, so a coin id
 * can never equal a pending id or a mutual-transfer coin id.
 */
import { Canonical } from "@weft/core"
import { Brand, Either } from "effect"
import { LedgerError, make as fail } from "./LedgerError.js"

/** A 32-byte id as 64 lowercase hex characters. */
export type Id = string & Brand.Brand<"LedgerId">

/** Length of an id in bytes. */
export const bytes = 32

/** The id of 32 bytes. */
export const fromBytes = (value: Uint8Array): Id => {
  if (value.length !== bytes) throw new Error(`Id.fromBytes: expected ${bytes} bytes, got ${value.length}`)
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex") as Id
}

/** The 32 bytes of an id. */
export const toBytes = (id: Id): Uint8Array => Uint8Array.from(Buffer.from(id, "hex"))

/** The id's display form, `0x` and 64 hex digits. */
export const display = (id: Id): string => `0x${id}`

/** Parses `0x…` (or bare) hex as an id; anything else is Malformed. */
export const parse = (text: string): Either.Either<Id, LedgerError> => {
  const hex = text.trim().replace(/^0[xX]/, "").toLowerCase()
  return /^[0-9a-f]{64}$/.test(hex) ? Either.right(hex as Id) : Either.left(fail("Malformed", `not a 32-byte hex id: ${JSON.stringify(text.slice(0, 80))}`))
}

const derive = (parts: ReadonlyArray<unknown>): Id =>
  // Only strings, numbers and byte strings: encoding cannot fail, so Right is an invariant here.
  fromBytes(Either.getOrThrow(Canonical.hash(parts)))

/** The id of output `index` of transaction `transaction`. */
export const coin = (transaction: Id, index: number): Id => derive(["weft/ledger/coin", toBytes(transaction), index])

/** The id of the pending transaction that transaction `transaction` creates. */
export const pending = (transaction: Id): Id => derive(["weft/ledger/pending", toBytes(transaction)])

/** The id of the rendezvous that transaction `transaction` publishes. */
export const rendezvous = (transaction: Id): Id => derive(["weft/ledger/rendezvous", toBytes(transaction)])

/** The coin a mutual transfer creates: it depends on the receiver's secret, which the sender never holds. */
export const mutualCoin = (rendezvousId: Id, secret: Uint8Array): Id => derive(["weft/ledger/mutual-coin", toBytes(rendezvousId), secret])

/** The commitment a rendezvous publishes to its receiver's secret. */
export const commitment = (secret: Uint8Array): Id => derive(["weft/ledger/rendezvous-secret", secret])

/** The id of a genesis allocation. */
export const genesis = (chainId: string, index: number): Id => derive(["weft/ledger/genesis", chainId, index])
