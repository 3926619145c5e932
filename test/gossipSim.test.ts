import { describe, expect, it } from "vitest"
import * as Engine from "../packages/core/src/internal/gossipEngine.js"
import * as Limits from "../packages/core/src/Limits.js"
import * as Sim from "./sim/gossip/sim.js"

// A failing run names its seed; `npm run sim:gossip -- --seed N` replays it (same hash).
const seed = Number(process.env.WEFT_SIM_SEED ?? 1)
const config = Engine.configFromLimits(Limits.defaults)
const base: Sim.Options = { ...Sim.defaults, seed, nodes: 1000, messages: 100, config }
const context = (what: string) => `${what} (seed ${seed})`

describe("gossip simulation: 1,000 nodes x 100 messages, 5% loss, 10% churn", () => {
  const reports = new Map<string, Sim.Report>()
  const report = (strategy: Sim.Options["strategy"]) => {
    let found = reports.get(strategy)
    if (found === undefined) {
      found = Sim.run({ ...base, strategy })
      reports.set(strategy, found)
    }
    return found
  }

  it("Weft delivers to every expected node, the baselines to nearly every one, and no message twice", () => {
    for (const strategy of ["weft", "flood", "gossipsub"] as const) {
      const r = report(strategy)
      // Weft's target is 100% under 5% loss (every message kind dropped) and 10% churn. The baselines
      // lose the messages published while a node sat cut off (they keep no announcement for later).
      if (strategy === "weft") expect(r.deliveryRatio, context("weft delivery")).toBe(1)
      else expect(r.deliveryRatio, context(`${strategy} delivery`)).toBeGreaterThanOrEqual(0.985)
      expect(r.duplicateDeliveries, context(`${strategy} duplicate deliveries`)).toBe(0)
      expect(r.dialViolations, context(`${strategy} dials to connected peers`)).toBe(0)
      expect(r.lost, context(`${strategy} loss injected`)).toBeGreaterThan(0)
    }
  }, 120_000)

  it("Weft's amplification is far below GossipSub's and flood's", () => {
    const weft = report("weft")
    const gossipsub = report("gossipsub")
    const flood = report("flood")
    // Target: at most 1.3 copies per node per message (a spanning tree gives 1; repairs add the rest).
    expect(weft.amplification, context("weft amplification")).toBeLessThanOrEqual(1.3)
    expect(weft.amplification * 4, context("weft vs gossipsub")).toBeLessThan(gossipsub.amplification)
    expect(gossipsub.amplification, context("gossipsub vs flood")).toBeLessThan(flood.amplification)
  }, 120_000)

  it("replays exactly from its seed, and another seed gives another run", () => {
    const options = { ...base, nodes: 300, messages: 50 }
    const first = Sim.run(options)
    const second = Sim.run(options)
    expect(second.resultHash).toBe(first.resultHash)
    expect(Sim.run({ ...options, seed: seed + 1 }).resultHash).not.toBe(first.resultHash)
  }, 60_000)
})

describe("gossip storm: every node publishes 10 msg/s", () => {
  it("keeps every queue within its bound and memory flat after warm-up, delivering every valid message", () => {
    // Scaled from 1,000 nodes x 1 min to 100 nodes x 30 s (3,000 msg/s... 30,000 messages) to fit
    // the test budget; the windows are shortened so the run reaches steady state.
    const stormConfig = Engine.configFromLimits({
      ...Limits.defaults,
      gossipSeenWindow: Limits.defaults.gossipPayloadWindow,
      gossipSeenCacheEntriesMax: 20_000,
      gossipMissingEntriesMax: 2048
    }, { payloadWindowMs: 3000 })
    const r = Sim.run({
      ...base,
      nodes: 100,
      messages: 30_000,
      publishPerSecond: 1000,
      roundRobin: true,
      loss: 0,
      churn: 0,
      payloadBytes: 256,
      config: stormConfig
    })
    expect(r.deliveryRatio, context("storm delivery")).toBe(1)
    expect(r.boundsMax["seen"], context("seen-cache")).toBeLessThanOrEqual(20_000)
    expect(r.boundsMax["missing"] ?? 0, context("missing")).toBeLessThanOrEqual(2048)
    expect(r.boundsMax["pendingIhave"] ?? 0, context("pending IHAVE")).toBeLessThanOrEqual(Limits.defaults.gossipIhaveIdsMax)
    expect(r.boundsMax["dontwantMax"] ?? 0, context("IDONTWANT")).toBeLessThanOrEqual(Limits.defaults.gossipDontwantIdsPerPeerMax)
    // Flat: after the 10 s seen window has filled, memory stays within 25% of its level then.
    const series = r.memorySeries
    const settled = series[15]!
    const late = series.slice(16, 33)
    for (const sample of late) expect(sample, context("memory after warm-up")).toBeLessThanOrEqual(settled * 1.25)
  }, 120_000)
})

describe("adversaries", () => {
  it("flooders of invalid messages are scored out and disconnected; honest delivery is unaffected", () => {
    const r = Sim.run({ ...base, nodes: 300, messages: 100, flooders: 5, floodPerSecond: 100, churn: 0 })
    expect(r.invalidDelivered, context("invalid delivered")).toBe(0)
    expect(r.counters["invalid"]!, context("invalid seen")).toBeGreaterThan(0)
    expect(r.counters["disconnects"]!, context("disconnects")).toBeGreaterThanOrEqual(5)
    expect(r.deliveryRatio, context("honest delivery")).toBe(1)
  }, 60_000)

  it("droppers (5% of nodes forward nothing) are routed around: honest nodes still get nearly every message", () => {
    const clean = Sim.run({ ...base, nodes: 1000, messages: 100, churn: 0 })
    const r = Sim.run({ ...base, nodes: 1000, messages: 100, droppers: 50, churn: 0 })
    // Children of a dropper fetch what it swallows and then move to another parent; a dropping root
    // (the smallest id) cannot be escaped yet, so the sim never makes node 0 a dropper (see LIMITS.md).
    expect(r.deliveryRatio, context("delivery with droppers")).toBeGreaterThanOrEqual(0.9999)
    expect(r.latencyP50Ms, context("p50 with droppers")).toBeLessThanOrEqual(clean.latencyP50Ms * 1.6)
  }, 60_000)

  it("a peer flapping every 100 ms does not grow its neighbours' memory", () => {
    const r = Sim.run({ ...base, nodes: 300, messages: 300, flappers: 3, flapMs: 100, churn: 0, loss: 0 })
    const series = r.flapNeighbourMemorySeries
    expect(series.length, context("samples")).toBeGreaterThan(8)
    // Memory grows with the seen-cache on every node alike; the flapping peer's neighbours must not
    // hold more than the average node (its per-peer state is released on every disconnect).
    series.forEach((sample, i) => {
      expect(sample, context(`flap neighbour memory at ${i} s`)).toBeLessThanOrEqual(r.memorySeries[i]! * 1.2)
    })
    expect(r.deliveryRatio, context("delivery")).toBe(1)
  }, 60_000)
})
