import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Either, Fiber, Layer, Stream, TestClock } from "effect"
import * as Limits from "../src/Limits.js"
import { TransportCompliance } from "../src/testing/index.js"
import { Transport } from "../src/Transport.js"
import * as TransportMemory from "../src/TransportMemory.js"

const { cellOf, decodeCell } = TransportCompliance

TransportCompliance.suite("TransportMemory", {
  live: true,
  addressReusable: true,
  medium: Effect.map(TransportMemory.makeNetwork(), (network) => ({
    endpoint: (options) => TransportMemory.make(network, options),
    unreachable: "mem:nobody",
    settle: Effect.sleep("1 millis")
  }))
})

TransportCompliance.suite("TransportMemory with latency and loss, under TestClock", {
  live: false,
  addressReusable: true,
  medium: Effect.map(TransportMemory.makeNetwork({ latency: "5 millis", loss: 0.05 }), (network) => ({
    endpoint: (options) => TransportMemory.make(network, options),
    unreachable: "mem:nobody",
    settle: TestClock.adjust("6 millis")
  }))
})

const withLimits = Effect.provide(Limits.layer())

describe("TransportMemory", () => {
  it.scoped("capabilities follow the network: reliable only without loss, always ordered", () =>
    Effect.gen(function*() {
      const plain = yield* TransportMemory.makeNetwork()
      const lossy = yield* TransportMemory.makeNetwork({ loss: 0.1 })
      const a = yield* withLimits(TransportMemory.make(plain))
      const b = yield* withLimits(TransportMemory.make(lossy))
      assert.deepStrictEqual(a.capabilities, { reliable: true, ordered: true, cellBytes: Limits.defaults.cellBytes })
      assert.deepStrictEqual(b.capabilities, { reliable: false, ordered: true, cellBytes: Limits.defaults.cellBytes })
      assert.strictEqual(a.kind, "mem")
      assert.match(a.address, /^mem:\d+$/)
    }))

  it.scoped("binds a chosen name once; a taken or foreign address is refused", () =>
    Effect.gen(function*() {
      const network = yield* TransportMemory.makeNetwork()
      const a = yield* withLimits(TransportMemory.make(network, { address: "mem:alice" }))
      assert.strictEqual(a.address, "mem:alice")
      const again = yield* Effect.either(withLimits(TransportMemory.make(network, { address: "mem:alice" })))
      assert.isTrue(Either.isLeft(again) && again.left.reason === "Bind")
      const foreign = yield* Effect.either(withLimits(TransportMemory.make(network, { address: "udp:1.2.3.4:5" })))
      assert.isTrue(Either.isLeft(foreign) && foreign.left.reason === "BadAddress")
      assert.deepStrictEqual(yield* network.addresses, ["mem:alice"])
    }))

  it.scoped("an inbound cell of the wrong size is dropped and counted", () =>
    Effect.gen(function*() {
      const network = yield* TransportMemory.makeNetwork()
      const big = yield* TransportMemory.make(network).pipe(Effect.provide(Limits.layer({ cellBytes: 512 })))
      const small = yield* TransportMemory.make(network).pipe(Effect.provide(Limits.layer({ cellBytes: 256 })))
      yield* big.send(small.address, cellOf(512, 1, 0))
      const stats = yield* small.stats
      assert.strictEqual(stats.cellsDroppedWrongSize, 1)
      assert.strictEqual(stats.cellsReceived, 0)
    }))

  it.scoped("a send to an unknown address is dropped silently and counted by the network", () =>
    Effect.gen(function*() {
      const network = yield* TransportMemory.makeNetwork()
      const a = yield* withLimits(TransportMemory.make(network))
      yield* a.send("mem:ghost", cellOf(a.capabilities.cellBytes, 1, 0))
      assert.strictEqual((yield* network.stats).cellsDroppedUnreachable, 1)
      assert.strictEqual((yield* a.stats).cellsSent, 1)
    }))

  it.scoped("latency is respected under TestClock, in send order", () =>
    Effect.gen(function*() {
      const network = yield* TransportMemory.makeNetwork({ latency: "10 millis" })
      const a = yield* withLimits(TransportMemory.make(network))
      const b = yield* withLimits(TransportMemory.make(network))
      const cellBytes = a.capabilities.cellBytes
      const reader = yield* Effect.fork(Stream.runCollect(Stream.take(b.receive, 3)))
      for (let i = 0; i < 3; i++) yield* a.send(b.address, cellOf(cellBytes, 1, i))
      yield* TestClock.adjust("9 millis")
      assert.strictEqual((yield* b.stats).cellsReceived, 0, "nothing before the latency has passed")
      assert.strictEqual((yield* network.stats).cellsInFlight, 3)
      yield* TestClock.adjust("1 millis")
      const got = Chunk.toReadonlyArray(yield* Fiber.join(reader))
      assert.deepStrictEqual(got.map((d) => decodeCell(d.cell, cellBytes)?.index), [0, 1, 2])
      assert.strictEqual((yield* network.stats).cellsInFlight, 0)
    }))

  it.scoped("in-flight cells are bounded by inFlightCellsMax", () =>
    Effect.gen(function*() {
      const network = yield* TransportMemory.makeNetwork({ latency: "10 millis", inFlightCellsMax: 4 })
      const a = yield* withLimits(TransportMemory.make(network))
      for (let i = 0; i < 10; i++) yield* a.send("mem:x", cellOf(a.capabilities.cellBytes, 1, i))
      const stats = yield* network.stats
      assert.strictEqual(stats.cellsInFlight, 4)
      assert.strictEqual(stats.cellsDroppedInFlightFull, 6)
    }))

  it.scoped("loss is roughly as configured over 10,000 cells", () =>
    Effect.gen(function*() {
      const network = yield* TransportMemory.makeNetwork({ loss: 0.25 })
      const a = yield* TransportMemory.make(network).pipe(Effect.provide(Limits.layer({ cellBytes: 16 })))
      const cell = new Uint8Array(16)
      for (let i = 0; i < 10_000; i++) yield* a.send("mem:ghost", cell)
      const stats = yield* network.stats
      // 0.25 * 10,000 = 2,500 with a standard deviation of about 43; allow more than 5 of them
      assert.approximately(stats.cellsDroppedLoss, 2500, 250)
      assert.strictEqual(stats.cellsDroppedLoss + stats.cellsDroppedUnreachable, 10_000)
    }))

  it.scoped("layer provides the Transport service and releases it with the layer", () =>
    Effect.gen(function*() {
      const network = yield* TransportMemory.makeNetwork()
      const address = yield* Effect.scoped(
        Effect.gen(function*() {
          const transport = yield* Transport
          assert.deepStrictEqual(yield* network.addresses, [transport.address])
          return transport.address
        }).pipe(Effect.provide(TransportMemory.layer(network, { address: "mem:layered" }).pipe(Layer.provide(Limits.layer()))))
      )
      assert.strictEqual(address, "mem:layered")
      assert.deepStrictEqual(yield* network.addresses, [])
    }))
})
