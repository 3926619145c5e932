/**
 * `LinkSecure` over real UDP sockets on 127.0.0.1: what the wire shows, and what hostile input gets.
 * Real X-Wing and ML-DSA-65 throughout; every socket is released with its test's scope.
 */
import { assert, describe, it } from "@effect/vitest"
import type { Link } from "@weft/core"
import { Duration, Effect, Exit, FastCheck as fc, Fiber, Scope } from "effect"
import { randomBytes } from "node:crypto"
import * as secureCrypto from "../../core/src/internal/secureCrypto.js"
import type { UdpNode } from "./secureUdpKit.js"
import {
  bytePositionSpread, bytes, cellBytes, collect, emptyTables, forceGc, identityOf, makeRelay, psk, rawSend, rawSocket,
  security, startNode, stats, tables, waitUntil, wrongPsk
} from "./secureUdpKit.js"

const isHandshakeCell = (cell: Uint8Array): boolean => secureCrypto.openHandshakeCell(psk, cell) !== undefined

/** Dials `to` from `from` and waits until `target` (the node behind `to`) has announced the session too. */
const connect = (from: UdpNode, to: string, target: UdpNode) =>
  Effect.gen(function*() {
    const before = target.announced.length
    const atFrom = yield* from.link.dial(to)
    assert.isTrue(yield* waitUntil(() => target.announced.length > before), "the target accepts")
    return [atFrom, target.announced[target.announced.length - 1]!] as const
  })

/** Whether a session has closed, without waiting. */
const isClosed = (session: Link.Session) => Effect.map(Effect.timeout(session.closed, 0), () => true).pipe(
  Effect.catchAll(() => Effect.succeed(false))
)

describe("LinkSecure over UDP: the wire", () => {
  it.scopedLive("every datagram is exactly cellBytes and no byte position is constant (≥ 10,000 cells, handshakes included)", () =>
    Effect.gen(function*() {
      const a = yield* startNode({ identity: identityOf(1) })
      const b = yield* startNode({ identity: identityOf(2) })
      const relay = yield* makeRelay(b.address)
      const sessions = 4
      for (let session = 0; session < sessions; session++) {
        const [atA, atB] = yield* connect(a, relay.front, b)
        yield* collect(atA)
        const atBFrames = yield* collect(atB)
        // Structured plaintext: zeros, then the same short frame again and again.
        for (let round = 0; relay.records.length < (session + 1) * 2_600; round++) {
          yield* atA.send(new Uint8Array(20_000))
          yield* atB.send(bytes(10, round))
          yield* Effect.sleep("1 millis")
        }
        assert.isTrue(yield* waitUntil(() => atBFrames.length > 0), "frames crossed the relay")
        yield* atA.close
        yield* Effect.timeoutFail(atB.closed, { duration: "5 seconds", onTimeout: () => "B never saw the close" })
      }
      const cells = relay.records.map((record) => record.cell)
      assert.isAtLeast(cells.length, 10_000)
      assert.isTrue(cells.every((cell) => cell.length === cellBytes), "every datagram is one cell")
      // INIT (2 cells), RESP (6) and FINISH (5) per session, at least.
      assert.isAtLeast(cells.filter(isHandshakeCell).length, sessions * 13)
      const { worstEntropy, worstShare } = bytePositionSpread(cells, cellBytes)
      assert.isAtLeast(worstEntropy, 7.5, "bits of entropy at the worst byte position")
      assert.isAtMost(worstShare, 0.02, "share of the most common value at the worst byte position")
      assert.deepStrictEqual([stats(a).sessionsOpened, stats(b).sessionsOpened], [sessions, sessions])
    }), { timeout: 60_000 })
})

