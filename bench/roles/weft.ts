/**
 * Weft's side: one secure, reliable session (`LinkReliable` over `LinkSecure` over `TransportUdp` on
 * 127.0.0.1), built by hand as in `packages/transport-udp/bench/session.ts`.
 *
 * The server counts frames above `echoBytesMax` and echoes smaller ones on the stream number carried in
 * their first byte (a session's `frames` do not say which stream a frame came on). The client measures
 * bulk goodput (16 KiB frames on one stream), round trips on one stream, round trips on a new stream
 * per request (stream numbers cycled through [firstFreshStream, streamsPerConnectionMax)), and
 * dial → session times from a fresh link each time.
 */
import { Identity, Limits } from "@weft/core"
import type { Link } from "@weft/core"
import { Effect, Exit, Scope, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { readFileSync } from "node:fs"
import type { Role, RoleContext } from "../child.js"
import { answers } from "../../packages/transport-udp/bench/answers.js"
import { secureNode as secureLink } from "../../packages/transport-udp/bench/secureNode.js"
import { requestBytes } from "./measure.js"

/** Frames up to this size are echoed; larger ones are bulk and only counted. */
const echoBytesMax = 64
const bulkFrameBytes = 16 * 1024
const bulkStream = 1
const pingStream = 2
/** New-stream-per-request cycles through the stream numbers from here up (0–2 are the other tests'). */
const firstFreshStream = 3

/** A node's link as `Node.layer` builds it (see `secureNode.ts`). */
const secureNode = (psk: Uint8Array, identity: Identity.Identity) =>
  Effect.map(secureLink(psk, identity), (node) => node.link)

/** Runs effects in one long-lived scope of this process. */
const runner = () => {
  const scope = Effect.runSync(Scope.make())
  return {
    run: <A>(effect: Effect.Effect<A, never, Scope.Scope>): Promise<A> => Effect.runPromise(Scope.extend(effect, scope)),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const pskOf = (context: RoleContext): Uint8Array => new Uint8Array(Buffer.from(String(context.init.psk), "hex"))

// ---------------------------------------------------------------------------------------------------
// Server

const counters = { bytes: 0 }

// Reads with `receive`, as a node's message layer does; an echo is sent from its own fiber.
const serveSession = (session: Link.Session) =>
  session.receive((frame) => {
    if (frame.length > echoBytesMax) counters.bytes += frame.length
    else Effect.runFork(Effect.ignore(session.send(frame, { stream: frame[0] ?? 0 })))
  })

/** Accepts sessions, counts bulk bytes, echoes requests. */
export const server = async (context: RoleContext): Promise<Role> => {
  const { run, close } = runner()
  const link = await run(secureNode(pskOf(context), Identity.generate()))
  await run(Effect.forkScoped(Stream.runForEach(link.sessions, (session) => Effect.forkScoped(serveSession(session)))))
  return {
    info: { address: link.address },
    ops: { count: async () => ({ bytes: counters.bytes, atMs: performance.now() }) },
    close
  }
}

// ---------------------------------------------------------------------------------------------------
// Client

// Kernel UDP drops for lack of receive buffer (this host's, both processes): a diagnostic for low goodput.
const rcvbufErrors = (): number => {
  try {
    const lines = readFileSync("/proc/net/snmp", "utf8").split("\n").filter((l) => l.startsWith("Udp:"))
    const names = lines[0]?.split(/\s+/) ?? []
    return Number(lines[1]?.split(/\s+/)[names.indexOf("RcvbufErrors")] ?? Number.NaN)
  } catch {
    return Number.NaN
  }
}

/** 16 KiB frames on one stream for `seconds`; returns the frames admitted, says what the link did. */
const bulk = (session: Link.Session, stats: Effect.Effect<Link.Stats>, seconds: number) =>
  Effect.gen(function*() {
    const frame = new Uint8Array(randomBytes(bulkFrameBytes))
    const statsBefore = yield* stats
    const drops = rcvbufErrors()
    const start = performance.now()
    let frames = 0
    while (performance.now() - start < seconds * 1000) {
      yield* session.send(frame, { stream: bulkStream })
      frames++
    }
    const statsAfter = yield* stats
    process.stderr.write(
      `    weft-client: ${frames} frames admitted, ${statsAfter.framesSent - statsBefore.framesSent} datagrams sent, ` +
        `${statsAfter.framesReceived - statsBefore.framesReceived} received (acks), kernel RcvbufErrors +${rcvbufErrors() - drops}\n`
    )
    return frames
  }).pipe(Effect.orDie)

/** Round trips per second, one 32-byte request in flight; `streamOf(i)` is the stream of request i. */
const roundTrips = (session: Link.Session, answered: Effect.Effect<void>, seconds: number, streamOf: (i: number) => number) =>
  Effect.gen(function*() {
    const start = performance.now()
    const end = start + seconds * 1000
    let trips = 0
    while (performance.now() < end) {
      const stream = streamOf(trips)
      const request = new Uint8Array(requestBytes)
      request[0] = stream
      yield* session.send(request, { stream })
      yield* answered
      trips++
    }
    return trips / ((performance.now() - start) / 1000)
  }).pipe(
    Effect.orDie,
    Effect.timeoutFail({ duration: seconds * 1000 + 10_000, onTimeout: () => "round trips stalled" }),
    Effect.orDie
  )

const handshakes = (psk: Uint8Array, address: string, count: number) =>
  Effect.gen(function*() {
    const times: Array<number> = []
    for (let i = 0; i < count; i++) {
      const elapsed = yield* Effect.scoped(Effect.gen(function*() {
        // A fresh link (socket, identity, no session state) each time: nothing is resumed.
        const link = yield* secureNode(psk, Identity.generate())
        const start = performance.now()
        const session = yield* Effect.orDie(link.dial(address))
        const elapsed = performance.now() - start
        yield* session.close
        return elapsed
      }))
      times.push(elapsed)
      yield* Effect.sleep("10 millis")
    }
    return times
  })

/** Dials the server once; the session carries every test but the handshakes. */
export const client = async (context: RoleContext): Promise<Role> => {
  const { run, close } = runner()
  const psk = pskOf(context)
  const address = String(context.init.address)
  const link = await run(secureNode(psk, Identity.generate()))
  const session = await run(Effect.orDie(link.dial(address)))
  const answered = await run(answers(session))
  const streamsMax = await run(Effect.map(Limits.Limits, (l) => l.streamsPerConnectionMax).pipe(Effect.provide(Limits.layer())))
  const fresh = streamsMax - firstFreshStream
  let nextFresh = 0
  return {
    info: {},
    ops: {
      bulk: (seconds) => run(bulk(session, link.stats, Number(seconds))),
      rr: (seconds) => run(roundTrips(session, answered, Number(seconds), () => pingStream)),
      newStream: (seconds) => run(roundTrips(session, answered, Number(seconds), () => firstFreshStream + (nextFresh++ % fresh))),
      handshakes: (count) => run(handshakes(psk, address, Number(count)))
    },
    close
  }
}
