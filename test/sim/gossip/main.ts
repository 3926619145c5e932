/**
 * `npm run sim:gossip -- --nodes 10000 --messages 1000 --seed 1 [--strategies weft,flood,gossipsub]
 * [--loss 0.05] [--loss-mode retransmit|drop] [--churn 0.1] [--rate 50] [--payload 512] [--wall-cap 600] [--json] [--svg out.svg]`
 *
 * Runs the gossip simulator (test/sim/gossip/sim.ts) once per strategy with the same seed, network and
 * workload, prints a table (or one JSON object per strategy with `--json`), and writes an SVG of the
 * latency CDFs. The same seed replays the same run (same `hash`).
 */
import { writeFileSync } from "node:fs"
import * as Engine from "../../../packages/core/src/internal/gossipEngine.js"
import * as Strategies from "../../../packages/core/src/internal/gossipStrategies.js"
import * as Limits from "../../../packages/core/src/Limits.js"
import * as Sim from "./sim.js"
import * as Svg from "./svg.js"

const argument = (name: string): string | undefined => {
  const index = process.argv.indexOf(`--${name}`)
  return index < 0 ? undefined : process.argv[index + 1]
}
const numberArgument = (name: string, fallback: number): number => {
  const text = argument(name)
  const value = text === undefined ? fallback : Number(text)
  if (!Number.isFinite(value) || value < 0) {
    console.error(`sim:gossip: --${name} must be a non-negative number, got ${JSON.stringify(text)}`)
    process.exit(2)
  }
  return value
}

const lossMode = (): Sim.Options["lossMode"] => {
  const mode = argument("loss-mode") ?? Sim.defaults.lossMode
  if (mode !== "retransmit" && mode !== "drop") {
    console.error(`sim:gossip: --loss-mode must be retransmit or drop, got ${JSON.stringify(mode)}`)
    process.exit(2)
  }
  return mode
}

const strategies = (argument("strategies") ?? Strategies.all.join(",")).split(",") as Array<Strategies.Strategy>
for (const strategy of strategies) {
  if (!Strategies.all.includes(strategy)) {
    console.error(`sim:gossip: unknown strategy ${JSON.stringify(strategy)}; use ${Strategies.all.join(", ")}`)
    process.exit(2)
  }
}
const json = process.argv.includes("--json")
const base: Sim.Options = {
  ...Sim.defaults,
  seed: numberArgument("seed", Sim.defaults.seed),
  nodes: numberArgument("nodes", Sim.defaults.nodes),
  messages: numberArgument("messages", Sim.defaults.messages),
  loss: numberArgument("loss", Sim.defaults.loss),
  lossMode: lossMode(),
  churn: numberArgument("churn", Sim.defaults.churn),
  publishPerSecond: numberArgument("rate", Sim.defaults.publishPerSecond),
  payloadBytes: numberArgument("payload", Sim.defaults.payloadBytes),
  flooders: numberArgument("flooders", 0),
  droppers: numberArgument("droppers", 0),
  wallCapSeconds: numberArgument("wall-cap", Sim.defaults.wallCapSeconds),
  config: Engine.configFromLimits(Limits.defaults)
}

const reports: Array<Sim.Report> = []
for (const strategy of strategies) {
  if (!json) process.stderr.write(`running ${strategy} (${base.nodes} nodes x ${base.messages} messages, seed ${base.seed})...\n`)
  const cpuBefore = process.cpuUsage()
  const report = Sim.run({ ...base, strategy })
  const cpu = process.cpuUsage(cpuBefore)
  reports.push(report)
  if (json) {
    console.log(JSON.stringify({
      strategy: report.strategy,
      nodes: report.nodes,
      messages: report.messages,
      lossMode: base.lossMode,
      deliveryRatio: report.deliveryRatio,
      amplification: report.amplification,
      bytesPerNode: report.bytesPerNode,
      latencyP50Ms: report.latencyP50Ms,
      latencyP99Ms: report.latencyP99Ms,
      hopsP50: report.hopsP50,
      hopsP99: report.hopsP99,
      peakMemoryPerNodeBytes: report.peakMemoryPerNodeBytes,
      wallSeconds: report.wallSeconds,
      cpuSeconds: Math.round((cpu.user + cpu.system) / 10_000) / 100,
      capped: report.capped,
      seed: report.seed,
      resultHash: report.resultHash
    }))
  } else {
    process.stderr.write(`  done in ${report.wallSeconds} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU\n`)
  }
}

if (!json) {
  const header = ["strategy", "delivery", "amplif.", "KiB/node", "hops p50/p99", "latency p50/p99 ms", "peak mem/node", "wall s", "hash"]
  const rows = reports.map((r) => [
    r.strategy + (r.capped ? " (capped)" : ""),
    `${(r.deliveryRatio * 100).toFixed(3)}%`,
    r.amplification.toFixed(3),
    (r.bytesPerNode / 1024).toFixed(0),
    `${r.hopsP50}/${r.hopsP99}`,
    `${r.latencyP50Ms}/${r.latencyP99Ms}`,
    `${(r.peakMemoryPerNodeBytes / 1024).toFixed(0)} KiB`,
    r.wallSeconds.toFixed(1),
    r.resultHash
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: Array<string>) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ")
  console.log(`seed ${base.seed}, ${base.nodes} nodes, ${base.messages} messages at ${base.publishPerSecond}/s, ` +
    `${base.payloadBytes} B payload, loss ${base.loss * 100}% (${base.lossMode}), churn ${base.churn * 100}%`)
  console.log(line(header))
  for (const row of rows) console.log(line(row))
}

const svgPath = argument("svg")
if (svgPath !== undefined) {
  writeFileSync(svgPath, Svg.latencyCdf(reports.map((r) => ({ name: r.strategy, histogram: r.latencyHistogram }))))
  if (!json) console.log(`latency CDF written to ${svgPath}`)
}
