import { assert, describe, it } from "@effect/vitest"
import type { Scope } from "effect"
import { Clock, Deferred, Duration, Effect, Exit, FastCheck as fc, Fiber, Layer, Ref, Stream } from "effect"
import * as CongestionControl from "../src/CongestionControl.js"
import * as Prng from "../src/internal/prng.js"
import * as Packet from "../src/internal/streamsPacket.js"
import { RangeSet } from "../src/internal/streamsRanges.js"
import * as Limits from "../src/Limits.js"
import { receiveFrom, type Session } from "../src/Link.js"
import * as NodeId from "../src/NodeId.js"
import * as Path from "../src/Path.js"
import * as Simulation from "../src/Simulation.js"
import * as Streams from "../src/Streams.js"
import type { Address, Endpoint } from "../src/Transport.js"
import * as TransportSim from "../src/TransportSim.js"
import { LinkError } from "../src/WeftError.js"

// ---------------------------------------------------------------------------------------------------
// Harness: paths over TransportSim endpoints (a datagram rides in one cell as u16 length ‖ bytes ‖ zeros)

const cellBytes = Limits.defaults.cellBytes
const mtuBytes = cellBytes - 2
const idA = NodeId.fromBytes(new Uint8Array(32).fill(0xa))
const idB = NodeId.fromBytes(new Uint8Array(32).fill(0xb))

const toCell = (datagram: Uint8Array): Uint8Array => {
  const cell = new Uint8Array(cellBytes)
  cell[0] = datagram.length >>> 8
  cell[1] = datagram.length
  cell.set(datagram, 2)
  return cell
}

const fromCell = (cell: Uint8Array): Uint8Array => cell.subarray(2, 2 + ((cell[0]! << 8) | cell[1]!))

const sendVia = (endpoint: Endpoint, to: Address) => (datagram: Uint8Array) =>
  endpoint.send(to, toCell(datagram)).pipe(Effect.mapError((error) => new LinkError({ reason: "Transport", detail: error.reason })))

const received = (endpoint: Endpoint): Stream.Stream<Uint8Array> =>
  endpoint.receive.pipe(Stream.map((datagram) => fromCell(datagram.cell)), Stream.catchAll(() => Stream.empty))

/** A two-way path between two endpoints of `network`. */
const pathPair = (network: TransportSim.SimNetwork) =>
  Effect.gen(function*() {
    const a = yield* TransportSim.make(network, { address: "sim:a" })
    const b = yield* TransportSim.make(network, { address: "sim:b" })
    const atA: Path.Path = { peer: idB, mtuBytes, send: sendVia(a, b.address), receive: Path.receiveFrom(received(a)) }
    const atB: Path.Path = { peer: idA, mtuBytes, send: sendVia(b, a.address), receive: Path.receiveFrom(received(b)) }
    return { atA, atB }
  })

/** A one-way link: `tx` sends (and never receives), `rx` is what arrives at the far end. */
const oneWay = (network: TransportSim.SimNetwork, name: string, peer: NodeId.NodeId) =>
  Effect.gen(function*() {
    const from = yield* TransportSim.make(network, { address: `sim:${name}-tx` })
    const to = yield* TransportSim.make(network, { address: `sim:${name}-rx` })
    const tx: Path.Path = { peer, mtuBytes, send: sendVia(from, to.address), receive: () => Effect.never }
    return { tx, rx: Path.receiveFrom(received(to)), address: from.address }
  })

/** Every datagram `path` sends, decoded, with its send time. */
interface Departure {
  readonly atMs: number
  readonly bytes: number
  readonly packet: Packet.Packet | undefined
}

/** Wraps `path`: records every send; `drop` may swallow one (it is then lost before the medium). */
const tap = (path: Path.Path, log: Array<Departure>, drop: (departure: Departure) => boolean = () => false): Path.Path => ({
  ...path,
  send: (datagram) =>
    Effect.flatMap(Clock.currentTimeMillis, (atMs) => {
      const departure = { atMs, bytes: datagram.length, packet: Packet.decode(datagram) }
      log.push(departure)
      return drop(departure) ? Effect.void : path.send(datagram)
    })
})

const streamsIn = (departure: Departure): Array<Packet.StreamData> =>
  departure.packet?.kind === "data" ? [...departure.packet.streams] : []

