/**
 * What one transaction (or a whole block) changes in ledger state: explicit, absolute and serializable,
 * so a block importer writes it in one LMDB transaction and a replica can replay it. Within one diff,
 * puts apply before removals (a coin created and spent in the same block ends up spent), and a later
 * entry for the same key wins (nonces, unclaimed rewards, a coin relocked then accepted).
 */
import { Canonical } from "@weft/core"
import { Either, Schema } from "effect"
import { LedgerError, make as fail } from "./LedgerError.js"
import { AmountSchema, Coin, IdSchema, Keys, Pending, Rendezvous } from "./Records.js"

/** The schema of a diff. */
export const Diff = Schema.Struct({
  /** Coins created or changed (lock, owner). */
  coinsPut: Schema.Array(Schema.Struct({ id: IdSchema, ...Coin.fields })),
  /** Coins spent: removed, and remembered as spent. */
  coinsSpent: Schema.Array(IdSchema),
  pendingPut: Schema.Array(Schema.Struct({ id: IdSchema, ...Pending.fields })),
  pendingRemoved: Schema.Array(IdSchema),
  rendezvousPut: Schema.Array(Schema.Struct({ id: IdSchema, ...Rendezvous.fields })),
  rendezvousRemoved: Schema.Array(IdSchema),
  /** New last-used nonces. */
  nonces: Schema.Array(Schema.Struct({ account: IdSchema, nonce: Schema.Int.pipe(Schema.nonNegative()) })),
  keysPut: Schema.Array(Schema.Struct({ account: IdSchema, ...Keys.fields })),
  /** New unclaimed reward balances (zero removes the entry). */
  unclaimed: Schema.Array(Schema.Struct({ account: IdSchema, amount: AmountSchema })),
  /** The new total ever minted, when it changes. */
  minted: Schema.optionalWith(AmountSchema, { exact: true })
})

/** A diff. */
export type Diff = typeof Diff.Type

/** Changes nothing. */
export const empty: Diff = {
  coinsPut: [],
  coinsSpent: [],
  pendingPut: [],
  pendingRemoved: [],
  rendezvousPut: [],
  rendezvousRemoved: [],
  nonces: [],
  keysPut: [],
  unclaimed: []
}

/** A diff with only the given parts. */
export const make = (parts: Partial<Diff>): Diff => ({ ...empty, ...parts })

/** `a` then `b`, as one diff. */
export const combine = (a: Diff, b: Diff): Diff => {
  const combined: Diff = {
    coinsPut: [...a.coinsPut, ...b.coinsPut],
    coinsSpent: [...a.coinsSpent, ...b.coinsSpent],
    pendingPut: [...a.pendingPut, ...b.pendingPut],
    pendingRemoved: [...a.pendingRemoved, ...b.pendingRemoved],
    rendezvousPut: [...a.rendezvousPut, ...b.rendezvousPut],
    rendezvousRemoved: [...a.rendezvousRemoved, ...b.rendezvousRemoved],
    nonces: [...a.nonces, ...b.nonces],
    keysPut: [...a.keysPut, ...b.keysPut],
    unclaimed: [...a.unclaimed, ...b.unclaimed]
  }
  const minted = b.minted ?? a.minted
  return minted === undefined ? combined : { ...combined, minted }
}

/** The diff's canonical bytes. */
export const encode = (diff: Diff): Either.Either<Uint8Array, LedgerError> =>
  Either.mapLeft(Canonical.encode(diff), (error) => fail("Malformed", `diff: ${error.detail ?? error.reason}`))

const decodeSchema = Schema.decodeUnknownEither(Diff, { onExcessProperty: "error" })

/** Decodes a diff's canonical bytes: TooLarge past `maxBytes`, Malformed otherwise. */
export const decode = (bytes: Uint8Array, maxBytes: number): Either.Either<Diff, LedgerError> =>
  Canonical.decode(bytes, maxBytes).pipe(
    Either.mapLeft((error) => fail(error.reason === "TooLarge" ? "TooLarge" : "Malformed", `diff: ${error.detail ?? error.reason}`)),
    Either.flatMap((value) => Either.mapLeft(decodeSchema(value), (error) => fail("Malformed", `diff: ${error.message.slice(0, 1000)}`)))
  )
