import { assert, describe, it } from "@effect/vitest"
import { Limits, Transport, WeftError } from "@weft/core"
import { TransportCompliance } from "@weft/core/testing"
import { Chunk, Deferred, Effect, Either, Exit, Fiber, Layer, Scope, Stream } from "effect"
import * as Dgram from "node:dgram"
import { TransportUdp } from "../src/index.js"

const { cellOf, decodeCell } = TransportCompliance
const cellBytes = Limits.defaults.cellBytes

/** A port that was free a moment ago: bound by a raw socket, then closed. */
const freePort = Effect.async<number>((resume) => {
  const socket = Dgram.createSocket("udp4")
  socket.bind(0, "127.0.0.1", () => {
    const port = socket.address().port
    socket.close(() => resume(Effect.succeed(port)))
  })
})

/**
 * The suite's sender and receiver share one event loop, and a send completes on `nextTick`, so a
 * 1,000-cell burst reaches the kernel before the receiver reads any of it: the receive buffer must
 * hold the burst (the kernel's default holds about 90 cells), as it would be tuned for a busy node.
 */
const recvBufferBytes = 4 * 1024 * 1024

TransportCompliance.suite("TransportUdp", {
  live: true,
  // the kernel frees a UDP port on close, so a closed endpoint's exact address can be bound again
  addressReusable: true,
  medium: Effect.map(freePort, (port) => ({
    endpoint: (options) => {
      if (options?.address === undefined) return TransportUdp.make({ recvBufferBytes })
      const peer = TransportUdp.parse(options.address)
      return peer === undefined
        ? Effect.fail(new WeftError.TransportError({ reason: "BadAddress", detail: options.address }))
        : TransportUdp.make({ host: peer.host, port: peer.port, recvBufferBytes })
    },
    unreachable: `udp:127.0.0.1:${port}`,
    settle: Effect.sleep("1 millis")
  }))
})

// ---------------------------------------------------------------------------------------------------
// Helpers

const withLimits = (overrides: Partial<Limits.Values> = {}) => Effect.provide(Limits.layer(overrides))

const open = (options: TransportUdp.Options = {}, limits: Partial<Limits.Values> = {}) =>
  withLimits(limits)(TransportUdp.make(options))

const portOf = (address: string): number => {
  const peer = TransportUdp.parse(address)
  assert.isDefined(peer, `${address} parses`)
  return peer!.port
}

/** A raw `node:dgram` socket on 127.0.0.1, closed with the scope. */
const rawSocket = Effect.acquireRelease(
  Effect.async<Dgram.Socket>((resume) => {
    const socket = Dgram.createSocket("udp4")
    socket.bind(0, "127.0.0.1", () => resume(Effect.succeed(socket)))
  }),
  (socket) =>
    Effect.async<void>((resume) => {
      socket.close(() => resume(Effect.void))
    })
)

const rawAddress = (socket: Dgram.Socket) => {
  const local = socket.address()
  return TransportUdp.format({ host: local.address, port: local.port })
}

/** Sends each payload in order from the raw socket; completes when the kernel took them all. */
const rawSend = (socket: Dgram.Socket, to: string, payloads: ReadonlyArray<Uint8Array>) =>
  Effect.async<void>((resume) => {
    let pending = payloads.length
    if (pending === 0) return resume(Effect.void)
    for (const payload of payloads) {
      socket.send(payload, portOf(to), "127.0.0.1", () => {
        if (--pending === 0) resume(Effect.void)
      })
    }
  })

/** Yields to the event loop (the check phase), so the poll phase reads the sockets in between. */
const nextTurn = Effect.async<void>((resume) => {
  setImmediate(() => resume(Effect.void))
})

/** Counts `close` calls on every dgram socket while the scope is open. */
const countCloses = Effect.acquireRelease(
  Effect.sync(() => {
    const original = Dgram.Socket.prototype.close
    const counter = { count: 0, original }
    Dgram.Socket.prototype.close = function(this: Dgram.Socket, ...args: Parameters<typeof original>) {
      counter.count++
      return original.apply(this, args)
    }
    return counter
  }),
  (counter) => Effect.sync(() => void (Dgram.Socket.prototype.close = counter.original))
)