/** A deterministic frame: its stream and index in the first 6 bytes, then a pattern. */
const makeFrame = (stream: number, index: number, size: number): Uint8Array => {
  const frame = new Uint8Array(size)
  for (let i = 0; i < size; i++) frame[i] = (stream * 31 + index * 7 + i * 13) & 0xff
  if (size >= 6) {
    frame[0] = stream >>> 8
    frame[1] = stream
    new DataView(frame.buffer).setUint32(2, index)
  }
  return frame
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((byte, i) => byte === b[i])

/** Frame sizes: mostly small and medium, some up to 64 KiB. */
const sizes = (seed: number, count: number, maxBytes: number): Array<number> => {
  const random = Prng.make(seed)
  return Array.from({ length: count }, () => {
    const kind = random.nextFloat()
    if (kind < 0.4) return random.nextInt(0, 200)
    if (kind < 0.85) return random.nextInt(200, 8 * 1024)
    return random.nextInt(8 * 1024, maxBytes)
  })
}

interface Received {
  readonly byStream: Map<number, Array<Uint8Array>>
  /** Delivery order: stream and index within the stream. */
  readonly order: Array<{ readonly stream: number; readonly atMs: number }>
  readonly done: Deferred.Deferred<void>
}

/** Reads frames off a connection in the scope, through its `frames` stream or its plain-code `receive`; `done` completes once `expected` arrived. */
const collect = (connection: Streams.Connection, expected: number, via: "frames" | "receive" = "frames") =>
  Effect.gen(function*() {
    const result: Received = { byStream: new Map(), order: [], done: yield* Deferred.make<void>() }
    const clock = yield* Effect.clock
    let count = 0
    const take = ({ frame, stream }: Streams.Frame): boolean => {
      const list = result.byStream.get(stream) ?? []
      list.push(frame)
      result.byStream.set(stream, list)
      result.order.push({ stream, atMs: clock.unsafeCurrentTimeMillis() })
      return ++count === expected
    }
    const reader = via === "frames"
      ? connection.frames.pipe(Stream.runForEach((item) => (take(item) ? Deferred.succeed(result.done, undefined) : Effect.void)))
      : connection.receive((item) => {
        if (take(item)) Deferred.unsafeDone(result.done, Exit.void)
      })
    yield* Effect.forkScoped(reader)
    return result
  })

/** Sends `plan[stream]` (frame sizes) on each stream concurrently, each stream in order. */
const sendAll = (connection: Streams.Connection, plan: ReadonlyMap<number, ReadonlyArray<number>>) =>
  Effect.forEach(
    Array.from(plan),
    ([stream, frameSizes]) =>
      Effect.forEach(frameSizes, (size, index) => connection.send(stream, makeFrame(stream, index, size)), { discard: true }),
    { concurrency: "unbounded", discard: true }
  )

const verify = (got: Received, plan: ReadonlyMap<number, ReadonlyArray<number>>): void => {
  for (const [stream, frameSizes] of plan) {
    const frames = got.byStream.get(stream) ?? []
    assert.strictEqual(frames.length, frameSizes.length, `stream ${stream}: frame count`)
    frameSizes.forEach((size, index) => {
      assert.isTrue(sameBytes(frames[index]!, makeFrame(stream, index, size)), `stream ${stream}: frame ${index}`)
    })
  }
}

const countFrames = (plan: ReadonlyMap<number, ReadonlyArray<number>>): number =>
  Array.from(plan.values()).reduce((total, list) => total + list.length, 0)

const totalBytes = (plan: ReadonlyMap<number, ReadonlyArray<number>>): number =>
  Array.from(plan.values()).flat().reduce((total, size) => total + size, 0)

/** Runs `program` in virtual time with limits and congestion control; fails the test on failure. */
const simulate = async <A>(
  program: Effect.Effect<A, unknown, Scope.Scope | Limits.Limits | CongestionControl.CongestionControl>,
  options: {
    readonly seed: number
    readonly limits?: Partial<Limits.Values>
    readonly congestion?: Layer.Layer<CongestionControl.CongestionControl>
  }
): Promise<A> => {
  const layers = Layer.merge(Limits.layer(options.limits ?? {}), options.congestion ?? CongestionControl.layerNewReno())
  const exit = await Simulation.run(Effect.scoped(program).pipe(Effect.provide(layers)), { seed: options.seed })
  if (Exit.isFailure(exit)) throw new Error(`simulation failed (seed ${options.seed}): ${String(exit.cause)}`)
  return exit.value
}

// ---------------------------------------------------------------------------------------------------
// Units: ranges and the packet format

describe("RangeSet", () => {
  it("merges adjacent and overlapping ranges and splits on removal", () => {
    const set = new RangeSet()
    set.add(10, 20)
    set.add(30, 40)
    set.add(20, 30)
    assert.deepStrictEqual([set.size, set.start(0), set.end(0)], [1, 10, 40])
    set.remove(15, 25)
    assert.deepStrictEqual([set.size, set.start(0), set.end(0), set.start(1), set.end(1)], [2, 10, 15, 25, 40])
    assert.isTrue(set.has(14))
    assert.isFalse(set.has(15))
    set.dropFirst()
    assert.deepStrictEqual([set.size, set.start(0)], [1, 25])
  })

  it("agrees with a plain set under random operations", () =>
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(200), fc.nat(20))), (operations) => {
        const set = new RangeSet()
        const model = new Set<number>()
        for (const [add, start, length] of operations) {
          if (add) set.add(start, start + length)
          else set.remove(start, start + length)
          for (let value = start; value < start + length; value++) add ? model.add(value) : model.delete(value)
        }
        for (let value = 0; value < 230; value++) if (set.has(value) !== model.has(value)) return false
        for (let index = 1; index < set.size; index++) if (set.start(index) <= set.end(index - 1)) return false
        return true
      })
    ))
})

