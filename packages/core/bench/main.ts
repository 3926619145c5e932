/**
 * `npm run bench [-- --json] [--reps N] [--quick]`: the foundation's benchmarks, each against a
 * baseline measured in the same run (see `harness.ts`). The report goes to stdout (a table, or JSON
 * lines with `--json`); progress goes to stderr.
 *
 * Cases: envelope encode+decode; local RPC; RPC over the memory transport; actor tell and ask; content
 * store put and get on lmdb; the ledger's transaction validation (vs raw ML-DSA-65 verify, and a
 * 2-worker pool vs one core) and block import (vs raw lmdb puts), from `packages/ledger/bench/ledger.ts`;
 * ephemeral message validation (vs raw SHA-256), proof-of-work attempts and store inserts at capacity,
 * from `packages/ephemeral/bench/ephemeral.ts`.
 */
import { Effect } from "effect"
import * as ActorBench from "./actor.js"
import * as EnvelopeBench from "./envelope.js"
import { progress, twoNodes } from "./fixtures.js"
import type { Case, Options, Result } from "./harness.js"
import { parseOptions, report, runCase } from "./harness.js"
import * as RpcBench from "./rpc.js"
import * as StoreBench from "./store.js"
import * as EphemeralBench from "../../ephemeral/bench/ephemeral.js"
import * as LedgerBench from "../../ledger/bench/ledger.js"

const usage = "usage: npm run bench -- [--json] [--reps N] [--quick] [--only TEXT]"

const format = (value: number): string =>
  value >= 1e6 ? `${(value / 1e6).toFixed(2)}M` : value >= 1e3 ? `${(value / 1e3).toFixed(1)}k` : value.toFixed(1)

const runAll = (cases: ReadonlyArray<Case>, reps: number) =>
  Effect.gen(function*() {
    const results: Array<Result> = []
    for (const [index, spec] of cases.entries()) {
      progress(`[${index + 1}/${cases.length}] ${spec.bench}: ${spec.ops} ops × ${reps} reps${spec.baseline ? ` vs ${spec.baseline.name}` : ""}`)
      const started = performance.now()
      const result = yield* runCase(spec, reps)
      const seconds = ((performance.now() - started) / 1000).toFixed(1)
      const versus = result.baseline === undefined ? "" : ` vs ${format(result.baseline)} (ratio ${result.ratio?.toFixed(2)})`
      progress(`      ${format(result.value)} ${result.unit}${versus} in ${seconds} s`)
      results.push(result)
    }
    return results
  })

const program = (options: Options) =>
  Effect.scoped(Effect.gen(function*() {
    progress(`weft bench: ${options.reps} reps${options.quick ? ", quick" : ""}; envelope ${EnvelopeBench.envelopeBytes} bytes`)
    progress("starting two nodes on a memory network…")
    const nodes = yield* twoNodes
    const all = [
      ...EnvelopeBench.cases(options.quick),
      ...(yield* RpcBench.cases(nodes, options.quick)),
      ...(yield* ActorBench.cases(nodes, options.quick)),
      ...(yield* StoreBench.cases(options.quick)),
      ...(yield* LedgerBench.cases(options.quick)),
      ...(yield* EphemeralBench.cases(options.quick))
    ]
    const cases = options.only === undefined ? all : all.filter((spec) => spec.bench.includes(options.only!))
    const started = performance.now()
    const results = yield* runAll(cases, options.reps)
    progress(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`)
    return results
  }))

const main = async (): Promise<void> => {
  const options = parseOptions(process.argv.slice(2), usage)
  const results = await Effect.runPromise(program(options))
  report(results, options.json)
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
})