describe("LinkSecure over UDP: hostile input gets silence", () => {
  it.scopedLive("a prober without the PSK gets zero replies; every refusal is counted; no state is left", () =>
    Effect.gen(function*() {
      const victim = yield* startNode({ identity: identityOf(2) })
      const prober = yield* rawSocket
      const wrongSizes = [0, 1, 16, cellBytes - 1, cellBytes + 1, 2 * cellBytes, 65_507]
      const junkSizes = fc.sample(fc.integer({ min: 0, max: 4 * cellBytes }).filter((size) => size !== cellBytes), {
        numRuns: 50,
        seed: 7
      })
      const wrongSize = [...wrongSizes, ...junkSizes].map((size) => new Uint8Array(randomBytes(size)))
      const rightSize = [
        ...Array.from({ length: 300 }, () => new Uint8Array(randomBytes(cellBytes))),
        new Uint8Array(cellBytes),
        new Uint8Array(cellBytes).fill(0xff)
      ]
      yield* rawSend(prober.socket, victim.address, wrongSize)
      yield* rawSend(prober.socket, victim.address, rightSize)
      // A full handshake attempt by a real node of another network.
      const outsider = yield* startNode({
        identity: identityOf(9),
        psk: wrongPsk,
        limits: { handshakeAttemptTimeout: Duration.millis(200), handshakeAttemptsMax: 3 }
      })
      const dial = yield* outsider.link.dial(victim.address).pipe(Effect.flip, Effect.timeout("10 seconds"))
      assert.strictEqual(dial.reason, "Timeout")
      const initCells = (yield* outsider.endpoint.stats).cellsSent
      assert.strictEqual(initCells, 2 * 3, "three INITs of two cells each")

      const unauthenticated = rightSize.length + initCells
      assert.isTrue(yield* waitUntil(() => security(victim).cellsUnauthenticated === unauthenticated), "all counted")
      // Bounded wait for any (wrong) reply still in flight.
      yield* Effect.sleep("300 millis")
      assert.strictEqual(prober.received.length, 0, "the raw prober got nothing")
      assert.strictEqual((yield* outsider.endpoint.stats).cellsReceived, 0, "the outsider got nothing")
      assert.strictEqual((yield* victim.endpoint.stats).cellsSent, 0, "the victim sent nothing at all")
      // Wrong sizes never reach the link: the transport drops and counts them.
      const transport = yield* victim.endpoint.stats
      assert.deepStrictEqual([transport.cellsDroppedWrongSize, transport.cellsReceived], [wrongSize.length, unauthenticated])
      assert.strictEqual(security(victim).cellsWrongSize, 0)
      assert.strictEqual(stats(victim).cellsRejected, unauthenticated)
      assert.deepStrictEqual([stats(victim).handshakesFailed, stats(victim).sessionsOpened], [0, 0])
      assert.deepStrictEqual(tables(victim), emptyTables)
    }), { timeout: 30_000 })

  it.scopedLive("replayed data and handshake cells are refused and counted, get no reply, and leave the session as it was", () =>
    Effect.gen(function*() {
      // No spontaneous traffic (keepalives) while the test listens for replies; handshake state kept long enough
      // that copies of the session's own handshake are recognised as duplicates.
      const limits = {
        keepaliveInterval: Duration.minutes(1),
        sessionIdleTimeout: Duration.minutes(2),
        reassemblyTimeout: Duration.seconds(30)
      }
      const a = yield* startNode({ identity: identityOf(1), limits })
      const b = yield* startNode({ identity: identityOf(2), limits })
      const relay = yield* makeRelay(b.address)
      const [atA, atB] = yield* connect(a, relay.front, b)
      const atAFrames = yield* collect(atA)
      const atBFrames = yield* collect(atB)
      for (let index = 0; index < 5; index++) {
        yield* atA.send(bytes(1500, index))
        yield* atB.send(bytes(1500, 100 + index))
      }
      assert.isTrue(yield* waitUntil(() => atAFrames.length === 5 && atBFrames.length === 5), "the session works")
      yield* Effect.sleep("100 millis")

      const toB = relay.records.filter((record) => record.toward === "b").map((record) => record.cell)
      const toA = relay.records.filter((record) => record.toward === "a").map((record) => record.cell)
      const [handshakeToB, dataToB] = [toB.filter(isHandshakeCell), toB.filter((cell) => !isHandshakeCell(cell))]
      const [handshakeToA, dataToA] = [toA.filter(isHandshakeCell), toA.filter((cell) => !isHandshakeCell(cell))]
      assert.isAtLeast(handshakeToB.length, 7, "INIT and FINISH")
      assert.isAtLeast(handshakeToA.length, 6, "RESP")
      assert.isAtLeast(dataToB.length, 10)
      // A handshake flight repeated by its timer re-seals the same inner cells: count each once.
      const uniqueToB = new Set(handshakeToB.map((cell) => Buffer.from(secureCrypto.openHandshakeCell(psk, cell)!).toString("hex"))).size
      const recordedBefore = relay.records.length
      const [beforeA, beforeB] = [security(a), security(b)]
      const [rejectedA, rejectedB] = [stats(a).cellsRejected, stats(b).cellsRejected]

      // Replays from the session's own address, both ways, in order and reversed.
      yield* relay.injectToB([...toB, ...toB.slice().reverse()])
      yield* relay.injectToA(toA)
      // And the dialer's cells again from an address that never had a session.
      const stranger = yield* rawSocket
      yield* rawSend(stranger.socket, b.address, toB)

      const expectB = {
        cellsReplayed: beforeB.cellsReplayed + 2 * dataToB.length,
        // Copies from the session's address die in reassembly; the stranger's repeats of a flight too.
        handshakeCellsDuplicate: beforeB.handshakeCellsDuplicate + 2 * handshakeToB.length + handshakeToB.length - uniqueToB,
        // From the stranger: INIT (answered before: the replay cache) and FINISH (no handshake awaits it).
        handshakesReplayed: beforeB.handshakesReplayed + 2,
        cellsUnauthenticated: beforeB.cellsUnauthenticated + dataToB.length
      }
      const expectA = {
        cellsReplayed: beforeA.cellsReplayed + dataToA.length,
        handshakeCellsDuplicate: beforeA.handshakeCellsDuplicate + handshakeToA.length
      }
      const pick = (node: UdpNode, keys: ReadonlyArray<string>) =>
        Object.fromEntries(keys.map((key) => [key, (security(node) as unknown as Record<string, number>)[key]]))
      const settled = yield* waitUntil(() =>
        JSON.stringify(pick(b, Object.keys(expectB))) === JSON.stringify(expectB) &&
        JSON.stringify(pick(a, Object.keys(expectA))) === JSON.stringify(expectA)
      )
      assert.deepStrictEqual([pick(b, Object.keys(expectB)), pick(a, Object.keys(expectA))], [expectB, expectA])
      assert.isTrue(settled)
      // Refused cells count as rejected too (duplicate handshake cells excepted, as documented).
      assert.strictEqual(stats(b).cellsRejected - rejectedB, 3 * dataToB.length + uniqueToB)
      assert.strictEqual(stats(a).cellsRejected - rejectedA, dataToA.length)
      yield* Effect.sleep("300 millis")
      assert.strictEqual(relay.records.length, recordedBefore, "no reply from either side")
      assert.strictEqual(stranger.received.length, 0, "no reply to the stranger")
      assert.deepStrictEqual([security(b).responderHandshakes, security(a).responderHandshakes], [1, 0], "no KEM or signature work")
      assert.deepStrictEqual([atAFrames.length, atBFrames.length], [5, 5], "nothing delivered twice")

      yield* atA.send(bytes(40, 1))
      yield* atB.send(bytes(40, 2))
      assert.isTrue(yield* waitUntil(() => atAFrames.length === 6 && atBFrames.length === 6), "the session still works")
      assert.deepStrictEqual([atBFrames[5], atAFrames[5]], [bytes(40, 1), bytes(40, 2)])
      assert.deepStrictEqual([a.announced.length, b.announced.length, stats(a).sessionsOpened, stats(b).sessionsOpened], [1, 1, 1, 1])
    }), { timeout: 30_000 })
})