describe("packet format", () => {
  it("round-trips ACK ranges, stream data and window updates", () => {
    const receivedNumbers = new RangeSet()
    for (const [start, end] of [[0, 5], [7, 8], [10, 20], [100, 101]] as const) receivedNumbers.add(start, end)
    const writer = new Packet.Writer(600, 2 ** 40 + 5)
    assert.isTrue(writer.ack(receivedNumbers, 12, 32))
    writer.maxData(2 ** 47)
    writer.maxStreamData(65535, 123456)
    const at = writer.streamHeader(7, 2 ** 33, 3)
    writer.buffer.set([1, 2, 3], at)
    const decoded = Packet.decode(writer.finish(true))
    assert(decoded?.kind === "data")
    assert.strictEqual(decoded.number, 2 ** 40 + 5)
    assert.deepStrictEqual(decoded.acks[0]!.ranges, [100, 100, 19, 10, 7, 7, 4, 0])
    assert.strictEqual(decoded.acks[0]!.delayMs, 12)
    assert.strictEqual(decoded.maxData, 2 ** 47)
    assert.deepStrictEqual(decoded.maxStreamData, [65535, 123456])
    assert.deepStrictEqual([decoded.streams[0]!.stream, decoded.streams[0]!.offset, [...decoded.streams[0]!.data]], [7, 2 ** 33, [1, 2, 3]])
    assert.isTrue(decoded.ackEliciting)
  })

  it("reports only the highest ranges that fit", () => {
    const numbers = new RangeSet()
    for (let n = 0; n < 100; n += 2) numbers.add(n, n + 1)
    const writer = new Packet.Writer(64, 0)
    assert.isTrue(writer.ack(numbers, 0, 32))
    const decoded = Packet.decode(writer.finish(false))
    assert(decoded?.kind === "data")
    assert.strictEqual(decoded.acks[0]!.largest, 98)
    assert.strictEqual(decoded.acks[0]!.ranges.length / 2, 6)
    assert.isFalse(decoded.ackEliciting)
  })

  it("never throws on random or mutated input", () =>
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1300 }), fc.nat(), fc.nat(255), (bytes, position, value) => {
        Packet.decode(bytes)
        const mutated = new Uint8Array(bytes.length + 8)
        mutated.set([Packet.PacketType.Data, 0, 0, 0, 0, 0, 1])
        mutated.set(bytes, 7)
        mutated[position % mutated.length] = value
        const decoded = Packet.decode(mutated)
        return decoded === undefined || decoded.kind === "cover" || decoded.streams.every((s) => s.data.length > 0)
      })
    ))

  it("rejects truncated frames and ACK ranges below zero", () => {
    const writer = new Packet.Writer(100, 1)
    writer.streamHeader(1, 0, 20)
    assert.isUndefined(Packet.decode(writer.finish(false).subarray(0, 30)))
    const bad = new Uint8Array([1, 0, 0, 0, 0, 0, 1, Packet.FrameType.Ack, 0, 0, 0, 0, 0, 3, 0, 0, 1, 0, 0, 0, 9])
    assert.isUndefined(Packet.decode(bad))
    assert.isUndefined(Packet.decode(new Uint8Array([9, 0, 0])))
    assert.strictEqual(Packet.decode(Packet.cover(100))?.kind, "cover")
  })
})

describe("Path", () => {
  it.effect("fromSession carries the session's frames and peer", () =>
    Effect.gen(function*() {
      const sent: Array<Uint8Array> = []
      const session: Session = {
        peer: idB,
        remote: "sim:b",
        initiator: true,
        frameBytesMax: 65536,
        mtuBytes: 1221,
        send: (frame) => Effect.sync(() => void sent.push(frame)),
        frames: Stream.make(new Uint8Array([1])),
        receive: receiveFrom(Stream.make(new Uint8Array([1]))),
        closed: Effect.void,
        close: Effect.void
      }
      const path = Path.fromSession(session, 1221)
      yield* path.send(new Uint8Array([7]))
      const inbound: Array<Uint8Array> = []
      yield* path.receive((datagram) => inbound.push(datagram))
      assert.deepStrictEqual([path.peer, path.mtuBytes, sent.length, [...inbound].length], [idB, 1221, 1, 1])
      assert.throws(() => Path.fromSession(session, 70000))
    }))
})

// ---------------------------------------------------------------------------------------------------
// Connections in virtual time

