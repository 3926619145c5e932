import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Either, Fiber, Scope, Stream, TestClock } from "effect"
import type { Datagram, Endpoint } from "../src/Transport.js"
import * as Prng from "../src/internal/prng.js"
import * as Limits from "../src/Limits.js"
import { TransportCompliance } from "../src/testing/index.js"
import * as TransportSim from "../src/TransportSim.js"

const { cellOf, decodeCell } = TransportCompliance

const simMedium = (options: TransportSim.NetworkOptions, settle: Effect.Effect<void>) =>
  Effect.map(TransportSim.makeNetwork(options), (network) => ({
    endpoint: (endpointOptions?: { readonly address?: string }) => TransportSim.make(network, endpointOptions),
    unreachable: "sim:nobody",
    settle
  }))

TransportCompliance.suite("TransportSim, faulty, under TestClock", {
  live: false,
  addressReusable: true,
  medium: simMedium(
    { seed: 1, latency: { minMs: 1, maxMs: 20 }, loss: 0.02, duplicate: 0.02, reorder: 0.1 },
    TestClock.adjust("61 millis") // past maxMs + the default reorder delay (40 ms)
  )
})

TransportCompliance.suite("TransportSim, clean, under TestClock", {
  live: false,
  addressReusable: true,
  medium: simMedium({ seed: 2, latency: { minMs: 5, maxMs: 5 } }, TestClock.adjust("5 millis"))
})

TransportCompliance.suite("TransportSim, live", {
  live: true,
  addressReusable: true,
  medium: simMedium({ seed: 3, latency: { minMs: 0, maxMs: 2 } }, Effect.sleep("3 millis"))
})

const withLimits = Effect.provide(Limits.layer())
const smallCells = Effect.provide(Limits.layer({ cellBytes: 16, endpointInboxCells: 100_000 }))

/** Drains an endpoint into an array in the current scope. */
const drain = (endpoint: Endpoint) =>
  Effect.gen(function*() {
    const received: Array<Datagram> = []
    yield* endpoint.receive.pipe(
      Stream.runForEachChunk((chunk) => Effect.sync(() => received.push(...chunk))),
      Effect.forkScoped
    )
    return received
  })

const indexOf = (datagram: Datagram): number | undefined => decodeCell(datagram.cell, datagram.cell.length)?.index

/** A fixed workload on a fresh network: 8 endpoints, each sends 50 cells to random peers. */
const workload = (seed: number) =>
  Effect.scoped(Effect.gen(function*() {
    const network = yield* TransportSim.makeNetwork({
      seed,
      latency: { minMs: 1, maxMs: 30 },
      loss: 0.1,
      duplicate: 0.05,
      reorder: 0.2
    })
    const endpoints = yield* Effect.all(Array.from({ length: 8 }, () => withLimits(TransportSim.make(network))))
    const inboxes = yield* Effect.all(endpoints.map(drain))
    const pick = Prng.make(99) // the same traffic for every seed: only the network's choices differ
    for (let i = 0; i < 400; i++) {
      const from = endpoints[i % 8]!
      const to = endpoints[pick.nextInt(0, 7)]!
      yield* from.send(to.address, cellOf(from.capabilities.cellBytes, i % 8, i))
    }
    yield* TestClock.adjust("200 millis")
    return {
      hash: yield* network.traceHash,
      stats: yield* network.stats,
      deliveries: inboxes.map((inbox) => inbox.map((d) => `${d.from}>${indexOf(d)}`).join(","))
    }
  }))

