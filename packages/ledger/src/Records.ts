/**
 * The records ledger state holds, as Schemas so that a diff (and later an LMDB value) decodes at the
 * edge like any untrusted bytes. Ids are hex (`Id.ts`); amounts are checked `Amount`s.
 */
import { Canonical } from "@weft/core"
import { Schema } from "effect"
import * as Amount from "./Amount.js"

/** An id in its hex form. */
export const IdSchema = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/), Schema.brand("LedgerId"))

/** An amount read from a canonical integer: 0 ≤ amount < 2^64. */
export const AmountSchema = Canonical.BigIntFromInteger.pipe(
  Schema.filter((value) => (value >= 0n && value <= Amount.max) || "expected an amount in 0 … 2^64 − 1"),
  Schema.brand("Amount")
)

/** A coin: value owned by an account. A locked coin is held by the pending transaction `lock` and cannot be spent. */
export const Coin = Schema.Struct({
  owner: IdSchema,
  amount: AmountSchema,
  lock: Schema.optionalWith(IdSchema, { exact: true })
})
/** A coin. */
export type Coin = typeof Coin.Type

/**
 * A pending transaction: the locked coin `coin` offered to `recipient`, who may accept it (the coin is
 * theirs) or reject it (it becomes a pending transaction to `refund`). It does not name the sender.
 */
export const Pending = Schema.Struct({ coin: IdSchema, recipient: IdSchema, refund: IdSchema })
/** A pending transaction. */
export type Pending = typeof Pending.Type

/** A published rendezvous: `receiver` expects `amount`, and committed to a secret (`Id.commitment`). */
export const Rendezvous = Schema.Struct({ receiver: IdSchema, amount: AmountSchema, commitment: IdSchema })
/** A rendezvous. */
export type Rendezvous = typeof Rendezvous.Type

/** An account's registered keys: the chain as a public-key directory. */
export const Keys = Schema.Struct({ dsa: Schema.Uint8ArrayFromSelf, kem: Schema.Uint8ArrayFromSelf })
/** Registered keys. */
export type Keys = typeof Keys.Type