describe("Streams", () => {
  it("delivers every byte exactly once and in order through 10% loss, 5% duplication and reordering", async () => {
    const planAB = new Map([0, 1, 2, 3].map((stream) => [stream, sizes(100 + stream, 100, 64 * 1024)] as const))
    const planBA = new Map([5, 9].map((stream) => [stream, sizes(200 + stream, 40, 16 * 1024)] as const))
    const result = await simulate(
      Effect.gen(function*() {
        const network = yield* TransportSim.makeNetwork({
          seed: 11,
          latency: { minMs: 5, maxMs: 15 },
          loss: 0.1,
          duplicate: 0.05,
          reorder: 0.05
        })
        const { atA, atB } = yield* pathPair(network)
        const a = yield* Streams.make({ data: atA })
        const b = yield* Streams.make({ data: atB })
        // One side reads through the frames stream, the other through plain-code receive.
        const atBGot = yield* collect(b, countFrames(planAB), "receive")
        const atAGot = yield* collect(a, countFrames(planBA))
        yield* Effect.all([sendAll(a, planAB), sendAll(b, planBA)], { concurrency: "unbounded" })
        yield* Deferred.await(atBGot.done)
        yield* Deferred.await(atAGot.done)
        const elapsedMs = yield* Clock.currentTimeMillis
        yield* Effect.sleep("2 seconds") // the last ACKs land
        return { atBGot, atAGot, statsA: yield* a.stats, statsB: yield* b.stats, net: yield* network.stats, elapsedMs }
      }),
      { seed: 1 }
    )
    verify(result.atBGot, planAB)
    verify(result.atAGot, planBA)
    assert.isAbove(totalBytes(planAB), 2_500_000)
    // The medium really did lose and duplicate, and the connection repaired and discarded.
    assert.isAbove(result.net.cellsDroppedLoss, 100)
    assert.isAbove(result.net.cellsDuplicated, 50)
    assert.isAbove(result.statsA.packetsLost, 50)
    assert.isAbove(result.statsB.duplicatePackets + result.statsB.duplicateBytes, 0)
    assert.strictEqual(result.statsB.packetsMalformed + result.statsB.flowControlViolations + result.statsB.streamsBroken, 0)
    assert.strictEqual(result.statsA.sendBufferedBytes, 0)
    assert.strictEqual(result.statsA.packetsInFlight, 0)
    console.log(`10% loss: ${(totalBytes(planAB) / 1e6).toFixed(2)} MB A→B in ${(result.elapsedMs / 1000).toFixed(1)} simulated s`)
  })

  it("does not hold one stream's frames behind another stream's lost packet", async () => {
    const result = await simulate(
      Effect.gen(function*() {
        const network = yield* TransportSim.makeNetwork({ seed: 2, latency: { minMs: 10, maxMs: 10 } })
        const { atA, atB } = yield* pathPair(network)
        const log: Array<Departure> = []
        let dropped = 0
        // Every transmission of stream 1's first bytes is lost, the first four times.
        const lossy = tap(atA, log, (departure) => {
          const hit = streamsIn(departure).some((data) => data.stream === 1 && data.offset === 0)
          return hit && dropped++ < 4
        })
        const a = yield* Streams.make({ data: lossy })
        const b = yield* Streams.make({ data: atB })
        const got = yield* collect(b, 12)
        yield* a.send(1, makeFrame(1, 0, 500))
        yield* Effect.sleep("2 millis")
        yield* a.send(1, makeFrame(1, 1, 500))
        yield* Effect.forEach([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], (index) =>
          Effect.zipRight(Effect.sleep("1 millis"), a.send(2, makeFrame(2, index, 500))), { discard: true })
        yield* Deferred.await(got.done)
        return { got, dropped, stats: yield* a.stats }
      }),
      { seed: 2 }
    )
    const order = result.got.order
    const firstOfStream1 = order.findIndex((entry) => entry.stream === 1)
    // All ten frames of stream 2 arrived while stream 1 still waited for its lost bytes…
    assert.strictEqual(firstOfStream1, 10)
    assert.isTrue(order.slice(0, 10).every((entry) => entry.stream === 2))
    // …and stream 1 got both its frames afterwards, in order (frame 1 arrived early but was held).
    verify(result.got, new Map([[1, [500, 500]], [2, Array(10).fill(500)]]))
    assert.isAtLeast(result.dropped, 4)
    assert.isAbove(result.got.order[10]!.atMs - result.got.order[9]!.atMs, 0)
  })

  it("sends control frames ahead of queued bulk data", async () => {
    const result = await simulate(
      Effect.gen(function*() {
        const network = yield* TransportSim.makeNetwork({ seed: 3, latency: { minMs: 10, maxMs: 10 } })
        const { atA, atB } = yield* pathPair(network)
        const log: Array<Departure> = []
        const a = yield* Streams.make({ data: tap(atA, log) })
        const b = yield* Streams.make({ data: atB })
        const bulk = new Map([1, 2, 3, 4, 5, 6, 7, 8].map((stream) => [stream, [32 * 1024, 32 * 1024]] as const))
        const got = yield* collect(b, 16 + 2)
        yield* sendAll(a, bulk)
        yield* Effect.sleep("5 millis") // the first window left; the rest is queued behind it
        const controlAtMs = yield* Clock.currentTimeMillis
        yield* a.send(20, makeFrame(20, 0, 100), { priority: "control" })
        yield* a.send(21, makeFrame(21, 0, 100))
        yield* Deferred.await(got.done)
        return { got, log, controlAtMs }
      }),
      { seed: 3 }
    )
    const after = result.log.filter((departure) => departure.atMs >= result.controlAtMs && streamsIn(departure).length > 0)
    // The very next data packet carries the control frame, first.
    assert.strictEqual(streamsIn(after[0]!)[0]!.stream, 20)
    // It is delivered before any of the bulk frames queued before it.
    assert.strictEqual(result.got.order[0]!.stream, 20)
    const queuedBefore = result.log.filter((departure) => departure.atMs < result.controlAtMs).length
    assert.isAbove(queuedBefore, 0)
  })

  it("backpressures a sender whose reader is slow, within every buffer bound", async () => {
    const limits = {
      streamReceiveWindowBytes: 96 * 1024,
      connectionReceiveWindowBytes: 192 * 1024,
      streamSendBufferBytes: 96 * 1024,
      connectionSendBufferBytes: 160 * 1024
    }
    const plan = new Map([1, 2].map((stream) => [stream, Array(64).fill(16 * 1024) as Array<number>] as const))
    const result = await simulate(
      Effect.gen(function*() {
        const network = yield* TransportSim.makeNetwork({ seed: 4, latency: { minMs: 5, maxMs: 5 }, loss: 0.01 })
        const { atA, atB } = yield* pathPair(network)
        const a = yield* Streams.make({ data: atA })
        const b = yield* Streams.make({ data: atB })
        const accepted = yield* Ref.make(0)
        const writer = yield* Effect.forkScoped(Effect.forEach(
          Array.from(plan),
          ([stream, frameSizes]) =>
            Effect.forEach(frameSizes, (size, index) =>
              Effect.zipRight(a.send(stream, makeFrame(stream, index, size)), Ref.update(accepted, (n) => n + 1)), { discard: true }),
          { concurrency: "unbounded", discard: true }
        ))
        const peaks = { send: 0, receive: 0 }
        const sample = Effect.gen(function*() {
          peaks.send = Math.max(peaks.send, (yield* a.stats).sendBufferedBytes)
          peaks.receive = Math.max(peaks.receive, (yield* b.stats).receiveBufferedBytes)
        })
        const sampler = yield* Effect.forkScoped(Effect.forever(Effect.zipRight(sample, Effect.sleep("10 millis"))))
        yield* Effect.sleep("3 seconds") // nobody reads at B
        const acceptedWhileStalled = yield* Ref.get(accepted)
        const stalledB = yield* b.stats
        const got = yield* collect(b, countFrames(plan)) // the reader starts
        yield* Deferred.await(got.done)
        yield* Fiber.join(writer)
        yield* Fiber.interrupt(sampler)
        return { acceptedWhileStalled, stalledB, peaks, got }
      }),
      { seed: 4, limits }
    )
    // The writer was suspended: far fewer frames accepted than it wanted to send.
    assert.isBelow(result.acceptedWhileStalled, countFrames(plan) / 2)
    assert.isAbove(result.acceptedWhileStalled, 0)
    // The receiver filled its window and no further: the sender respected it.
    assert.isAtMost(result.stalledB.receiveBufferedBytes, limits.connectionReceiveWindowBytes)
    assert.isAbove(result.stalledB.receiveBufferedBytes, limits.streamReceiveWindowBytes)
    assert.strictEqual(result.stalledB.flowControlViolations, 0)
    assert.isAtMost(result.peaks.send, limits.connectionSendBufferBytes)
    assert.isAtMost(result.peaks.receive, limits.connectionReceiveWindowBytes)
    verify(result.got, plan)
  })

  it("backs off its retransmission timeout through an outage and recovers after it", async () => {
    const result = await simulate(
      Effect.gen(function*() {
        const network = yield* TransportSim.makeNetwork({ seed: 5, latency: { minMs: 10, maxMs: 10 } })
        const { atA, atB } = yield* pathPair(network)
        const log: Array<Departure> = []
        const a = yield* Streams.make({ data: tap(atA, log) })
        const b = yield* Streams.make({ data: atB })
        const plan = new Map([[1, Array(40).fill(4000) as Array<number>]])
        const got = yield* collect(b, 40)
        const first = new Map([[1, Array(20).fill(4000) as Array<number>]])
        yield* sendAll(a, first)
        yield* Effect.sleep("1 second")
        const rtoBefore = (yield* a.stats).retransmitTimeoutMs
        yield* network.partition([["sim:a"], ["sim:b"]])
        const outageAtMs = yield* Clock.currentTimeMillis
        yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => 20 + i), (index) =>
          a.send(1, makeFrame(1, index, 4000)), { discard: true })
        yield* Effect.sleep("60 seconds")
        const during = yield* a.stats
        yield* network.heal
        const healAtMs = yield* Clock.currentTimeMillis
        yield* Deferred.await(got.done)
        const recoveredAtMs = yield* Clock.currentTimeMillis
        yield* Effect.sleep("2 seconds")
        return { got, plan, log, rtoBefore, during, after: yield* a.stats, outageAtMs, healAtMs, recoveredAtMs }
      }),
      { seed: 5, limits: { retransmitTimeoutMax: Duration.seconds(8) } }
    )
    verify(result.got, result.plan)
    // Transmission bursts during the outage: each gap twice the one before, until the 8 s ceiling.
    const bursts: Array<number> = []
    for (const departure of result.log) {
      if (departure.atMs < result.outageAtMs + 1 || departure.atMs >= result.healAtMs) continue
      if (streamsIn(departure).length === 0) continue
      if (bursts.length === 0 || departure.atMs - bursts[bursts.length - 1]! > 50) bursts.push(departure.atMs)
    }
    const gaps = bursts.slice(1).map((at, i) => at - bursts[i]!)
    assert.isAtLeast(gaps.length, 6)
    for (let i = 1; i < gaps.length; i++) {
      const expected = Math.min(8000, gaps[i - 1]! * 2)
      assert.approximately(gaps[i]!, expected, 2, `gap ${i}: ${gaps.join(", ")}`)
    }
    assert.strictEqual(gaps[gaps.length - 1], 8000)
    assert.isAtLeast(result.during.retransmitTimeouts, 8)
    assert.strictEqual(result.during.retransmitTimeoutMs, 8000)
    // Recovery within one ceiling after the heal, and the timeout back to its measured value.
    assert.isAtMost(result.recoveredAtMs - result.healAtMs, 8000 + 1000)
    assert.isBelow(result.after.retransmitTimeoutMs, 1000)
    assert.isAtMost(result.rtoBefore, 1000)
  })

  it("acknowledges over a return path different from the data path", async () => {
    const planAB = new Map([[1, sizes(7, 60, 20 * 1024)]])
    const planBA = new Map([[2, sizes(8, 30, 8 * 1024)]])
    const result = await simulate(
      Effect.gen(function*() {
        const network = yield* TransportSim.makeNetwork({ seed: 6, latency: { minMs: 5, maxMs: 30 }, loss: 0.05, reorder: 0.05 })
        // Four one-way links: A→B data, B→A its acks, B→A data, A→B its acks.
        const dataAB = yield* oneWay(network, "data-ab", idB)
        const acksBA = yield* oneWay(network, "acks-ba", idA)
        const dataBA = yield* oneWay(network, "data-ba", idA)
        const acksAB = yield* oneWay(network, "acks-ab", idB)
        const logs = { dataAB: [] as Array<Departure>, acksBA: [] as Array<Departure>, dataBA: [] as Array<Departure>, acksAB: [] as Array<Departure> }
        const a = yield* Streams.make({
          data: tap(dataAB.tx, logs.dataAB),
          acks: tap(acksAB.tx, logs.acksAB),
          inbound: [acksBA.rx, dataBA.rx]
        })
        const b = yield* Streams.make({
          data: tap(dataBA.tx, logs.dataBA),
          acks: tap(acksBA.tx, logs.acksBA),
          inbound: [dataAB.rx, acksAB.rx]
        })
        const atB = yield* collect(b, countFrames(planAB))
        const atA = yield* collect(a, countFrames(planBA))
        yield* Effect.all([sendAll(a, planAB), sendAll(b, planBA)], { concurrency: "unbounded" })
        yield* Deferred.await(atB.done)
        yield* Deferred.await(atA.done)
        return { atA, atB, logs }
      }),
      { seed: 6 }
    )
    verify(result.atB, planAB)
    verify(result.atA, planBA)
    const isData = (d: Departure) => d.packet?.kind === "data" && d.packet.streams.length > 0 && d.packet.acks.length === 0
    const isControl = (d: Departure) => d.packet?.kind === "data" && d.packet.streams.length === 0
    assert.isTrue(result.logs.dataAB.every(isData) && result.logs.dataBA.every(isData))
    assert.isTrue(result.logs.acksBA.every(isControl) && result.logs.acksAB.every(isControl))
    const acks = (log: Array<Departure>) => log.filter((d) => d.packet?.kind === "data" && d.packet.acks.length > 0).length
    assert.isAbove(acks(result.logs.acksBA), 10)
    assert.isAbove(acks(result.logs.acksAB), 10)
  })

  it("in fixed-rate mode sends full-size packets at a constant pace, cover when idle", async () => {
    const intervalMs = 10
    const bytesPerSecond = (mtuBytes * 1000) / intervalMs
    const plan = new Map([[1, Array(40).fill(2000) as Array<number>]])
    const result = await simulate(
      Effect.gen(function*() {
        const network = yield* TransportSim.makeNetwork({ seed: 7, latency: { minMs: 20, maxMs: 20 } })
        const { atA, atB } = yield* pathPair(network)
        const log: Array<Departure> = []
        const a = yield* Streams.make({ data: tap(atA, log) })
        const b = yield* Streams.make({ data: atB })
        const got = yield* collect(b, 40)
        yield* Effect.sleep("2 seconds")
        yield* Effect.forEach(plan.get(1)!.slice(0, 20), (size, index) => a.send(1, makeFrame(1, index, size)), { discard: true })
        yield* Effect.sleep("4 seconds")
        yield* Effect.forEach(plan.get(1)!.slice(20), (size, index) => a.send(1, makeFrame(1, 20 + index, size)), { discard: true })
        yield* Effect.sleep("4 seconds")
        yield* Deferred.await(got.done)
        return { got, log, statsA: yield* a.stats, statsB: yield* b.stats }
      }),
      { seed: 7, congestion: CongestionControl.layerFixedRate({ bytesPerSecond }) }
    )
    verify(result.got, plan)
    const log = result.log
    assert.isAtLeast(log.length, 999)
    const gaps = new Set(log.slice(1).map((d, i) => d.atMs - log[i]!.atMs))
    assert.deepStrictEqual([...gaps], [intervalMs])
    assert.isTrue(log.every((d) => d.bytes === mtuBytes))
    const cover = log.filter((d) => d.packet?.kind === "cover").length
    const data = log.filter((d) => streamsIn(d).length > 0).length
    assert.isAbove(cover, 800) // idle most of the 10 s
    assert.isAtLeast(data, Math.ceil((40 * 2004) / mtuBytes))
    // The receiver discarded every cover packet that had arrived (20 ms latency: two still in flight).
    assert.isAtLeast(result.statsB.coverReceived, result.statsA.coverSent - 3)
    assert.strictEqual(result.statsB.framesReceived, 40)
  })

  it("counts and drops hostile datagrams without acknowledging them", async () => {
    const result = await simulate(
      Effect.gen(function*() {
        const network = yield* TransportSim.makeNetwork({ seed: 8, latency: { minMs: 1, maxMs: 1 } })
        const { atA, atB } = yield* pathPair(network)
        const b = yield* Streams.make({ data: atB })
        const got = yield* collect(b, 1)
        const inject = (build: (writer: Packet.Writer) => void, number: number) => {
          const writer = new Packet.Writer(mtuBytes, number)
          build(writer)
          return atA.send(writer.finish(false))
        }
        yield* atA.send(new Uint8Array([1, 2, 3]))
        yield* atA.send(new Uint8Array(0))
        // ACK of a packet B never sent.
        yield* inject((w) => {
          const numbers = new RangeSet()
          numbers.add(0, 1000)
          w.ack(numbers, 0, 4)
        }, 0)
        // Stream id out of range, and data beyond the advertised window.
        yield* inject((w) => w.buffer.set([9, 9], w.streamHeader(4000, 0, 2)), 1)
        yield* inject((w) => w.buffer.set([9, 9], w.streamHeader(3, 10_000_000, 2)), 2)
        // A frame length above the limit breaks stream 4.
        yield* inject((w) => w.buffer.set([0xff, 0xff, 0xff, 0xff, 1], w.streamHeader(4, 0, 5)), 3)
        // A well-formed frame on stream 5 still arrives.
        yield* inject((w) => w.buffer.set([0, 0, 0, 2, 42, 43], w.streamHeader(5, 0, 6)), 4)
        yield* Deferred.await(got.done)
        yield* Effect.sleep("100 millis")
        return { got, stats: yield* b.stats }
      }),
      { seed: 8 }
    )
    assert.strictEqual(result.stats.packetsMalformed, 3)
    assert.strictEqual(result.stats.packetsRejected, 1)
    assert.strictEqual(result.stats.flowControlViolations, 1)
    assert.strictEqual(result.stats.streamsBroken, 1)
    assert.deepStrictEqual([...result.got.byStream.get(5)![0]!], [42, 43])
    assert.isFalse(result.got.byStream.has(4))
  })

  it("fails sends after close and rejects oversized frames", async () => {
    const result = await simulate(
      Effect.gen(function*() {
        const network = yield* TransportSim.makeNetwork({ seed: 9 })
        const { atA } = yield* pathPair(network)
        const a = yield* Streams.make({ data: atA })
        const tooLarge = yield* Effect.flip(a.send(0, new Uint8Array(64 * 1024 + 1)))
        const badStream = yield* Effect.exit(a.send(256, new Uint8Array(1)))
        yield* a.close
        const closed = yield* Effect.flip(a.send(0, new Uint8Array(1)))
        const frames = yield* Stream.runCollect(a.frames)
        return { tooLarge, badStream, closed, frames: [...frames].length }
      }),
      { seed: 9 }
    )
    assert.strictEqual(result.tooLarge.reason, "FrameTooLarge")
    assert.isTrue(Exit.isFailure(result.badStream))
    assert.strictEqual(result.closed.reason, "Closed")
    assert.strictEqual(result.frames, 0)
  })

  it("replays exactly from its seed", async () => {
    const plan = new Map([[1, sizes(3, 30, 20 * 1024)], [2, sizes(4, 30, 4 * 1024)]])
    const run = () =>
      simulate(
        Effect.gen(function*() {
          const network = yield* TransportSim.makeNetwork({ seed: 12, latency: { minMs: 2, maxMs: 20 }, loss: 0.05, duplicate: 0.05, reorder: 0.1 })
          const { atA, atB } = yield* pathPair(network)
          const a = yield* Streams.make({ data: atA })
          const b = yield* Streams.make({ data: atB })
          const got = yield* collect(b, countFrames(plan))
          yield* sendAll(a, plan)
          yield* Deferred.await(got.done)
          return { trace: yield* network.traceHash, stats: yield* a.stats, atMs: yield* Clock.currentTimeMillis }
        }),
        { seed: 12 }
      )
    const first = await run()
    const second = await run()
    assert.deepStrictEqual(second, first)
    assert.isAbove(first.stats.packetsLost, 0)
  })

  it("measures goodput with 1% loss and a 20 ms RTT (virtual time)", async () => {
    const plan = new Map([[1, Array(256).fill(32 * 1024) as Array<number>]])
    const wallStart = performance.now()
    const result = await simulate(
      Effect.gen(function*() {
        const network = yield* TransportSim.makeNetwork({ seed: 10, latency: { minMs: 10, maxMs: 10 }, loss: 0.01 })
        const { atA, atB } = yield* pathPair(network)
        const a = yield* Streams.make({ data: atA })
        const b = yield* Streams.make({ data: atB })
        const got = yield* collect(b, 256)
        const startMs = yield* Clock.currentTimeMillis
        yield* sendAll(a, plan)
        yield* Deferred.await(got.done)
        return { got, elapsedMs: (yield* Clock.currentTimeMillis) - startMs, stats: yield* a.stats }
      }),
      { seed: 10 }
    )
    const wallMs = performance.now() - wallStart
    verify(result.got, plan)
    const megabytes = totalBytes(plan) / 1e6
    const goodput = megabytes / (result.elapsedMs / 1000)
    console.log(
      `goodput: ${megabytes.toFixed(1)} MB in ${(result.elapsedMs / 1000).toFixed(2)} simulated s = ${goodput.toFixed(2)} MB/s` +
        ` (1% loss, 20 ms RTT, NewReno; ${result.stats.packetsLost} packets lost, ${result.stats.retransmitTimeouts} timeouts;` +
        ` ${(wallMs / 1000).toFixed(1)} s wall)`
    )
    assert.isAbove(goodput, 0.3)
  })
})

