/**
 * One end of the impaired-UDP test, run inside a lab namespace:
 *
 *   ip netns exec <ns> node --import tsx test/lab/peer.ts receive|send --host IP --port P --psk HEX
 *     --seed S --streams N --bytes B --frame-max F [--to udp:IP:PORT]
 *
 * Both ends build what `LinkReliable` builds: a `LinkSecure` session over `TransportUdp` (bound to the
 * namespace's 10.99 address), carrying one `Streams` connection over `Path.fromSession(session, mtuBytes)`.
 * The connection is made here rather than through `LinkReliable.wrap` because the wrapped session hides
 * the connection's `stats`, and the test must see the retransmissions and duplicates it counts.
 *
 * `send` writes `--streams` streams concurrently (stream ids 1..N), each `--bytes` bytes of `payload.ts`
 * data in frames of random length up to `--frame-max`, and reports once every byte is acknowledged.
 * `receive` checks every frame against the regenerated payload (length, bytes, order; anything past the
 * end is an extra) and reports once every stream is complete.
 *
 * Protocol: JSON lines on stdout prefixed `@@weft ` (`ready`, `done`/`sent`, `report`, `error`); anything
 * else on stdout/stderr is log. Commands on stdin: `report` (print the current report), `exit`.
 */
import { CongestionControl, Identity, Limits, LinkSecure, Path, Streams, Transport } from "@weft/core"
import type { Link } from "@weft/core"
import { TransportUdp } from "@weft/transport-udp"
import { Effect, Schedule, Stream } from "effect"
import { createHash, type Hash } from "node:crypto"
import { createInterface } from "node:readline"
import { type StreamPayload, streamPayload } from "./payload.js"

/** The line prefix that marks a protocol message on stdout. */
export const messagePrefix = "@@weft "

interface Options {
  readonly role: "send" | "receive"
  readonly host: string
  readonly port: number
  readonly psk: Uint8Array
  readonly seed: number
  readonly streams: number
  readonly bytes: number
  readonly frameMax: number
  readonly to: string | undefined
}

const parseOptions = (argv: ReadonlyArray<string>): Options => {
  const [role, ...rest] = argv
  if (role !== "send" && role !== "receive") throw new Error(`peer: first argument must be send or receive, not ${role}`)
  const flags = new Map<string, string>()
  for (let i = 0; i < rest.length; i += 2) flags.set(rest[i]!.replace(/^--/, ""), rest[i + 1] ?? "")
  const need = (name: string): string => {
    const value = flags.get(name)
    if (value === undefined || value === "") throw new Error(`peer: --${name} is required`)
    return value
  }
  return {
    role,
    host: need("host"),
    port: Number(need("port")),
    psk: new Uint8Array(Buffer.from(need("psk"), "hex")),
    seed: Number(need("seed")),
    streams: Number(need("streams")),
    bytes: Number(need("bytes")),
    frameMax: Number(need("frame-max")),
    to: role === "send" ? need("to") : flags.get("to")
  }
}

const emit = (message: object): void => void process.stdout.write(`${messagePrefix}${JSON.stringify(message)}\n`)

const limitsLayer = Limits.layer()

/** A secure link on a UDP socket bound to this namespace's address. */
const secureLink = (options: Options) =>
  Effect.gen(function*() {
    const endpoint = yield* TransportUdp.make({
      host: options.host,
      port: options.port,
      recvBufferBytes: 4 << 20,
      sendBufferBytes: 4 << 20
    }).pipe(Effect.provide(limitsLayer), Effect.orDie)
    return yield* LinkSecure.make({ psk: options.psk }).pipe(
      Effect.provideService(Transport.Transport, endpoint),
      Effect.provideService(Identity.NodeIdentity, Identity.generate()),
      Effect.provide(limitsLayer)
    )
  })

/** The stream connection `LinkReliable` would put on `session`, with its stats in reach. */
const connectionOver = (session: Link.Session) =>
  Streams.make({ data: Path.fromSession(session, session.mtuBytes) }).pipe(
    Effect.provide(limitsLayer),
    Effect.provide(CongestionControl.layer)
  )

const payloads = (options: Options): ReadonlyArray<StreamPayload> =>
  Array.from({ length: options.streams }, (_, i) => streamPayload(options.seed, i + 1, options.bytes, options.frameMax))

/** Runs `onCommand` for each stdin line; stdin closing or `exit` ends the process. */
const commands = (onCommand: (command: string) => void): void => {
  const lines = createInterface({ input: process.stdin })
  lines.on("line", (line) => {
    const command = line.trim()
    if (command === "exit") process.exit(0)
    onCommand(command)
  })
  lines.on("close", () => process.exit(0))
}

// ---------------------------------------------------------------------------------------------------
// The receiver

/** What the receiver saw on one stream. */
interface Check {
  readonly payload: StreamPayload
  frames: number
  bytes: number
  /** Bytes delivered past the end of the payload: a duplicate, or data never sent. */
  extraBytes: number
  extraFrames: number
  readonly hash: Hash
  readonly errors: Array<string>
}

const errorsKeptMax = 8

const fail = (check: Check, error: string): void => {
  if (check.errors.length < errorsKeptMax) check.errors.push(error)
}

