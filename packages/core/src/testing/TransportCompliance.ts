/**
 * The transport compliance suite: the cases every `Transport` implementation must pass, registered
 * with one call from the implementation's test file:
 *
 * ```ts
 * TransportCompliance.suite("TransportMemory", {
 *   live: true,
 *   addressReusable: true,
 *   medium: Effect.map(TransportMemory.makeNetwork(), (network) => ({
 *     endpoint: (options) => TransportMemory.make(network, options),
 *     unreachable: "mem:nobody",
 *     settle: Effect.sleep("1 millis")
 *   }))
 * })
 * ```
 *
 * Each case gets a fresh medium, made in the case's scope and under its clock (real time with
 * `live`, else `TestClock`), so cases never share endpoints. Unreliable transports are held to "most
 * cells arrive, none corrupted"; reliable ones to "every cell arrives".
 *
 * Extension point: the link-layer wire cases (no constant byte, prober silence, one session per
 * peer) are added by the secure link through `options.extra`, which registers more cases with the same
 * harness and helpers (`Kit`).
 */
import { assert, it } from "@effect/vitest"
import { Chunk, Effect, Either, Exit, Fiber, Scope, Stream } from "effect"
import { describe } from "vitest"
import * as Limits from "../Limits.js"
import type { Address, Datagram, Endpoint } from "../Transport.js"
import { kindOf } from "../Transport.js"
import type { TransportError } from "../WeftError.js"

/** One medium (network, loopback interface…) that endpoints made from it share. */
export interface Medium {
  /**
   * Binds a fresh endpoint on this medium; with `address`, binds exactly that address (only used when
   * the harness says addresses are reusable). Limits come from the suite.
   */
  readonly endpoint: (
    options?: { readonly address?: Address }
  ) => Effect.Effect<Endpoint, TransportError, Scope.Scope | Limits.Limits>
  /** An address of this transport's kind at which nothing listens. */
  readonly unreachable: Address
  /**
   * Lets cells in flight arrive: `TestClock.adjust` past the largest delay for simulated media,
   * a short real sleep for live ones. The suite repeats it while it waits.
   */
  readonly settle: Effect.Effect<void>
}

/** How the suite drives one transport implementation. */
export interface Harness {
  /** Run cases in real time (`it.scopedLive`, for sockets) rather than under `TestClock` (`it.scoped`). */
  readonly live: boolean
  /** A fresh medium, acquired in the case's scope (so a network's fibers run under the case's clock). */
  readonly medium: Effect.Effect<Medium, never, Scope.Scope>
  /** Whether a closed endpoint's address can be bound again at once (memory, sim: yes). */
  readonly addressReusable: boolean
  /** Limits every endpoint gets, over the defaults (the suite may tighten `endpointInboxCells`). */
  readonly limits?: Partial<Limits.Values>
  /** How many times the suite settles while waiting for cells. Default 100. */
  readonly settleRoundsMax?: number
}

/** An endpoint's receive stream, drained into an array by a fiber of the case's scope. */
export interface Reader {
  readonly received: ReadonlyArray<Datagram>
  /** The draining fiber: it completes when the endpoint's `receive` ends. */
  readonly fiber: Fiber.RuntimeFiber<void, TransportError>
}

/** The helpers a case gets. */
export interface Kit {
  readonly harness: Harness
  readonly medium: Medium
  /** Binds an endpoint with the suite's limits (plus `limits`) in the current scope. */
  readonly open: (options?: {
    readonly address?: Address
    readonly limits?: Partial<Limits.Values>
  }) => Effect.Effect<Endpoint, TransportError, Scope.Scope>
  /** Starts draining `endpoint.receive` (its one consumer). */
  readonly read: (endpoint: Endpoint) => Effect.Effect<Reader, never, Scope.Scope>
  /** Settles until `done` holds or `settleRoundsMax` rounds have passed; says whether it holds. */
  readonly settleUntil: (done: (() => boolean) | Effect.Effect<boolean>) => Effect.Effect<boolean>
  /**
   * Sends `cell` from `from` until `reader` has a copy of it (once for a reliable transport, up to 20
   * times otherwise); says whether it arrived.
   */
  readonly deliver: (
    from: Endpoint,
    to: Address,
    cell: Uint8Array,
    reader: Reader
  ) => Effect.Effect<boolean, TransportError>
}