// ---------------------------------------------------------------------------------------------------
// Paths that send as plain code (a raw link session's `unsafeSend`): the per-turn fast path

/** A path whose sends are recorded as plain code and whose datagrams the test hands in, a turn at a time. */
const plainPath = (peer: NodeId.NodeId) => {
  const sent: Array<Uint8Array> = []
  let deliver: ((datagram: Uint8Array) => void) | undefined
  const path: Path.Path = {
    peer,
    mtuBytes,
    send: (datagram) => Effect.sync(() => void sent.push(datagram.slice())),
    unsafeSend: (datagram) => void sent.push(datagram.slice()),
    receive: (onDatagram) => {
      deliver = onDatagram
      return Effect.never
    }
  }
  /** Hands `datagrams` to the connection in one synchronous loop, as a link does with a chunk of cells. */
  const turn = (datagrams: ReadonlyArray<Uint8Array>) => datagrams.forEach((datagram) => deliver!(datagram))
  return { path, sent, turn }
}

/** Connections A and B over two plain-code paths (each side's sends recorded, its datagrams handed in by the test). */
const plainPair = Effect.gen(function*() {
  const atA = plainPath(idB)
  const atB = plainPath(idA)
  const layers = Layer.merge(Limits.layer(), CongestionControl.layerNewReno())
  const a = yield* Streams.make({ data: atA.path }).pipe(Effect.provide(layers))
  const b = yield* Streams.make({ data: atB.path }).pipe(Effect.provide(layers))
  return { a, atA, atB, b }
})

