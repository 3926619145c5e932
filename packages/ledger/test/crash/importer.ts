/**
 * The crash test's child: `node --import tsx packages/ledger/test/crash/importer.ts <dir>` reads the
 * chain from `<dir>/chain.bin` (`encodeBlocks`), opens the lmdb store in `<dir>/store`, writes the
 * genesis if it is not there, and imports every block above the stored head, in order. It prints
 * `importing <height>` before each import and `head <height>` once it returned (so the parent knows
 * that height is durable). After each import it treats the block `finalityLag` below the head as
 * finalized and moves the explorer index up to it (`indexing <h>`, then `indexed <h>` once durable);
 * at the end it finalizes the head and prints `done <height>`. The parent SIGKILLs it at moments of
 * its choosing; a rejected block exits 2.
 */
import { Effect, Layer, Option } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as LedgerLimits from "../../src/LedgerLimits.js"
import * as LedgerStore from "../../src/LedgerStore.js"
import { allocations, decodeBlocks, finalityLag, params } from "./chain.js"

const dir = process.argv[2]
if (dir === undefined) {
  process.stderr.write("usage: node --import tsx packages/ledger/test/crash/importer.ts <dir>\n")
  process.exit(64)
}

const blocks = decodeBlocks(readFileSync(join(dir, "chain.bin")))

const program = Effect.gen(function*() {
  const store = yield* LedgerStore.LedgerStore
  yield* store.initGenesis(params, allocations)
  const start = Option.getOrThrow(yield* store.head).height
  const finalize = (height: number) =>
    Effect.gen(function*() {
      const block = Option.getOrThrow(yield* store.blockAt(height))
      process.stdout.write(`indexing ${height}\n`)
      const indexed = yield* store.advanceIndex({ height, id: block.id })
      process.stdout.write(`indexed ${indexed.height}\n`)
    })
  // Pipes to the parent are synchronous on Linux: a line printed is a line the parent can read after a kill.
  for (const block of blocks.slice(start)) {
    process.stdout.write(`importing ${block.height}\n`)
    const head = yield* store.importBlock(block, params)
    process.stdout.write(`head ${head.height}\n`)
    if (head.height > finalityLag) yield* finalize(head.height - finalityLag)
  }
  yield* finalize(blocks.length)
  process.stdout.write(`done ${blocks.length}\n`)
})

const layer = LedgerStore.layerLmdb(join(dir, "store")).pipe(Layer.provide(LedgerLimits.layer()))

Effect.runPromise(Effect.provide(program, layer)).catch((error: unknown) => {
  process.stderr.write(`importer: ${String(error)}\n`)
  process.exit(2)
})
