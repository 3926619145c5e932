import { describe, expect, it } from "vitest"
import * as Scenario from "./sim/scenario.js"

// A failing run names its seed; `npm run sim -- --seed N` replays it exactly (same trace hash).
const seed = Number(process.env.WEFT_SIM_SEED ?? 1)

describe("simulation: 100 nodes, calls and actor messages under loss, duplication, reordering and a healed partition", () => {
  // --seed N replays a run exactly; this must hold whatever the seed.
  it(`holds every invariant (seed ${seed})`, async () => {
    // 60 simulated seconds fit the test budget (npm run sim runs 120); the 35 s partition outlasts
    // the 30 s session idle timeout, so sessions across it die and are re-established after the heal.
    const report = await Scenario.run({ ...Scenario.defaults, seed, durationMs: 60_000, partitionAtMs: 10_000, healAtMs: 45_000 })
    const context = `seed ${seed} (replay: npm run sim -- --seed ${seed})`
    expect(report.violations, context).toEqual([])
    // Every call ended, as a success or a typed failure: nothing else is counted.
    const failed = Object.values(report.callFailures).reduce((sum, n) => sum + n, 0)
    expect(report.callsOk + failed, context).toBe(report.calls)
    expect(Object.keys(report.callFailures).every((key) => /^(RpcClientError|MessageError|ActorError):/.test(key)), context).toBe(true)
    // The faults were real: the medium lost and duplicated cells (the streams below the message layer
    // repair them, so the message layer sees neither gaps nor duplicates)...
    expect(report.cellsLost, context).toBeGreaterThan(0)
    expect(report.cellsDuplicated, context).toBeGreaterThan(0)
    // ...and the network still did its work, before and after the partition healed.
    expect(report.callsOk / report.calls, context).toBeGreaterThan(0.7)
    expect(report.callsOkAfterHeal, context).toBeGreaterThan(0)
    expect(report.tellsDelivered / report.tells, context).toBeGreaterThan(0.7)
  }, 300_000)

  it("replays exactly from its seed", async () => {
    const options = { ...Scenario.defaults, seed: seed + 1, nodes: 20, durationMs: 20_000, partitionAtMs: 5_000, healAtMs: 10_000 }
    const first = await Scenario.run(options)
    const second = await Scenario.run(options)
    expect(second.traceHash).toBe(first.traceHash)
    expect(second.calls).toBe(first.calls)
    const other = await Scenario.run({ ...options, seed: seed + 2 })
    expect(other.traceHash).not.toBe(first.traceHash)
  }, 300_000)
})