describe("TransportSim", () => {
  it.effect("the same seed replays exactly: same trace hash, same deliveries", () =>
    Effect.gen(function*() {
      const first = yield* workload(42)
      const second = yield* workload(42)
      assert.strictEqual(first.hash, second.hash)
      assert.deepStrictEqual(first.deliveries, second.deliveries)
      assert.deepStrictEqual(first.stats, second.stats)
      assert.isAbove(first.stats.cellsDelivered, 300)
    }))

  it.effect("different seeds give different runs", () =>
    Effect.gen(function*() {
      const a = yield* workload(1)
      const b = yield* workload(2)
      assert.notStrictEqual(a.hash, b.hash)
      assert.notDeepEqual(a.deliveries, b.deliveries)
    }))

  it.scoped("loss and duplication rates are roughly as configured over 10,000 cells", () =>
    Effect.gen(function*() {
      const network = yield* TransportSim.makeNetwork({ seed: 7, latency: { minMs: 0, maxMs: 5 }, loss: 0.1, duplicate: 0.05 })
      const a = yield* smallCells(TransportSim.make(network))
      const b = yield* smallCells(TransportSim.make(network))
      for (let i = 0; i < 10_000; i++) yield* a.send(b.address, new Uint8Array(16))
      yield* TestClock.adjust("5 millis")
      const stats = yield* network.stats
      // means 1,000 and 450 (5% of the 9,000 kept); standard deviations about 30 and 21: allow ~6
      assert.approximately(stats.cellsDroppedLoss, 1000, 180)
      assert.approximately(stats.cellsDuplicated, 450, 130)
      assert.strictEqual(stats.cellsDelivered, 10_000 - stats.cellsDroppedLoss + stats.cellsDuplicated)
      assert.strictEqual((yield* b.stats).cellsReceived, stats.cellsDelivered)
      assert.strictEqual(stats.cellsInFlight, 0)
    }))

  it.scoped("latency is respected under TestClock: nothing arrives before minMs", () =>
    Effect.gen(function*() {
      const network = yield* TransportSim.makeNetwork({ seed: 5, latency: { minMs: 10, maxMs: 20 } })
      const a = yield* withLimits(TransportSim.make(network))
      const b = yield* withLimits(TransportSim.make(network))
      const received = yield* drain(b)
      for (let i = 0; i < 100; i++) yield* a.send(b.address, cellOf(a.capabilities.cellBytes, 0, i))
      yield* TestClock.adjust("9 millis")
      yield* TestClock.adjust(0) // lets every fiber run, so a premature delivery would show
      assert.strictEqual(received.length, 0)
      assert.strictEqual((yield* network.stats).cellsInFlight, 100)
      yield* TestClock.adjust("1 millis")
      yield* TestClock.adjust(0)
      assert.isAbove(received.length, 0, "some cells arrive at minMs")
      assert.isBelow(received.length, 100, "not all: the rest wait up to maxMs")
      yield* TestClock.adjust("10 millis")
      yield* TestClock.adjust(0)
      assert.strictEqual(received.length, 100)
    }))

  it.scoped("an earlier cell wakes the scheduler while it sleeps for a later one", () =>
    Effect.gen(function*() {
      const network = yield* TransportSim.makeNetwork({ seed: 5, latency: { minMs: 100, maxMs: 100 } })
      const a = yield* withLimits(TransportSim.make(network))
      const b = yield* withLimits(TransportSim.make(network))
      const received = yield* drain(b)
      yield* a.send(b.address, cellOf(a.capabilities.cellBytes, 0, 1))
      yield* TestClock.adjust(0)
      yield* network.setLatency({ minMs: 5, maxMs: 5 })
      yield* a.send(b.address, cellOf(a.capabilities.cellBytes, 0, 2))
      yield* TestClock.adjust("5 millis")
      yield* TestClock.adjust(0)
      assert.deepStrictEqual(received.map(indexOf), [2])
      yield* TestClock.adjust("95 millis")
      yield* TestClock.adjust(0)
      assert.deepStrictEqual(received.map(indexOf), [2, 1])
    }))

  it.scoped("a fixed latency keeps order; reordering lets later cells overtake", () =>
    Effect.gen(function*() {
      const network = yield* TransportSim.makeNetwork({ seed: 11, latency: { minMs: 3, maxMs: 3 } })
      const a = yield* withLimits(TransportSim.make(network))
      const b = yield* withLimits(TransportSim.make(network))
      assert.isTrue(b.capabilities.ordered)
      const received = yield* drain(b)
      for (let i = 0; i < 50; i++) yield* a.send(b.address, cellOf(a.capabilities.cellBytes, 0, i))
      yield* TestClock.adjust("3 millis")
      yield* TestClock.adjust(0)
      assert.deepStrictEqual(received.map(indexOf), Array.from({ length: 50 }, (_, i) => i))
      yield* network.setReorder(0.5)
      for (let i = 50; i < 100; i++) yield* a.send(b.address, cellOf(a.capabilities.cellBytes, 0, i))
      yield* TestClock.adjust("100 millis")
      const later = received.slice(50).map(indexOf)
      assert.strictEqual(later.length, 50)
      assert.notDeepEqual(later, [...later].sort((x, y) => x! - y!), "some cells were overtaken")
      assert.isAbove((yield* network.stats).cellsDelayed, 0)
    }))

  it.scoped("a partition drops cells between groups and heal restores them", () =>
    Effect.gen(function*() {
      const network = yield* TransportSim.makeNetwork({ seed: 3, latency: { minMs: 1, maxMs: 1 } })
      const [a, b, c] = yield* Effect.all([1, 2, 3].map(() => withLimits(TransportSim.make(network))))
      const [inA, inB, inC] = yield* Effect.all([a!, b!, c!].map(drain))
      const cellBytes = a!.capabilities.cellBytes
      yield* network.partition([[a!.address, b!.address]]) // c is alone in the rest
      yield* a!.send(b!.address, cellOf(cellBytes, 0, 1))
      yield* a!.send(c!.address, cellOf(cellBytes, 0, 2))
      yield* c!.send(a!.address, cellOf(cellBytes, 0, 3))
      yield* TestClock.adjust("1 millis")
      yield* TestClock.adjust(0)
      assert.deepStrictEqual([inA!.length, inB!.length, inC!.length], [0, 1, 0])
      assert.strictEqual((yield* network.stats).cellsDroppedPartition, 2)
      // a cell in flight when the partition starts is dropped too
      yield* network.heal
      yield* a!.send(c!.address, cellOf(cellBytes, 0, 4))
      yield* network.partition([[a!.address], [c!.address]])
      yield* TestClock.adjust("1 millis")
      assert.strictEqual((yield* network.stats).cellsDroppedPartition, 3)
      yield* network.heal
      yield* a!.send(c!.address, cellOf(cellBytes, 0, 5))
      yield* c!.send(a!.address, cellOf(cellBytes, 0, 6))
      yield* TestClock.adjust("1 millis")
      yield* TestClock.adjust(0)
      assert.deepStrictEqual(inC!.map(indexOf), [5])
      assert.deepStrictEqual(inA!.map(indexOf), [6])
    }))

  it.scoped("a clog holds cells to and from an address, then releases them in send order", () =>
    Effect.gen(function*() {
      const network = yield* TransportSim.makeNetwork({ seed: 8, latency: { minMs: 1, maxMs: 10 } })
      const [a, b, c] = yield* Effect.all([1, 2, 3].map(() => withLimits(TransportSim.make(network))))
      const [inB, inC] = yield* Effect.all([b!, c!].map(drain))
      const cellBytes = a!.capabilities.cellBytes
      for (let i = 0; i < 5; i++) yield* a!.send(b!.address, cellOf(cellBytes, 0, i)) // already in flight
      yield* network.clog(b!.address, "50 millis")
      for (let i = 5; i < 20; i++) yield* a!.send(b!.address, cellOf(cellBytes, 0, i))
      yield* a!.send(c!.address, cellOf(cellBytes, 0, 100)) // c is not clogged
      yield* TestClock.adjust("49 millis")
      yield* TestClock.adjust(0)
      assert.strictEqual(inB!.length, 0, "held while clogged")
      assert.deepStrictEqual(inC!.map(indexOf), [100])
      yield* TestClock.adjust("1 millis")
      yield* TestClock.adjust(0)
      assert.deepStrictEqual(inB!.map(indexOf), Array.from({ length: 20 }, (_, i) => i), "released in send order")
    }))

  it.scoped("a crashed endpoint neither sends nor receives; restart brings it back", () =>
    Effect.gen(function*() {
      const network = yield* TransportSim.makeNetwork({ seed: 9, latency: { minMs: 2, maxMs: 2 } })
      const a = yield* withLimits(TransportSim.make(network))
      const b = yield* withLimits(TransportSim.make(network))
      const inA = yield* drain(a)
      const cellBytes = a.capabilities.cellBytes
      yield* b.send(b.address, cellOf(cellBytes, 0, 0)) // sits in b's unread inbox
      yield* TestClock.adjust("2 millis")
      assert.strictEqual((yield* b.stats).cellsReceived, 1)
      yield* a.send(b.address, cellOf(cellBytes, 0, 1)) // in flight when b crashes
      yield* network.crash(b.address)
      yield* a.send(b.address, cellOf(cellBytes, 0, 2))
      yield* b.send(a.address, cellOf(cellBytes, 0, 3))
      yield* TestClock.adjust("2 millis")
      yield* TestClock.adjust(0)
      assert.strictEqual(inA.length, 0)
      // the inbox cell, the in-flight cell, the cell sent to b and the cell b sent
      assert.strictEqual((yield* network.stats).cellsDroppedCrashed, 4)
      yield* network.restart(b.address)
      const inB = yield* drain(b)
      yield* a.send(b.address, cellOf(cellBytes, 0, 4))
      yield* b.send(a.address, cellOf(cellBytes, 0, 5))
      yield* TestClock.adjust("2 millis")
      yield* TestClock.adjust(0)
      assert.deepStrictEqual(inB.map(indexOf), [4])
      assert.deepStrictEqual(inA.map(indexOf), [5])
    }))

  it.scoped("cells to an unbound address are dropped when due; a wrong-size inbound cell is counted", () =>
    Effect.gen(function*() {
      const network = yield* TransportSim.makeNetwork({ seed: 4 })
      const big = yield* TransportSim.make(network).pipe(Effect.provide(Limits.layer({ cellBytes: 64 })))
      const small = yield* TransportSim.make(network).pipe(Effect.provide(Limits.layer({ cellBytes: 32 })))
      yield* big.send(small.address, cellOf(64, 0, 0))
      yield* big.send("sim:ghost", cellOf(64, 0, 1))
      yield* TestClock.adjust(0)
      assert.strictEqual((yield* small.stats).cellsDroppedWrongSize, 1)
      const stats = yield* network.stats
      assert.strictEqual(stats.cellsDroppedWrongSize, 1)
      assert.strictEqual(stats.cellsDroppedUnreachable, 1)
      assert.strictEqual(stats.cellsDelivered, 0)
    }))

  it.scoped("a bound is enforced on cells in flight", () =>
    Effect.gen(function*() {
      const network = yield* TransportSim.makeNetwork({ seed: 4, latency: { minMs: 5, maxMs: 5 }, inFlightCellsMax: 10 })
      const a = yield* withLimits(TransportSim.make(network))
      for (let i = 0; i < 25; i++) yield* a.send("sim:ghost", cellOf(a.capabilities.cellBytes, 0, i))
      const stats = yield* network.stats
      assert.strictEqual(stats.cellsInFlight, 10)
      assert.strictEqual(stats.cellsDroppedInFlightFull, 15)
    }))

  it.scoped("hundreds of endpoints share one network", () =>
    Effect.gen(function*() {
      const network = yield* TransportSim.makeNetwork({ seed: 12, latency: { minMs: 1, maxMs: 50 } })
      const endpoints = yield* Effect.all(Array.from({ length: 300 }, () => smallCells(TransportSim.make(network))))
      const readers = yield* Effect.all(endpoints.map((endpoint) => Effect.fork(Stream.runCollect(Stream.take(endpoint.receive, 10)))))
      for (let round = 0; round < 10; round++) {
        for (let i = 0; i < endpoints.length; i++) {
          yield* endpoints[i]!.send(endpoints[(i + 1 + round) % endpoints.length]!.address, new Uint8Array(16))
        }
      }
      yield* TestClock.adjust("50 millis")
      const counts = yield* Effect.forEach(readers, (reader) => Effect.map(Fiber.join(reader), Chunk.size))
      assert.isTrue(counts.every((count) => count === 10))
      assert.strictEqual((yield* network.stats).cellsDelivered, 3000)
    }))

  it.scoped("capabilities reflect the settings; bad options and addresses are refused", () =>
    Effect.gen(function*() {
      const network = yield* TransportSim.makeNetwork({ seed: 1, latency: { minMs: 1, maxMs: 2 }, loss: 0.1 })
      const a = yield* withLimits(TransportSim.make(network, { address: "sim:alice" }))
      assert.strictEqual(a.address, "sim:alice")
      assert.deepStrictEqual(a.capabilities, { reliable: false, ordered: false, cellBytes: Limits.defaults.cellBytes })
      const taken = yield* Effect.either(withLimits(TransportSim.make(network, { address: "sim:alice" })))
      assert.isTrue(Either.isLeft(taken) && taken.left.reason === "Bind")
      const foreign = yield* Effect.either(withLimits(TransportSim.make(network, { address: "mem:alice" })))
      assert.isTrue(Either.isLeft(foreign) && foreign.left.reason === "BadAddress")
      const scope = yield* Scope.make()
      const bad = yield* Effect.exit(Scope.extend(TransportSim.makeNetwork({ seed: 1, loss: 2 }), scope))
      assert.isTrue(bad._tag === "Failure", "a probability above 1 is a defect")
    }))
})