describe("LinkSecure over UDP: one session per peer", () => {
  it.scopedLive("1,000 simultaneous dials (500 each way) end in one session on each side", () =>
    Effect.gen(function*() {
      const a = yield* startNode({ identity: identityOf(1) })
      const b = yield* startNode({ identity: identityOf(2) })
      const dials = [
        ...Array.from({ length: 500 }, () => a.link.dial(b.address)),
        ...Array.from({ length: 500 }, () => b.link.dial(a.address))
      ]
      const sessions = yield* Effect.all(dials, { concurrency: "unbounded" })
      const [fromA, fromB] = [sessions.slice(0, 500), sessions.slice(500)]
      assert.isTrue(fromA.every((session) => session === fromA[0]), "A's dials share one session")
      assert.isTrue(fromB.every((session) => session === fromB[0]), "B's dials share one session")
      yield* Effect.sleep("300 millis")
      assert.deepStrictEqual([a.announced, b.announced], [[fromA[0]!], [fromB[0]!]])
      assert.deepStrictEqual([fromA[0]!.peer, fromB[0]!.peer], [b.identity.id, a.identity.id])
      assert.notStrictEqual(fromA[0]!.initiator, fromB[0]!.initiator, "one side's handshake won on both")
      assert.deepStrictEqual([tables(a), tables(b)].map((t) => [t.sessions, t.handshakes]), [[1, 0], [1, 0]])
      assert.strictEqual(security(a).responderHandshakes + security(b).responderHandshakes, 1, "exactly one handshake ran")
      const [atA, atB] = [fromA[0]!, fromB[0]!]
      const [atAFrames, atBFrames] = [yield* collect(atA), yield* collect(atB)]
      yield* atA.send(bytes(3000, 1))
      yield* atB.send(bytes(3000, 2))
      assert.isTrue(yield* waitUntil(() => atAFrames.length === 1 && atBFrames.length === 1))
      assert.deepStrictEqual([atBFrames[0], atAFrames[0]], [bytes(3000, 1), bytes(3000, 2)])
    }), { timeout: 30_000 })
})

