/**
 * Cases of the ledger benchmarks (`ledger.ts`): block import into the lmdb store.
 *
 * - `ledger import`: `LedgerStore.importBlock` of blocks of `perBlock` signed transfers (validation
 *   with one ML-DSA-65 verify each, state diff, the priors the explorer folds it against once final, block, undo record: one durable lmdb
 *   transaction) against raw lmdb `putSync` of the same block bytes under the block id.
 * - `ledger import vs fold`: the same imports against the pure fold (`State.applyBlock`, then
 *   `State.reward`) of the same blocks in memory: what the store adds to validation.
 *
 * The chain is signed once; a run that reaches its end rolls the store back to the genesis (inside the
 * timing: one undo per block, a small share of an import).
 */
import { Context, Effect, Either, Layer, type Scope } from "effect"
import { open } from "lmdb"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import type { Case } from "../../core/bench/harness.js"
import type { LedgerError } from "../src/LedgerError.js"
import * as LedgerLimits from "../src/LedgerLimits.js"
import * as LedgerStore from "../src/LedgerStore.js"
import * as State from "../src/State.js"
import { allocations, chain, genesis, params } from "./fixture.js"

/** Transfers per block. */
export const perBlock = 16

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "weft-bench-ledger-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const rawLmdb = (dir: string) =>
  Effect.acquireRelease(
    Effect.sync(() => open<Uint8Array, Uint8Array>({ path: dir, encoding: "binary", keyEncoding: "binary" })),
    (db) => Effect.promise(() => db.close())
  )

/** `ops` imports, each of the next block of the chain; at its end the store goes back to the genesis. */
const importer = (store: LedgerStore.Service, blocks: ReadonlyArray<LedgerStore.ImportedBlock>) => {
  let next = 0
  return (ops: number): Effect.Effect<void, LedgerError> =>
    Effect.gen(function*() {
      for (let op = 0; op < ops; op++) {
        if (next === blocks.length) {
          yield* store.rollbackTo(0)
          next = 0
        }
        yield* store.importBlock(blocks[next++]!, params)
      }
    })
}

/** `ops` pure folds of the next block from the state before it. */
const folder = (blocks: ReadonlyArray<LedgerStore.ImportedBlock>, count: number) => {
  const before = [genesis(count)]
  for (const block of blocks.slice(0, -1)) before.push(fold(before.at(-1)!, block))
  let next = 0
  return (ops: number) =>
    Effect.sync(() => {
      for (let op = 0; op < ops; op++, next = (next + 1) % blocks.length) fold(before[next]!, blocks[next]!)
    })
}

const fold = (state: State.State, block: LedgerStore.ImportedBlock): State.State => {
  const applied = Either.getOrThrow(State.applyBlock(state, block.txs, params))
  return State.applyDiff(applied.state, Either.getOrThrow(State.reward(applied.state, block.producer, block.height, params)))
}

/** The import cases (lmdb in a temporary directory, removed when the scope closes). */
export const cases = (quick: boolean): Effect.Effect<ReadonlyArray<Case>, LedgerError, Scope.Scope> =>
  Effect.gen(function*() {
    const count = (quick ? 8 : 32) * perBlock
    const dir = yield* tempDir
    const context = yield* Layer.build(LedgerStore.layerLmdb(Path.join(dir, "store")).pipe(Layer.provide(LedgerLimits.layer())))
    const store = Context.get(context, LedgerStore.LedgerStore)
    const genesisId = (yield* store.initGenesis(params, allocations(count))).id
    const blocks = chain(genesisId, count / perBlock, perBlock)
    const raw = yield* rawLmdb(Path.join(dir, "raw"))
    let rawNext = 0
    const ops = quick ? 1 : 5
    const subject = { name: "LedgerStore.importBlock", run: importer(store, blocks) }
    const imports: Case = {
      bench: `ledger import (${perBlock} transfers/block, lmdb)`,
      metric: "ledger_import",
      unit: "blocks/s",
      ops,
      subject,
      baseline: {
        name: "lmdb putSync of the block",
        run: (ops) => Effect.sync(() => {
          for (let op = 0; op < ops; op++, rawNext = (rawNext + 1) % blocks.length) raw.putSync(blocks[rawNext]!.id, blocks[rawNext]!.bytes)
        })
      }
    }
    const versusFold: Case = {
      bench: `ledger import vs pure fold (${perBlock} transfers/block)`,
      metric: "ledger_import_fold",
      unit: "blocks/s",
      ops,
      subject,
      baseline: { name: "State.applyBlock + reward", run: folder(blocks, count) }
    }
    return [imports, versusFold]
  })