/** Delays every dgram bind by one event-loop turn while the scope is open; completes when one starts. */
const deferBinds = Effect.gen(function*() {
  const started = yield* Deferred.make<void>()
  const original = Dgram.Socket.prototype.bind
  yield* Effect.acquireRelease(
    Effect.sync(() => {
      Dgram.Socket.prototype.bind = function(this: Dgram.Socket, ...args: Array<unknown>) {
        Deferred.unsafeDone(started, Exit.void)
        setImmediate(() => {
          try {
            ;(original as (...args: Array<unknown>) => void).apply(this, args)
          } catch {
            // closed while waiting: binding a closed socket throws, which is the point
          }
        })
        return this
      } as typeof original
    }),
    () => Effect.sync(() => void (Dgram.Socket.prototype.bind = original))
  )
  return started
})

const drain = (endpoint: Transport.Endpoint) =>
  Effect.gen(function*() {
    const received: Array<Transport.Datagram> = []
    yield* endpoint.receive.pipe(
      Stream.runForEachChunk((chunk) => Effect.sync(() => received.push(...Chunk.toReadonlyArray(chunk)))),
      Effect.forkScoped
    )
    return received
  })

const waitUntil = (done: () => boolean, roundsMax = 500) =>
  Effect.gen(function*() {
    for (let round = 0; round < roundsMax && !done(); round++) yield* Effect.sleep("2 millis")
    return done()
  })

const failureOf = <A>(effect: Effect.Effect<A, WeftError.TransportError, Scope.Scope>) =>
  Effect.gen(function*() {
    const result = yield* Effect.either(effect)
    assert.isTrue(Either.isLeft(result), "refused")
    return Either.isLeft(result) ? result.left : undefined
  })

// ---------------------------------------------------------------------------------------------------
// Addresses

describe("TransportUdp addresses", () => {
  it("parse and format round-trip", () => {
    const cases: ReadonlyArray<[string, TransportUdp.Peer]> = [
      ["udp:127.0.0.1:7100", { host: "127.0.0.1", port: 7100, family: 4 }],
      ["udp:0.0.0.0:1", { host: "0.0.0.0", port: 1, family: 4 }],
      ["udp:255.255.255.255:65535", { host: "255.255.255.255", port: 65535, family: 4 }],
      ["udp:[::1]:7100", { host: "::1", port: 7100, family: 6 }],
      ["udp:[2001:db8::ff00:42:8329]:443", { host: "2001:db8::ff00:42:8329", port: 443, family: 6 }],
      ["udp:[::ffff:127.0.0.1]:9", { host: "::ffff:127.0.0.1", port: 9, family: 6 }],
      ["udp:[fe80::1%eth0]:9", { host: "fe80::1%eth0", port: 9, family: 6 }]
    ]
    for (const [address, peer] of cases) {
      assert.deepStrictEqual(TransportUdp.parse(address), peer, address)
      assert.strictEqual(TransportUdp.format(peer), address)
    }
  })

  it("hostile or foreign addresses do not parse", () => {
    const hostile = [
      "",
      "udp:",
      "udp::",
      "udp:127.0.0.1",
      "udp:127.0.0.1:",
      "udp:127.0.0.1:0",
      "udp:127.0.0.1:65536",
      "udp:127.0.0.1:99999",
      "udp:127.0.0.1:-1",
      "udp:127.0.0.1:+80",
      "udp:127.0.0.1:080",
      "udp:127.0.0.1:0x50",
      "udp:127.0.0.1:80 ",
      "udp: 127.0.0.1:80",
      "udp:127.0.0.1:80\u0000",
      "udp:127.0.0.1:8e1",
      "udp:256.0.0.1:80",
      "udp:01.2.3.4:80",
      "udp:1.2.3:80",
      "udp:localhost:80",
      "udp:example.com:80",
      "udp:::1:80",
      "udp:[::1:80",
      "udp:::1]:80",
      "udp:[::1]80",
      "udp:[]:80",
      "udp:[127.0.0.1]:80",
      "udp:[::1]]:80",
      "udp:[fe80::1%a]b]:80",
      "UDP:127.0.0.1:80",
      "mem:3",
      "sim:12",
      "no-kind-here",
      `udp:${"1".repeat(1_000_000)}:80`,
      `udp:[${"0:".repeat(40)}1]:80`
    ]
    for (const address of hostile) assert.isUndefined(TransportUdp.parse(address), JSON.stringify(address.slice(0, 40)))
  })

  it.scopedLive("a send to a hostile address is a typed BadAddress, and the endpoint keeps working", () =>
    Effect.gen(function*() {
      const a = yield* open()
      const b = yield* open()
      const received = yield* drain(b)
      const cell = cellOf(cellBytes, 1, 0)
      for (const to of ["udp:localhost:80", "udp:127.0.0.1:0", "udp:[::1]:7100", "mem:1", `udp:${"9".repeat(100_000)}`]) {
        const error = yield* failureOf(a.send(to, cell))
        assert.strictEqual(error?.reason, "BadAddress", to.slice(0, 40))
        assert.isBelow(error?.detail?.length ?? 0, 200, "the detail quotes a bounded part of the address")
      }
      yield* a.send(b.address, cell)
      assert.isTrue(yield* waitUntil(() => received.length === 1))
      assert.strictEqual(received[0]?.from, a.address)
    }))
})

