/**
 * `npm run sim -- [--seed N] [--nodes N] [--duration-ms N] [--json]`: runs the foundation's network
 * simulation (test/sim/scenario.ts) and prints its report; the same seed replays the same run
 * (same trace hash). Exits non-zero when an invariant was violated.
 */
import * as Scenario from "./scenario.js"

const argument = (name: string): string | undefined => {
  const index = process.argv.indexOf(`--${name}`)
  return index < 0 ? undefined : process.argv[index + 1]
}
const numberArgument = (name: string, fallback: number): number => {
  const text = argument(name)
  const value = text === undefined ? fallback : Number(text)
  if (!Number.isInteger(value) || value < 0) {
    console.error(`sim: --${name} must be a non-negative integer, got ${JSON.stringify(text)}`)
    process.exit(2)
  }
  return value
}

const durationMs = numberArgument("duration-ms", Scenario.defaults.durationMs)
const options: Scenario.Options = {
  ...Scenario.defaults,
  seed: numberArgument("seed", Scenario.defaults.seed),
  nodes: numberArgument("nodes", Scenario.defaults.nodes),
  // The partition keeps its place in the run: from a quarter to half of the duration.
  durationMs,
  partitionAtMs: Math.round(durationMs / 4),
  healAtMs: Math.round(durationMs / 2)
}
const report = await Scenario.run(options)
if (process.argv.includes("--json")) {
  console.log(JSON.stringify({ bench: "sim", ...report }))
} else {
  console.log(`seed ${report.seed}, ${report.nodes} nodes, ${options.durationMs / 1000} s simulated in ${report.wallSeconds} s`)
  console.log(`calls ${report.calls}: ${report.callsOk} ok (${report.callsOkAfterHeal} after the heal), failures ${JSON.stringify(report.callFailures)}`)
  console.log(`tells ${report.tells}: ${report.tellsDelivered} delivered in order; duplicates dropped ${report.duplicatesDropped}, gaps skipped ${report.gapsSkipped}`)
  console.log(`cells delivered ${report.cellsDelivered}, lost ${report.cellsLost}, duplicated ${report.cellsDuplicated}`)
  console.log(`violations ${report.violations.length}${report.violations.length > 0 ? `:\n  ${report.violations.slice(0, 20).join("\n  ")}` : ""}`)
  console.log(`trace ${report.traceHash}`)
}
process.exit(report.violations.length === 0 ? 0 : 1)