describe("Streams over plain-code paths", () => {
  it.scoped("a send leaves on the caller's turn, frames reach `receive` on the datagram's, and a turn's datagrams get one ACK", () =>
    Effect.gen(function*() {
      const { a, atA, atB, b } = yield* plainPair
      const frames: Array<Streams.Frame> = []
      yield* Effect.forkScoped(b.receive((frame) => frames.push(frame)))
      yield* Effect.yieldNow()
      const count = 8
      for (let index = 0; index < count; index++) {
        yield* a.send(1, makeFrame(1, index, 1000))
        // No yield since the send: only the caller's own fiber can have sent the packet.
        assert.strictEqual(atA.sent.length, index + 1)
      }
      atB.turn(atA.sent)
      // Delivered within the turn, before any other fiber or microtask ran.
      assert.deepStrictEqual(frames.map((frame) => frame.frame), Array.from({ length: count }, (_, index) => makeFrame(1, index, 1000)))
      assert.strictEqual(atB.sent.length, 0)
      yield* Effect.yieldNow()
      // Eight ack-eliciting packets would ask for four ACKs one at a time; the turn gets one, covering all.
      assert.strictEqual(atB.sent.length, 1)
      const ack = Packet.decode(atB.sent[0]!)
      assert.isTrue(ack?.kind === "data" && ack.acks.length > 0 && ack.streams.length === 0)
    }))

  it.scoped("a frame callback that throws closes the connection instead of escaping into the link", () =>
    Effect.gen(function*() {
      const { a, atA, atB, b } = yield* plainPair
      yield* Effect.forkScoped(b.receive(() => {
        throw new Error("handler bug")
      }))
      yield* Effect.yieldNow()
      yield* a.send(1, makeFrame(1, 0, 100))
      assert.doesNotThrow(() => atB.turn(atA.sent))
      const exit = yield* Effect.exit(b.send(1, makeFrame(1, 1, 100)))
      assert.isTrue(Exit.isFailure(exit))
    }))
})