// ---------------------------------------------------------------------------------------------------
// Endpoints

describe("TransportUdp", () => {
  it.scopedLive("capabilities, kind and address form", () =>
    Effect.gen(function*() {
      const a = yield* open()
      assert.deepStrictEqual(a.capabilities, { reliable: false, ordered: false, cellBytes })
      assert.strictEqual(a.kind, "udp")
      assert.match(a.address, /^udp:127\.0\.0\.1:[1-9]\d*$/)
      const small = yield* open({}, { cellBytes: 100 })
      assert.strictEqual(small.capabilities.cellBytes, 100)
    }))

  it.scopedLive("inbound datagrams of the wrong size are counted and never delivered", () =>
    Effect.gen(function*() {
      const endpoint = yield* open()
      const received = yield* drain(endpoint)
      const raw = yield* rawSocket
      const wrongSizes = [0, 1, cellBytes - 1, cellBytes + 1, 65_507]
      yield* rawSend(raw, endpoint.address, wrongSizes.map((size) => new Uint8Array(size).fill(0xee)))
      yield* rawSend(raw, endpoint.address, [cellOf(cellBytes, 2, 0)])
      // loopback keeps one sender's order, so once the good cell is in, the bad ones were seen
      assert.isTrue(yield* waitUntil(() => received.length >= 1))
      yield* rawSend(raw, endpoint.address, [new Uint8Array(7), cellOf(cellBytes, 2, 1)])
      assert.isTrue(yield* waitUntil(() => received.length >= 2))
      assert.deepStrictEqual(received.map((d) => decodeCell(d.cell, cellBytes)?.index), [0, 1])
      assert.isTrue(received.every((d) => d.from === rawAddress(raw)))
      const stats = yield* endpoint.stats
      assert.strictEqual(stats.cellsDroppedWrongSize, wrongSizes.length + 1)
      assert.strictEqual(stats.cellsReceived, 2)
    }))

  it.scopedLive("a flood of 20,000 datagrams into a paused reader keeps the inbox at its bound", () =>
    Effect.gen(function*() {
      const inboxCells = 64
      const endpoint = yield* open({ recvBufferBytes: 1 << 20 }, { endpointInboxCells: inboxCells })
      const raw = yield* rawSocket
      const cell = cellOf(cellBytes, 3, 0)
      const total = 20_000
      const batch = 32 // libuv reads at most 32 datagrams per socket per loop turn
      for (let sent = 0; sent < total; sent += batch) {
        yield* rawSend(raw, endpoint.address, Array.from({ length: batch }, () => cell))
        yield* nextTurn
      }
      let seen = -1
      yield* Effect.gen(function*() {
        for (let round = 0; round < 200; round++) {
          const stats = yield* endpoint.stats
          const now = stats.cellsReceived + stats.cellsDroppedInboxFull
          if (now === seen) return
          seen = now
          yield* Effect.sleep("5 millis")
        }
      })
      const stats = yield* endpoint.stats
      assert.strictEqual(stats.cellsReceived, inboxCells, "the inbox took exactly its bound")
      assert.isAtLeast(stats.cellsDroppedInboxFull, 1000, "the rest were dropped and counted")
      assert.isAtMost(stats.cellsReceived + stats.cellsDroppedInboxFull, total)
      const received = yield* drain(endpoint)
      assert.isTrue(yield* waitUntil(() => received.length >= inboxCells))
      yield* Effect.sleep("20 millis")
      assert.strictEqual(received.length, inboxCells, "the reader gets what the inbox held, no more")
      assert.isTrue(received.every((d) => decodeCell(d.cell, cellBytes)?.tag === 3))
    }))

  it.scopedLive("cells read in one event-loop turn reach the reader as one batch", () =>
    Effect.gen(function*() {
      const endpoint = yield* open({ recvBufferBytes })
      const chunks: Array<number> = []
      yield* endpoint.receive.pipe(
        Stream.runForEachChunk((chunk) => Effect.sync(() => void chunks.push(chunk.length))),
        Effect.forkScoped
      )
      const raw = yield* rawSocket
      yield* rawSend(raw, endpoint.address, Array.from({ length: 32 }, (_, index) => cellOf(cellBytes, 4, index)))
      assert.isTrue(yield* waitUntil(() => chunks.reduce((sum, n) => sum + n, 0) >= 32))
      assert.isBelow(chunks.length, 32, `32 cells came in ${chunks.length} chunks, not one wake-up per cell`)
    }))

  it.scopedLive("unsafeSend past a full socket send queue drops the cell and counts it", () =>
    Effect.gen(function*() {
      // a bound of 0 queued cells: every send finds the queue "full", which a busy kernel buffer would cause
      const a = yield* open({}, { endpointSendQueueCells: 0 })
      const b = yield* open()
      assert.isUndefined(a.unsafeSend(b.address, cellOf(cellBytes, 5, 0)), "a dropped datagram is no error: UDP loses")
      const stats = yield* a.stats
      assert.deepStrictEqual([stats.cellsDroppedSendQueueFull, stats.cellsSent], [1, 0])
    }))

  it.scopedLive("a port in use is a typed Bind error", () =>
    Effect.gen(function*() {
      const a = yield* open()
      const error = yield* failureOf(open({ port: portOf(a.address) }))
      assert.strictEqual(error?.reason, "Bind")
      assert.match(error?.detail ?? "", /EADDRINUSE/)
    }))

  it.scopedLive("bad options are typed Bind errors, never throws", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<[TransportUdp.Options, Partial<Limits.Values>, RegExp]> = [
        [{ host: "localhost" }, {}, /IP literal/],
        [{ host: "not a host" }, {}, /IP literal/],
        [{ host: "192.0.2.1" }, {}, /EADDRNOTAVAIL/], // TEST-NET-1: not a local address
        [{ port: -1 }, {}, /0\.\.65535/],
        [{ port: 65_536 }, {}, /0\.\.65535/],
        [{ port: 1.5 }, {}, /0\.\.65535/],
        [{ port: Number.NaN }, {}, /0\.\.65535/],
        [{ recvBufferBytes: -5 }, {}, /positive integers/],
        [{ sendBufferBytes: 0 }, {}, /positive integers/],
        [{}, { cellBytes: 65_508 }, /largest IPv4 UDP payload/]
      ]
      for (const [options, limits, detail] of cases) {
        const error = yield* failureOf(open(options, limits))
        assert.strictEqual(error?.reason, "Bind", JSON.stringify(options))
        assert.match(error?.detail ?? "", detail)
      }
    }))

  it.scopedLive("the port is reusable right after the scope closes; receive ends; sends fail Closed", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const first = yield* Scope.extend(open(), scope)
      const reader = yield* Effect.fork(Stream.runDrain(first.receive))
      yield* Scope.close(scope, Exit.void)
      assert.isTrue(Exit.isSuccess(yield* Fiber.await(reader)), "receive ended")
      const late = yield* failureOf(first.send(first.address, cellOf(cellBytes, 4, 0)))
      assert.strictEqual(late?.reason, "Closed")
      const again = yield* open({ port: portOf(first.address) })
      assert.strictEqual(again.address, first.address)
      const received = yield* drain(again)
      const other = yield* open()
      yield* other.send(again.address, cellOf(cellBytes, 4, 1))
      assert.isTrue(yield* waitUntil(() => received.length === 1), "the rebound port receives")
    }))

  it.scopedLive("an interrupted make leaves the port bound only if it finished binding", () =>
    Effect.gen(function*() {
      for (let yields = 0; yields < 8; yields++) {
        const port = yield* freePort
        const scope = yield* Scope.make()
        const fiber = yield* Effect.fork(Scope.extend(open({ port }), scope))
        for (let i = 0; i < yields; i++) yield* Effect.yieldNow()
        const exit = yield* Fiber.interrupt(fiber)
        // the scope is still open: only a finished make may hold the port
        const probe = yield* Effect.either(open({ port }).pipe(Effect.provideService(Scope.Scope, scope)))
        assert.strictEqual(Either.isLeft(probe), Exit.isSuccess(exit), `after ${yields} yields`)
        yield* Scope.close(scope, Exit.void)
        yield* Effect.scoped(open({ port })) // free once the scope is closed, either way
      }
    }))

  it.scopedLive("a failed bind closes its socket at once, not at scope close", () =>
    Effect.gen(function*() {
      const closes = yield* countCloses
      const a = yield* open()
      for (let i = 0; i < 5; i++) yield* failureOf(open({ port: portOf(a.address) }))
      assert.strictEqual(closes.count, 5)
    }))

  it.scopedLive("an interrupted bind closes the socket at once", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const closes = yield* countCloses
      const bindStarted = yield* deferBinds // a slow bind, so that there is a moment to interrupt it in
      const scope = yield* Scope.make()
      const fiber = yield* Effect.fork(Scope.extend(open({ port }), scope))
      yield* Deferred.await(bindStarted)
      const exit = yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.isInterrupted(exit))
      assert.strictEqual(closes.count, 1, "closed before the scope closes")
      yield* nextTurn // the deferred bind runs on the closed socket and does nothing
      yield* nextTurn
      const probe = yield* Effect.either(open({ port }).pipe(Effect.provideService(Scope.Scope, scope)))
      assert.isTrue(Either.isRight(probe), "the port was never taken")
      yield* Scope.close(scope, Exit.void)
    }))

  it.scopedLive("IPv6 loopback: round trip with bracketed addresses, or a typed Bind error without ::1", () =>
    Effect.gen(function*() {
      const attempt = yield* Effect.either(open({ host: "::1" }))
      if (Either.isLeft(attempt)) {
        assert.strictEqual(attempt.left._tag, "TransportError")
        assert.strictEqual(attempt.left.reason, "Bind")
        return
      }
      const a = attempt.right
      const b = yield* open({ host: "::1" })
      assert.match(a.address, /^udp:\[::1\]:[1-9]\d*$/)
      assert.deepStrictEqual(TransportUdp.parse(a.address), { host: "::1", port: portOf(a.address), family: 6 })
      const received = yield* drain(b)
      yield* a.send(b.address, cellOf(cellBytes, 5, 0))
      assert.isTrue(yield* waitUntil(() => received.length === 1))
      assert.strictEqual(received[0]?.from, a.address)
      const v4 = yield* open()
      assert.strictEqual((yield* failureOf(a.send(v4.address, cellOf(cellBytes, 5, 1))))?.reason, "BadAddress")
      assert.strictEqual((yield* failureOf(v4.send(a.address, cellOf(cellBytes, 5, 2))))?.reason, "BadAddress")
    }))

  it.scopedLive("sends to an unreachable port succeed silently, many times", () =>
    Effect.gen(function*() {
      const a = yield* open()
      const port = yield* freePort
      for (let i = 0; i < 200; i++) yield* a.send(`udp:127.0.0.1:${port}`, cellOf(cellBytes, 6, i))
      const b = yield* open()
      const received = yield* drain(b)
      yield* a.send(b.address, cellOf(cellBytes, 6, 999))
      assert.isTrue(yield* waitUntil(() => received.length === 1), "the endpoint still works")
      const stats = yield* a.stats
      assert.strictEqual(stats.cellsSent + stats.sendErrors, 201)
      assert.strictEqual(stats.socketErrors, 0)
    }))

  it.scopedLive("layer provides the Transport service and closes it with the layer", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const address = yield* Effect.scoped(
        Effect.map(Transport.Transport, (endpoint) => endpoint.address).pipe(
          Effect.provide(TransportUdp.layer({ port }).pipe(Layer.provide(Limits.layer())))
        )
      )
      assert.strictEqual(address, `udp:127.0.0.1:${port}`)
      const again = yield* open({ port })
      assert.strictEqual(again.address, address, "the layer released the port")
    }))
})
