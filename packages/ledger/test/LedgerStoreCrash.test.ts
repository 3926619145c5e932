/**
 * Crash safety with a real process: a child (`test/crash/importer.ts`) imports a chain into an lmdb
 * store, moving the explorer index up to a finalized block (a fixed lag below the head) after each
 * import, and is SIGKILLed at several moments, most of them inside an import's or an index advance's
 * transaction; after each kill the store, reopened, must hold exactly the pure fold of the chain up to
 * its head (state bytes via `LedgerStore.encodeState`) and an index equal to the fold of the finalized
 * prefix it recorded as indexed (digest as an in-memory store gives it), the head must be every block
 * the child reported as imported plus at most the one in flight, and the indexed block every advance
 * it reported plus at most the one in flight. Then a last child resumes from there to the end.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Explorer from "../src/Explorer.js"
import * as LedgerLimits from "../src/LedgerLimits.js"
import * as LedgerStore from "../src/LedgerStore.js"
import { allocations, buildChain, type Chain, encodeBlocks, finalityLag, params } from "./crash/chain.js"

const repoRoot = fileURLToPath(new URL("../../..", import.meta.url))
const importer = fileURLToPath(new URL("./crash/importer.ts", import.meta.url))

/** How one child run ended: its stdout lines and exit. */
interface Run {
  readonly lines: ReadonlyArray<string>
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stderr: string
}

/** SIGKILL `delayMs` after the child prints `<word> <h>` with h ≥ `height`. */
interface Kill {
  readonly word: "importing" | "indexing"
  readonly height: number
  readonly delayMs: number
}

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "weft-ledger-crash-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** Runs the importer on `dir` to its end, or until the kill; the child is SIGKILLed when the scope closes if it still runs. */
const runImporter = (dir: string, kill: Kill | undefined) =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => spawn(process.execPath, ["--import", "tsx", importer, dir], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] })),
      (child) => Effect.sync(() => void (child.exitCode === null && child.signalCode === null && child.kill("SIGKILL")))
    )
    return yield* Effect.async<Run>((resume) => {
      const lines: Array<string> = []
      let partial = ""
      let stderr = ""
      let timer: NodeJS.Timeout | undefined
      child.stdout!.on("data", (chunk: Buffer) => {
        const parts = (partial + chunk.toString()).split("\n")
        partial = parts.pop() ?? ""
        for (const line of parts) {
          lines.push(line)
          const [word, height] = line.split(" ")
          if (kill !== undefined && timer === undefined && word === kill.word && Number(height) >= kill.height) {
            timer = setTimeout(() => child.kill("SIGKILL"), kill.delayMs)
          }
        }
      })
      child.stderr!.on("data", (chunk: Buffer) => void (stderr += chunk.toString()))
      child.on("close", (code, signal) => {
        clearTimeout(timer)
        resume(Effect.succeed({ lines, code, signal, stderr }))
      })
    })
  }).pipe(Effect.scoped)

const layerFor = (dir: string) =>
  Explorer.layer.pipe(Layer.provideMerge(LedgerStore.layerLmdb(join(dir, "store"))), Layer.provide(LedgerLimits.layer()))

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")

/** What the reopened store holds: head, indexed height, state bytes, index digest (as stored, then after a reindex), the head block's bytes. */
const inspect = (dir: string) =>
  Effect.gen(function*() {
    const store = yield* LedgerStore.LedgerStore
    const explorer = yield* Explorer.Explorer
    const height = Option.getOrThrow(yield* store.head).height
    const digest = hex(yield* explorer.digest)
    return {
      height,
      indexed: Option.getOrThrow(yield* explorer.indexed).height,
      state: hex(LedgerStore.encodeState(yield* store.stateSnapshot)),
      digest,
      reindexed: hex((yield* explorer.reindex).digest),
      headBytes: Option.map(yield* store.blockAt(height), (block) => hex(block.bytes)),
      above: Option.isSome(yield* store.blockAt(height + 1))
    }
  }).pipe(Effect.provide(layerFor(dir)))

