/**
 * A genesis as a JSON file (what `weft dev` writes and a node config's `ledger.genesis` names):
 * amounts as decimal strings of base units, ids and keys as hex. Decoded with a schema and checked
 * with `Block.makeGenesis`, so a hand-edited file fails with one typed reason.
 */
import { Either, Schema } from "effect"
import * as Block from "../Block.js"
import type * as Id from "../Id.js"
import { LedgerError, make as fail } from "../LedgerError.js"
import * as Records from "../Records.js"

const Hex = Schema.String.pipe(Schema.pattern(/^[0-9a-f]*$/))

const File = Schema.Struct({
  params: Schema.Struct({
    chainId: Schema.String,
    symbol: Schema.String,
    unitsPerToken: Schema.BigInt,
    blockTimeMs: Schema.Number,
    initialRewardUnits: Schema.BigInt,
    halvingIntervalBlocks: Schema.Number
  }),
  allocations: Schema.Array(Schema.Struct({ owner: Records.IdSchema, amount: Schema.BigInt })),
  authorities: Schema.Array(Schema.Struct({ id: Records.IdSchema, publicKey: Hex })),
  timeMs: Schema.Number
})

/** The JSON text of a genesis. */
export const toJson = (genesis: Block.Genesis): string =>
  JSON.stringify(Schema.encodeSync(File)({
    params: genesis.params,
    allocations: genesis.allocations.map(({ amount, owner }) => ({ owner, amount })),
    authorities: genesis.authorities.map(({ id, publicKey }) => ({ id, publicKey: Buffer.from(publicKey).toString("hex") })),
    timeMs: genesis.timeMs
  }), null, 2) + "\n"

/** Parses and checks a genesis file's text. */
export const fromJson = (text: string): Either.Either<Block.Genesis, LedgerError> =>
  Either.try({ try: () => JSON.parse(text) as unknown, catch: () => fail("Malformed", "the genesis file is not JSON") }).pipe(
    Either.flatMap((json) => Either.mapLeft(Schema.decodeUnknownEither(File, { onExcessProperty: "error" })(json), (error) => fail("Malformed", `genesis: ${error.message.slice(0, 300)}`))),
    Either.flatMap((file) => {
      for (const a of file.allocations) if (a.amount < 0n) return Either.left(fail("NegativeAmount", "a genesis allocation is negative"))
      return Block.makeGenesis({
        params: file.params as Block.Genesis["params"],
        allocations: file.allocations.map(({ amount, owner }) => ({ owner: owner as Id.Id, amount: amount as never })),
        authorities: file.authorities.map(({ id, publicKey }) => ({ id: id as Id.Id, publicKey: new Uint8Array(Buffer.from(publicKey, "hex")) })),
        timeMs: file.timeMs
      })
    })
  )

export { LedgerError }