describe("internal/prng", () => {
  it("replays from a seed and from a saved state", () => {
    const a = Prng.make(123)
    const b = Prng.make(123)
    const first = Array.from({ length: 5 }, () => a.nextUint32())
    assert.deepStrictEqual(Array.from({ length: 5 }, () => b.nextUint32()), first)
    const resumed = Prng.fromState(a.state())
    assert.deepStrictEqual(Array.from({ length: 5 }, () => resumed.nextUint32()), Array.from({ length: 5 }, () => a.nextUint32()))
    assert.notDeepEqual(Array.from({ length: 5 }, () => Prng.make(124).nextUint32()), first)
  })

  it("draws uniformly within bounds", () => {
    const prng = Prng.make(7)
    const counts = [0, 0, 0, 0]
    for (let i = 0; i < 40_000; i++) {
      const value = prng.nextInt(0, 3)
      counts[value] = (counts[value] ?? 0) + 1
      const float = prng.nextFloat()
      assert.isTrue(float >= 0 && float < 1)
    }
    for (const count of counts) assert.approximately(count, 10_000, 400)
  })
})

/** A reference FNV-1a 64 over the documented trace fields, in BigInt. */
const referenceTrace = (deliveries: ReadonlyArray<{ timeMs: number; from: number; to: number; cell: Uint8Array }>) => {
  let hash = 0xcbf29ce484222325n
  const byte = (b: number) => {
    hash = ((hash ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn
  }
  const word = (w: number) => [0, 8, 16, 24].forEach((shift) => byte((w >>> shift) & 0xff))
  for (const { cell, from, timeMs, to } of deliveries) {
    word(timeMs)
    word(0)
    word(from)
    word(to)
    word(cell.length)
    cell.subarray(0, 8).forEach(byte)
    cell.subarray(cell.length - 8).forEach(byte)
  }
  return hash.toString(16).padStart(16, "0")
}

describe("TransportSim trace hash", () => {
  it.scoped("is FNV-1a 64 over (time, sender index, receiver index, length, first and last 8 bytes)", () =>
    Effect.gen(function*() {
      const network = yield* TransportSim.makeNetwork({ seed: 1, latency: { minMs: 3, maxMs: 3 } })
      assert.strictEqual(yield* network.traceHash, referenceTrace([]))
      const a = yield* smallCells(TransportSim.make(network))
      const b = yield* smallCells(TransportSim.make(network))
      const one = Uint8Array.from({ length: 16 }, (_, i) => i * 17)
      const two = Uint8Array.from({ length: 16 }, (_, i) => 255 - i)
      yield* a.send(b.address, one)
      yield* TestClock.adjust("1 millis")
      yield* b.send(a.address, two)
      yield* TestClock.adjust("5 millis")
      assert.strictEqual((yield* network.stats).cellsDelivered, 2)
      assert.strictEqual(
        yield* network.traceHash,
        referenceTrace([{ timeMs: 3, from: 0, to: 1, cell: one }, { timeMs: 4, from: 1, to: 0, cell: two }])
      )
    }))
})
