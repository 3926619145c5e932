/**
 * The ledger's benchmarks: `cases(quick)` for `npm run bench` (core's `bench/main.ts` runs them with
 * its harness), and on their own: `npx tsx packages/ledger/bench/ledger.ts [--json] [--reps N]
 * [--quick] [--only TEXT]` (a table, or JSON lines `{"bench","metric","value","unit","baseline",
 * "ratio","target"}`; progress on stderr).
 */
import { Effect, type Scope } from "effect"
import { pathToFileURL } from "node:url"
import { type Case, parseOptions, report, runCase } from "../../core/bench/harness.js"
import * as ImportBench from "./import.js"
import * as ValidateBench from "./validate.js"

/** Every ledger case: validation (one core, a worker pool) and block import into lmdb. */
export const cases = (quick: boolean): Effect.Effect<ReadonlyArray<Case>, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    progress(`ledger bench: signing the fixtures${quick ? " (quick)" : ""}…`)
    return [...(yield* ValidateBench.cases(quick)), ...(yield* ImportBench.cases(quick))]
  })

const progress = (line: string) => process.stderr.write(`${line}\n`)

const usage = "usage: npx tsx packages/ledger/bench/ledger.ts [--json] [--reps N] [--quick] [--only TEXT]"

const main = (args: ReadonlyArray<string>) =>
  Effect.scoped(Effect.gen(function*() {
    const options = parseOptions(args, usage)
    const all = yield* cases(options.quick)
    const selected = options.only === undefined ? all : all.filter((spec) => spec.bench.includes(options.only!))
    const results = []
    for (const [index, spec] of selected.entries()) {
      progress(`[${index + 1}/${selected.length}] ${spec.bench}: ${spec.ops} ops × ${options.reps} reps`)
      results.push(yield* runCase(spec, options.reps))
    }
    report(results, options.json)
  }))

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main(process.argv.slice(2))).catch((error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  })
}