/** The pure fold's answer per height: state bytes, and the index digest of an in-memory store indexed up to that height. */
const expectations = (chain: Chain) =>
  Effect.gen(function*() {
    const store = yield* LedgerStore.LedgerStore
    const explorer = yield* Explorer.Explorer
    yield* store.initGenesis(params, allocations)
    const digests = [hex(yield* explorer.digest)]
    for (const block of chain.blocks) yield* store.importBlock(block, params)
    for (const block of chain.blocks) {
      yield* explorer.advance({ height: block.height, id: block.id })
      digests.push(hex(yield* explorer.digest))
    }
    return { digests, states: chain.states.map((state) => hex(LedgerStore.encodeState(state))) }
  }).pipe(Effect.provide(Explorer.layer.pipe(Layer.provideMerge(LedgerStore.layerMemory), Layer.provide(LedgerLimits.layer()))))

const reported = (lines: ReadonlyArray<string>, word: string): number =>
  lines.reduce((last, line) => (line.startsWith(`${word} `) ? Number(line.slice(word.length + 1)) : last), 0)

/** Kills at varying moments: as the import of a block a few above the head, or an index advance, starts, and 1, 3 and 6 ms into it. */
const kills: ReadonlyArray<Omit<Kill, "height"> & { readonly ahead: number }> = [
  { word: "importing", ahead: 2, delayMs: 0 },
  { word: "importing", ahead: 3, delayMs: 1 },
  { word: "indexing", ahead: 1, delayMs: 0 },
  { word: "importing", ahead: 1, delayMs: 3 },
  { word: "indexing", ahead: 2, delayMs: 1 },
  { word: "importing", ahead: 4, delayMs: 6 }
]

describe("LedgerStore (lmdb, crash)", () => {
  it.scopedLive("a SIGKILLed importer leaves the pure fold up to the stored head, and a new one resumes to the end", () =>
    Effect.gen(function*() {
      const chain = buildChain(LedgerStore.genesisId(params, allocations), 24, 3, 21)
      const expected = yield* expectations(chain)
      const dir = yield* tempDir
      writeFileSync(join(dir, "chain.bin"), encodeBlocks(chain.blocks))
      let head = 0
      let indexed = 0
      let inFlight = 0
      for (const { word, ahead, delayMs } of kills) {
        const run = yield* runImporter(dir, { word, height: (word === "importing" ? head : indexed) + ahead, delayMs })
        assert.strictEqual(run.signal, "SIGKILL", `the child was killed, not finished (code ${run.code}): ${run.stderr}`)
        const durable = reported(run.lines, "head")
        const started = reported(run.lines, "importing")
        const found = yield* inspect(dir)
        assert.isAtLeast(found.height, Math.max(durable, head), "every reported import survived the kill")
        assert.isAtMost(found.height, Math.max(started, head), "nothing past the import in flight")
        assert.isBelow(found.height, chain.blocks.length)
        assert.isAtLeast(found.indexed, Math.max(reported(run.lines, "indexed"), indexed), "every reported advance survived the kill")
        assert.isAtMost(found.indexed, Math.max(reported(run.lines, "indexing"), indexed), "nothing past the advance in flight")
        assert.isAtMost(found.indexed, Math.max(found.height - finalityLag, 0), "the index never passes the finalized block")
        assert.strictEqual(found.state, expected.states[found.height], `state at height ${found.height} is the pure fold`)
        assert.strictEqual(found.digest, expected.digests[found.indexed], `index at indexed height ${found.indexed} is the fold of the finalized prefix`)
        assert.strictEqual(found.reindexed, found.digest, "a reindex after the crash gives the same bytes")
        assert.deepStrictEqual(found.headBytes, found.height === 0 ? found.headBytes : Option.some(hex(chain.blocks[found.height - 1]!.bytes)))
        assert.isFalse(found.above)
        if (started > durable && found.height === durable) inFlight++
        head = found.height
        indexed = found.indexed
      }
      assert.isAtLeast(inFlight, 1, "at least one kill landed inside an import, and that import left nothing")
      const last = yield* runImporter(dir, undefined)
      assert.strictEqual(last.code, 0, last.stderr)
      assert.strictEqual(last.lines.at(-1), `done ${chain.blocks.length}`)
      const final = yield* inspect(dir)
      assert.strictEqual(final.height, chain.blocks.length)
      assert.strictEqual(final.indexed, chain.blocks.length)
      assert.strictEqual(final.state, expected.states[chain.blocks.length])
      assert.strictEqual(final.digest, expected.digests[chain.blocks.length])
    }), 60_000)
})