/** Registers one more case that runs with the suite's harness. */
export type Register = (name: string, body: (kit: Kit) => Effect.Effect<void, unknown, Scope.Scope>) => void

/** Options of `suite`. */
export interface SuiteOptions {
  /** Registers implementation- or layer-specific cases inside the suite's `describe` block. */
  readonly extra?: (register: Register) => void
}

// ---------------------------------------------------------------------------------------------------
// Cells with a checkable pattern

/** A cell of `cellBytes` whose bytes all derive from (`tag`, `index`), so corruption is detectable. */
export const cellOf = (cellBytes: number, tag: number, index: number): Uint8Array => {
  const cell = new Uint8Array(cellBytes)
  const view = new DataView(cell.buffer)
  view.setUint32(0, tag >>> 0)
  view.setUint32(4, index >>> 0)
  for (let i = 8; i < cellBytes; i++) cell[i] = (index * 131 + i * 7 + tag) & 0xff
  return cell
}

/** The (`tag`, `index`) of a cell made by `cellOf`, or undefined if it is not exactly one. */
export const decodeCell = (cell: Uint8Array, cellBytes: number): { tag: number; index: number } | undefined => {
  if (cell.length !== cellBytes || cellBytes < 8) return undefined
  const view = new DataView(cell.buffer, cell.byteOffset, cell.byteLength)
  const tag = view.getUint32(0)
  const index = view.getUint32(4)
  for (let i = 8; i < cellBytes; i++) if (cell[i] !== ((index * 131 + i * 7 + tag) & 0xff)) return undefined
  return { tag, index }
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && a.every((byte, i) => byte === b[i])

// ---------------------------------------------------------------------------------------------------
// The kit

const makeKit = (harness: Harness, medium: Medium): Kit => {
  const rounds = harness.settleRoundsMax ?? 100
  const settleFor = (done: (() => boolean) | Effect.Effect<boolean>, roundsMax: number): Effect.Effect<boolean> => {
    const check = Effect.isEffect(done) ? done : Effect.sync(done)
    return Effect.gen(function*() {
      for (let round = 0; round < roundsMax; round++) {
        if (yield* check) return true
        yield* medium.settle
      }
      return yield* check
    })
  }
  const settleUntil = (done: (() => boolean) | Effect.Effect<boolean>) => settleFor(done, rounds)
  const read = (endpoint: Endpoint): Effect.Effect<Reader, never, Scope.Scope> =>
    Effect.gen(function*() {
      const received: Array<Datagram> = []
      const fiber = yield* endpoint.receive.pipe(
        Stream.runForEachChunk((chunk) => Effect.sync(() => received.push(...Chunk.toReadonlyArray(chunk)))),
        Effect.forkScoped
      )
      return { received, fiber }
    })
  return {
    harness,
    medium,
    open: (options = {}) =>
      medium.endpoint(options.address === undefined ? {} : { address: options.address }).pipe(
        Effect.provide(Limits.layer({ ...harness.limits, ...options.limits }))
      ),
    read,
    settleUntil,
    deliver: (from, to, cell, reader) =>
      Effect.gen(function*() {
        const arrived = () => reader.received.some((datagram) => sameBytes(datagram.cell, cell))
        // an unreliable medium gets shorter waits and more attempts: a lost cell never turns up
        const [attempts, roundsPerAttempt] = from.capabilities.reliable ? [1, rounds] : [20, Math.min(rounds, 10)]
        for (let attempt = 0; attempt < attempts && !arrived(); attempt++) {
          yield* from.send(to, cell)
          yield* settleFor(arrived, roundsPerAttempt)
        }
        return arrived()
      })
  }
}

// ---------------------------------------------------------------------------------------------------
// The cases

const roundTrip = (kit: Kit) =>
  Effect.gen(function*() {
    const a = yield* kit.open()
    const b = yield* kit.open()
    const [readerA, readerB] = [yield* kit.read(a), yield* kit.read(b)]
    const cellBytes = a.capabilities.cellBytes
    assert.isTrue(yield* kit.deliver(a, b.address, cellOf(cellBytes, 1, 1), readerB), "a -> b arrived")
    assert.isTrue(yield* kit.deliver(b, a.address, cellOf(cellBytes, 2, 1), readerA), "b -> a arrived")
    assert.strictEqual(readerB.received[0]?.from, a.address)
    assert.strictEqual(readerA.received[0]?.from, b.address)
    assert.isAtLeast((yield* a.stats).cellsSent, 1)
    assert.isAtLeast((yield* b.stats).cellsReceived, 1)
  })

const exactCells = (kit: Kit) =>
  Effect.gen(function*() {
    const a = yield* kit.open()
    const b = yield* kit.open()
    const reader = yield* kit.read(b)
    const cellBytes = a.capabilities.cellBytes
    assert.strictEqual(b.capabilities.cellBytes, cellBytes)
    const buffer = new Uint8Array(cellBytes)
    const count = 32
    for (let index = 0; index < count; index++) {
      buffer.set(cellOf(cellBytes, 7, index))
      yield* a.send(b.address, buffer)
      buffer.fill(0xa5) // the transport must have taken its own copy
    }
    const indices = () => new Set(reader.received.map((d) => decodeCell(d.cell, cellBytes)?.index))
    yield* kit.settleUntil(() => indices().size >= count)
    for (const datagram of reader.received) {
      assert.strictEqual(datagram.cell.length, cellBytes)
      assert.isDefined(decodeCell(datagram.cell, cellBytes), "cell is byte-identical to what was sent")
    }
    assert.isAtLeast(indices().size, a.capabilities.reliable ? count : count / 2)
  })

const manyCells = (kit: Kit) =>
  Effect.gen(function*() {
    const a = yield* kit.open()
    const b = yield* kit.open()
    const reader = yield* kit.read(b)
    const cellBytes = a.capabilities.cellBytes
    const count = 1000
    for (let index = 0; index < count; index++) yield* a.send(b.address, cellOf(cellBytes, 9, index))
    const indices = new Set<number>()
    let corrupted = 0
    let scanned = 0
    const scan = () => {
      for (; scanned < reader.received.length; scanned++) {
        const datagram = reader.received[scanned]!
        const decoded = decodeCell(datagram.cell, cellBytes)
        if (decoded === undefined || decoded.tag !== 9 || datagram.from !== a.address) corrupted++
        else indices.add(decoded.index)
      }
      return indices.size >= count
    }
    yield* kit.settleUntil(scan)
    assert.strictEqual(corrupted, 0, "no corrupted or misattributed cell")
    if (a.capabilities.reliable) assert.strictEqual(indices.size, count)
    else assert.isAtLeast(indices.size, count / 2, "most cells arrive")
  })

const unsafeSends = (kit: Kit) =>
  Effect.gen(function*() {
    const a = yield* kit.open()
    const b = yield* kit.open()
    const reader = yield* kit.read(b)
    const cellBytes = a.capabilities.cellBytes
    const count = 500
    for (let index = 0; index < count; index++) {
      assert.isUndefined(a.unsafeSend(b.address, cellOf(cellBytes, 10, index)), "the medium took the cell")
    }
    assert.strictEqual(a.unsafeSend(b.address, new Uint8Array(cellBytes + 1))?.reason, "CellSize")
    assert.strictEqual(a.unsafeSend(`not${a.kind}:1`, cellOf(cellBytes, 10, 0))?.reason, "BadAddress")
    const indices = () => new Set(reader.received.map((d) => decodeCell(d.cell, cellBytes)?.index))
    yield* kit.settleUntil(() => indices().size >= count)
    assert.isTrue(reader.received.every((d) => d.from === a.address && decodeCell(d.cell, cellBytes)?.tag === 10))
    assert.isAtLeast(indices().size, a.capabilities.reliable ? count : count / 2)
    assert.isAtLeast((yield* a.stats).cellsSent, a.capabilities.reliable ? count : count / 2)
  })

const wrongSize = (kit: Kit) =>
  Effect.gen(function*() {
    const a = yield* kit.open()
    const b = yield* kit.open()
    const reader = yield* kit.read(b)
    const cellBytes = a.capabilities.cellBytes
    for (const size of [0, 1, cellBytes - 1, cellBytes + 1, 2 * cellBytes]) {
      const result = yield* Effect.either(a.send(b.address, new Uint8Array(size)))
      assert.isTrue(Either.isLeft(result), `a ${size}-byte cell is refused`)
      if (Either.isLeft(result)) assert.strictEqual(result.left.reason, "CellSize")
    }
    assert.isTrue(yield* kit.deliver(a, b.address, cellOf(cellBytes, 3, 0), reader), "the endpoint still works")
    assert.isTrue(reader.received.every((d) => d.cell.length === cellBytes))
  })

const badAddress = (kit: Kit) =>
  Effect.gen(function*() {
    const a = yield* kit.open()
    const cell = cellOf(a.capabilities.cellBytes, 4, 0)
    for (const to of ["no-kind-here", `not${a.kind}:1`]) {
      const result = yield* Effect.either(a.send(to, cell))
      assert.isTrue(Either.isLeft(result), `sending to ${to} is refused`)
      if (Either.isLeft(result)) assert.strictEqual(result.left.reason, "BadAddress")
    }
  })

const threeEndpoints = (kit: Kit) =>
  Effect.gen(function*() {
    const [a, b, c] = [yield* kit.open(), yield* kit.open(), yield* kit.open()]
    assert.strictEqual(new Set([a.address, b.address, c.address]).size, 3, "addresses are distinct")
    for (const endpoint of [a, b, c]) assert.strictEqual(kindOf(endpoint.address), endpoint.kind)
    const [readerA, readerB, readerC] = [yield* kit.read(a), yield* kit.read(b), yield* kit.read(c)]
    const cellBytes = c.capabilities.cellBytes
    assert.isTrue(yield* kit.deliver(c, a.address, cellOf(cellBytes, 5, 1), readerA))
    assert.isTrue(yield* kit.deliver(c, b.address, cellOf(cellBytes, 5, 2), readerB))
    assert.isTrue(yield* kit.deliver(a, c.address, cellOf(cellBytes, 5, 3), readerC))
    assert.isTrue(yield* kit.deliver(b, c.address, cellOf(cellBytes, 5, 4), readerC))
    assert.isTrue(readerA.received.every((d) => d.from === c.address))
    assert.isTrue(readerB.received.every((d) => d.from === c.address))
    assert.deepStrictEqual(new Set(readerC.received.map((d) => d.from)), new Set([a.address, b.address]))
  })

const closeReleases = (kit: Kit) =>
  Effect.gen(function*() {
    const a = yield* kit.open()
    const readerA = yield* kit.read(a)
    const scope = yield* Scope.make()
    const b = yield* Scope.extend(kit.open(), scope)
    const readerB = yield* kit.read(b) // in the case's scope, so only the endpoint's release can end it
    const cellBytes = a.capabilities.cellBytes
    assert.isTrue(yield* kit.deliver(a, b.address, cellOf(cellBytes, 6, 0), readerB))
    yield* Scope.close(scope, Exit.void)
    assert.isTrue(Exit.isSuccess(yield* Fiber.await(readerB.fiber)), "receive ends when the scope closes")
    const late = yield* Effect.either(b.send(a.address, cellOf(cellBytes, 6, 1)))
    assert.isTrue(Either.isLeft(late) && late.left.reason === "Closed", "a closed endpoint refuses to send")
    yield* a.send(b.address, cellOf(cellBytes, 6, 2)) // to a released address: accepted, never delivered
    for (let round = 0; round < 3; round++) yield* kit.medium.settle
    assert.strictEqual(readerB.received.length, 1)
    assert.strictEqual(readerA.received.length, 0)
    if (kit.harness.addressReusable) {
      const again = yield* kit.open({ address: b.address })
      assert.strictEqual(again.address, b.address)
      const readerAgain = yield* kit.read(again)
      assert.isTrue(yield* kit.deliver(a, again.address, cellOf(cellBytes, 6, 3), readerAgain), "address reused")
      assert.isTrue(
        readerAgain.received.every((d) => decodeCell(d.cell, cellBytes)?.index === 3),
        "nothing sent before the rebind reaches the new endpoint"
      )
    }
  })

const interruptedSend = (kit: Kit) =>
  Effect.gen(function*() {
    const a = yield* kit.open()
    const b = yield* kit.open()
    const reader = yield* kit.read(b)
    const cellBytes = a.capabilities.cellBytes
    const burst = Effect.forEach(
      Array.from({ length: 100 }, (_, i) => i),
      (i) => a.send(b.address, cellOf(cellBytes, 8, i))
    )
    for (let attempt = 0; attempt < 5; attempt++) {
      const fiber = yield* Effect.fork(burst)
      if (attempt > 0) yield* Effect.yieldNow()
      yield* Fiber.interrupt(fiber)
    }
    yield* Effect.interruptible(a.send(b.address, cellOf(cellBytes, 8, 1000))).pipe(Effect.timeout(0), Effect.ignore)
    assert.isTrue(yield* kit.deliver(a, b.address, cellOf(cellBytes, 8, 2000), reader), "the endpoint still works")
    assert.isTrue(reader.received.every((d) => decodeCell(d.cell, cellBytes)?.tag === 8), "nothing corrupted")
  })

const unreachablePeer = (kit: Kit) =>
  Effect.gen(function*() {
    const a = yield* kit.open()
    const b = yield* kit.open()
    const reader = yield* kit.read(b)
    const cellBytes = a.capabilities.cellBytes
    for (let i = 0; i < 10; i++) {
      const result = yield* Effect.either(a.send(kit.medium.unreachable, cellOf(cellBytes, 10, i)))
      assert.isTrue(Either.isRight(result), "a send to an unreachable address succeeds")
      yield* kit.medium.settle
    }
    assert.isTrue(yield* kit.deliver(a, b.address, cellOf(cellBytes, 10, 100), reader), "the sender still works")
  })

const inboxBound = (kit: Kit) =>
  Effect.gen(function*() {
    const inboxCells = 16
    const a = yield* kit.open()
    const b = yield* kit.open({ limits: { endpointInboxCells: inboxCells } })
    const cellBytes = a.capabilities.cellBytes
    for (let i = 0; i < inboxCells * 4; i++) yield* a.send(b.address, cellOf(cellBytes, 11, i))
    let seen = -1
    // done once drops are counted and no further cell turned up since the previous round
    yield* kit.settleUntil(Effect.map(b.stats, (stats) => {
      const total = stats.cellsReceived + stats.cellsDroppedInboxFull
      const stable = total === seen && stats.cellsDroppedInboxFull > 0
      seen = total
      return stable
    }))
    const stats = yield* b.stats
    assert.isAbove(stats.cellsDroppedInboxFull, 0, "a full inbox drops and counts")
    assert.isAtMost(stats.cellsReceived, inboxCells)
    const reader = yield* kit.read(b)
    yield* kit.settleUntil(() => reader.received.length >= inboxCells)
    assert.isAbove(reader.received.length, 0)
    assert.isAtMost(reader.received.length, inboxCells, "the inbox held at most its bound")
  })

/**
 * Registers the compliance cases for one transport as a vitest `describe` block named `name`.
 * Call it at the top level of a test file.
 */
export const suite = (name: string, harness: Harness, options: SuiteOptions = {}): void => {
  describe(`${name} (transport compliance)`, () => {
    const register: Register = (caseName, body) => {
      const run = () => Effect.flatMap(harness.medium, (medium) => body(makeKit(harness, medium)))
      if (harness.live) it.scopedLive(caseName, run)
      else it.scoped(caseName, run)
    }
    register("round trip both ways", roundTrip)
    register("every delivered cell is exactly cellBytes and byte-identical (copied on send)", exactCells)
    register("many small messages (1,000 cells) arrive uncorrupted", manyCells)
    register("unsafeSend (the per-cell path) delivers like send and returns its refusals", unsafeSends)
    register("a wrong-size send fails with TransportError(CellSize)", wrongSize)
    register("an address of another kind fails with TransportError(BadAddress)", badAddress)
    register("endpoints have distinct addresses and a third reaches both", threeEndpoints)
    register("closing the scope releases the endpoint", closeReleases)
    register("an interrupted send does not break the endpoint", interruptedSend)
    register("sending to an unreachable address fails nothing", unreachablePeer)
    register("the inbox bound holds: a flood is dropped and counted", inboxBound)
    options.extra?.(register)
  })
}
