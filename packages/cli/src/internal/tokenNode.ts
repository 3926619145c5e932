/**
 * The ledger layers `weft node run` adds when its config has a `ledger` section: the content store
 * and its sync, the lmdb ledger store, proof-of-authority consensus over the genesis file, the
 * ledger node (producing blocks, and claiming their rewards unless `autoClaim` is false, when an
 * authority key is configured) and the ledger RPCs.
 */
import { Store, StoreSync } from "@weft/core"
import { Account, Consensus, LedgerLimits, LedgerNode, LedgerRpc, LedgerStore } from "@weft/ledger"
import { Effect, Either, Layer } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { CliError } from "../CliError.js"
import type * as NodeConfig from "../NodeConfig.js"

const readGenesis = (file: string) =>
  Effect.gen(function*() {
    const text = yield* Effect.try({
      try: () => Fs.readFileSync(file, "utf8"),
      catch: (cause) => new CliError({ message: `cannot read the genesis file ${file}: ${cause instanceof Error ? cause.message : String(cause)}` })
    })
    return yield* Either.match(LedgerNode.genesisFromJson(text), {
      onLeft: (error) => Effect.fail(new CliError({ message: `${file}: ${error.reason}${error.detail === undefined ? "" : `: ${error.detail}`}` })),
      onRight: Effect.succeed
    })
  })

const loadAuthority = (file: string | undefined) =>
  file === undefined
    ? Effect.succeed(undefined)
    : Account.load(file).pipe(Effect.mapError((error) => new CliError({ message: `cannot load the authority key ${file}: ${error.detail ?? error.reason}` })))

/** The ledger on a node, from the config's ledger section. */
export const layer = (config: NodeConfig.Ledger) =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const genesis = yield* readGenesis(config.genesis)
    const authority = yield* loadAuthority(config.authorityKey)
    yield* Effect.try({ try: () => Fs.mkdirSync(config.data, { recursive: true, mode: 0o700 }), catch: (cause) => new CliError({ message: `cannot create ${config.data}: ${String(cause)}` }) })
    const stores = Layer.mergeAll(
      Consensus.layer({ genesis }),
      LedgerStore.layerLmdb(Path.join(config.data, "chain")),
      StoreSync.layer.pipe(Layer.provideMerge(Store.layerLmdb(Path.join(config.data, "objects"))))
    )
    return LedgerRpc.layerWithExplorer.pipe(
      Layer.provideMerge(LedgerNode.layer({ genesis, authority, autoClaim: config.autoClaim })),
      Layer.provideMerge(stores),
      Layer.provideMerge(LedgerLimits.layer())
    )
  }))