/** Checks one delivered frame: it must be the next frame of the payload, byte for byte. */
const accept = (check: Check, frame: Uint8Array): void => {
  const { bytes, frameLengths } = check.payload
  const index = check.frames++
  if (index >= frameLengths.length) {
    check.extraFrames++
    check.extraBytes += frame.length
    return fail(check, `frame ${index} (${frame.length} B) after the last one`)
  }
  if (frame.length !== frameLengths[index]) fail(check, `frame ${index}: ${frame.length} B, expected ${frameLengths[index]}`)
  const expected = bytes.subarray(check.bytes, check.bytes + frame.length)
  if (Buffer.compare(frame, expected) !== 0) fail(check, `frame ${index}: bytes differ from offset ${check.bytes}`)
  check.hash.update(frame)
  check.bytes += frame.length
}

const complete = (check: Check): boolean => check.frames >= check.payload.frameLengths.length

const checkReport = (check: Check) => ({
  stream: check.payload.stream,
  frames: check.frames,
  framesExpected: check.payload.frameLengths.length,
  bytes: check.bytes,
  bytesExpected: check.payload.bytes.length,
  extraFrames: check.extraFrames,
  extraBytes: check.extraBytes,
  // Of everything in order so far; a copy, so the running hash can go on.
  sha256: check.hash.copy().digest("hex"),
  errors: check.errors
})

const receive = (options: Options) =>
  Effect.gen(function*() {
    const link = yield* secureLink(options)
    const checks = new Map<number, Check>(payloads(options).map((payload) => [payload.stream, {
      payload, frames: 0, bytes: 0, extraBytes: 0, extraFrames: 0, hash: createHash("sha256"), errors: []
    }]))
    const unknown = { frames: 0, streams: new Set<number>() }
    const started = performance.now()
    let stats: Effect.Effect<Streams.Stats | undefined> = Effect.succeed(undefined)
    const report = Effect.gen(function*() {
      emit({
        type: "report",
        streams: [...checks.values()].map(checkReport),
        unknownFrames: unknown.frames,
        unknownStreams: [...unknown.streams],
        stats: yield* stats,
        link: yield* link.stats,
        security: yield* link.security
      })
    })
    commands((command) => {
      if (command === "report") Effect.runFork(report)
    })
    emit({ type: "ready", address: link.address })
    const session = yield* Stream.runHead(link.sessions).pipe(Effect.flatten, Effect.orDieWith(() => "no session"))
    const connection = yield* connectionOver(session)
    stats = connection.stats
    let done = false
    yield* Stream.runForEach(connection.frames, ({ frame, stream }) =>
      Effect.sync(() => {
        const check = checks.get(stream)
        if (check === undefined) {
          unknown.frames++
          unknown.streams.add(stream)
          return
        }
        accept(check, frame)
        if (!done && [...checks.values()].every(complete)) {
          done = true
          emit({ type: "done", elapsedMs: performance.now() - started })
        }
      }))
    return yield* Effect.never
  })

// ---------------------------------------------------------------------------------------------------
// The sender

const writeStream = (connection: Streams.Connection, payload: StreamPayload) =>
  Effect.gen(function*() {
    let offset = 0
    for (const length of payload.frameLengths) {
      yield* connection.send(payload.stream, payload.bytes.subarray(offset, offset + length))
      offset += length
    }
  })

/** Waits until the peer has acknowledged everything written. */
const drained = (connection: Streams.Connection) =>
  connection.stats.pipe(
    Effect.filterOrFail((s) => s.sendBufferedBytes === 0 && s.bytesInFlight === 0, () => "not yet"),
    Effect.retry(Schedule.spaced("20 millis"))
  )

const send = (options: Options) =>
  Effect.gen(function*() {
    const link = yield* secureLink(options)
    const all = payloads(options)
    let stats: Effect.Effect<Streams.Stats | undefined> = Effect.succeed(undefined)
    commands((command) => {
      if (command === "report") Effect.runFork(Effect.flatMap(stats, (s) => Effect.sync(() => emit({ type: "report", stats: s }))))
    })
    emit({ type: "ready", address: link.address })
    const started = performance.now()
    // A handshake is several cells; under heavy loss a whole dial (5 attempts) can fail: dial again.
    const session = yield* link.dial(options.to!).pipe(Effect.retry({ times: 3 }))
    const handshakeMs = performance.now() - started
    const connection = yield* connectionOver(session)
    stats = connection.stats
    yield* Effect.forEach(all, (payload) => writeStream(connection, payload), { concurrency: "unbounded", discard: true })
    yield* drained(connection)
    emit({
      type: "sent",
      handshakeMs,
      elapsedMs: performance.now() - started,
      streams: all.map((p) => ({ stream: p.stream, frames: p.frameLengths.length, bytes: p.bytes.length, sha256: p.sha256 })),
      stats: yield* connection.stats,
      link: yield* link.stats,
      security: yield* link.security
    })
    return yield* Effect.never
  })

const main = (): void => {
  let options: Options
  try {
    options = parseOptions(process.argv.slice(2))
  } catch (error) {
    emit({ type: "error", message: String(error) })
    process.exit(2)
  }
  const program = options.role === "send" ? send(options) : receive(options)
  Effect.runPromise(Effect.scoped(program)).catch((error) => {
    emit({ type: "error", message: String(error) })
    process.exit(1)
  })
}

main()