describe("LinkSecure over UDP: load", () => {
  it.scopedLive("a handshake flood from 50 ports: cookies under load, bounded tables, the legitimate session keeps flowing", () =>
    Effect.gen(function*() {
      const victimLimits = { handshakesBeforeCookie: 4, handshakesInFlightMax: 16, peersMax: 40 }
      const victim = yield* startNode({ identity: identityOf(2), limits: victimLimits })
      const legit = yield* startNode({ identity: identityOf(1) })
      const [atLegit, atVictim] = yield* connect(legit, victim.address, victim)
      const received = yield* collect(atVictim)
      const flooders = yield* Effect.forEach(Array.from({ length: 50 }), (_, index) =>
        Effect.gen(function*() {
          const scope = yield* Scope.make()
          const node = yield* Scope.extend(
            startNode({ identity: identityOf(100 + index), limits: { handshakeAttemptTimeout: Duration.millis(400) } }),
            scope
          )
          return { node, scope }
        }))

      // Watch the victim's tables and keep the legitimate session busy for the whole flood.
      let sent = 0
      const worst = { sessions: 0, handshakes: 0, handshakeReassemblyAddresses: 0, reassemblyAddresses: 0 }
      const watcher = yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
        const now = tables(victim)
        for (const key of Object.keys(worst) as Array<keyof typeof worst>) worst[key] = Math.max(worst[key], now[key])
        yield* atLegit.send(bytes(100, sent++))
        yield* Effect.sleep("10 millis")
      })))
      const dials = yield* Effect.forEach(flooders, ({ node }) => Effect.either(node.link.dial(victim.address)), {
        concurrency: "unbounded"
      })
      yield* Effect.sleep("200 millis")
      yield* Fiber.interrupt(watcher)
      const connected = dials.filter((dial) => dial._tag === "Right").length

      assert.isAbove(security(victim).cookiesSent, 0, "the victim demanded cookies")
      assert.isAtMost(worst.handshakes, victimLimits.handshakesInFlightMax)
      assert.isAtMost(worst.handshakeReassemblyAddresses, victimLimits.handshakesInFlightMax)
      assert.isAtMost(worst.sessions, victimLimits.peersMax)
      assert.isAtMost(worst.reassemblyAddresses, victimLimits.peersMax)
      assert.isAtLeast(connected, 20, "cookie-bearing INITs still get through")
      // The victim counts responder handshakes in flight against peersMax when it admits an INIT, so
      // no dial succeeds into a session the victim would refuse: the dialers' count is bounded too.
      assert.isAtMost(connected, victimLimits.peersMax - 1)
      assert.isAtMost(victim.announced.length, victimLimits.peersMax)
      assert.isAtMost(stats(victim).sessionsOpened, victimLimits.peersMax)
      assert.isFalse(yield* isClosed(atVictim), "the legitimate session survived")
      assert.strictEqual(victim.announced[0], atVictim)
      assert.isTrue(yield* waitUntil(() => received.length >= sent - 2), "its frames kept arriving")
      assert.isAtLeast(sent, 20)

      yield* Effect.forEach(flooders, ({ scope }) => Scope.close(scope, Exit.void), { discard: true })
      assert.isTrue(yield* waitUntil(() => tables(victim).sessions === 1), "the flooders' sessions closed")
      const frames = yield* collect(atLegit)
      yield* atVictim.send(bytes(50, 9))
      assert.isTrue(yield* waitUntil(() => frames.length === 1), "the legitimate session works both ways")
    }), { timeout: 60_000 })

  it.scopedLive("a dial never succeeds into a session the responder refused for lack of room", () =>
    Effect.gen(function*() {
      const victim = yield* startNode({ identity: identityOf(2), limits: { peersMax: 1 } })
      const c = yield* startNode({ identity: identityOf(3) })
      const d = yield* startNode({ identity: identityOf(4) })
      const dials = yield* Effect.all(
        [Effect.either(c.link.dial(victim.address)), Effect.either(d.link.dial(victim.address))],
        { concurrency: "unbounded" }
      )
      const won = dials.filter((dial) => dial._tag === "Right")
      assert.strictEqual(won.length, 1, "exactly one dial holds the victim's one slot")
      assert.strictEqual(tables(victim).sessions, 1)
      const frames = yield* collect(victim.announced[0]!)
      yield* (won[0] as { right: Link.Session }).right.send(bytes(10, 1))
      assert.isTrue(yield* waitUntil(() => frames.length === 1), "the winner's session is live on both sides")
    }), { timeout: 60_000 })

  it.scopedLive("300 connect/close cycles: tables empty again, memory bounded, the legitimate session flows throughout", () =>
    Effect.gen(function*() {
      // Remembered INITs and idle reassembly state expire quickly, so "empty" can be checked without waiting minutes.
      const victimLimits = { handshakeInitMaxAge: Duration.seconds(2), reassemblyTimeout: Duration.seconds(1) }
      const victim = yield* startNode({ identity: identityOf(2), limits: victimLimits })
      const legit = yield* startNode({ identity: identityOf(1) })
      const [atLegit, atVictim] = yield* connect(legit, victim.address, victim)
      const received = yield* collect(atVictim)
      const churner = identityOf(3)
      let sent = 0

      /** One cycle: a fresh socket and link under the same identity connect, send a frame, close. */
      const cycle = Effect.gen(function*() {
        const closedBefore = stats(victim).sessionsClosed
        yield* Effect.scoped(Effect.gen(function*() {
          const node = yield* startNode({ identity: churner })
          const session = yield* node.link.dial(victim.address)
          yield* session.send(bytes(200, sent))
          yield* session.close
        }))
        yield* atLegit.send(bytes(64, sent++))
        return yield* waitUntil(() => stats(victim).sessionsClosed > closedBefore, 2_000)
      })
      const run = (cycles: number) =>
        Effect.gen(function*() {
          let confirmed = 0
          for (let index = 0; index < cycles; index++) if (yield* cycle) confirmed++
          return confirmed
        })
      const memory = () => {
        forceGc()
        return process.memoryUsage()
      }

      yield* run(50) // warm-up: code compiled, caches and pools at their working size
      const before = memory()
      const cycles = 300
      const confirmed = yield* run(cycles)
      assert.isAtLeast(confirmed, cycles - 3, "the victim saw (nearly) every close")
      assert.isTrue(yield* waitUntil(() => received.length >= sent - 2), "the legitimate frames kept arriving")
      assert.isFalse(yield* isClosed(atVictim))
      // Past handshakeInitMaxAge and reassemblyTimeout the sweeps have emptied everything but the live session.
      const empty = yield* waitUntil(() => {
        const now = tables(victim)
        return now.sessions === 1 && now.handshakes === 0 && now.replayCacheEntries === 0 &&
          now.handshakeReassemblyAddresses === 0 && now.reassemblyPartials === 0
      }, 8_000)
      assert.deepStrictEqual(tables(victim), { ...emptyTables, sessions: 1 }, `tables settle (${empty})`)
      const after = memory()
      const rssGrowth = after.rss - before.rss
      const heapGrowth = after.heapUsed - before.heapUsed
      assert.isBelow(rssGrowth, 10 * 1024 * 1024, `rss grew by ${(rssGrowth / 1e6).toFixed(1)} MB`)
      assert.isBelow(heapGrowth, 5 * 1024 * 1024, `heap grew by ${(heapGrowth / 1e6).toFixed(1)} MB`)
      assert.strictEqual(stats(victim).sessionsOpened, 1 + 50 + cycles)
    }), { timeout: 90_000 })
})
