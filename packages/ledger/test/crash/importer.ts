/**
 * The crash test's child: `node --import tsx packages/ledger/test/crash/importer.ts <dir>` reads the
 * chain from `<dir>/chain.bin` (`encodeBlocks`), opens the lmdb store in `<dir>/store`, writes the
 * genesis if it is not there, and imports every block above the stored head, in order. It prints
 * `importing <height>` before each import and `head <height>` once it returned (so the parent knows
 * that height is durable), and at the end `done <height>`. The parent SIGKILLs it at moments of its choosing; a rejected block exits 2.
 */
import { Effect, Layer, Option } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as LedgerLimits from "../../src/LedgerLimits.js"
import * as LedgerStore from "../../src/LedgerStore.js"
import { allocations, decodeBlocks, params } from "./chain.js"

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
  // Pipes to the parent are synchronous on Linux: a line printed is a line the parent can read after a kill.
  for (const block of blocks.slice(start)) {
    process.stdout.write(`importing ${block.height}\n`)
    const head = yield* store.importBlock(block, params)
    process.stdout.write(`head ${head.height}\n`)
  }
  process.stdout.write(`done ${blocks.length}\n`)
})

const layer = LedgerStore.layerLmdb(join(dir, "store")).pipe(Layer.provide(LedgerLimits.layer()))

Effect.runPromise(Effect.provide(program, layer)).catch((error: unknown) => {
  process.stderr.write(`importer: ${String(error)}\n`)
  process.exit(2)
})
