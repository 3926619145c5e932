/**
 * `npx tsx packages/transport-udp/bench/session.ts [--json] [--seconds S]`: one secure, reliable session
 * (`LinkReliable` over `LinkSecure` over UDP on 127.0.0.1) between two processes, against raw
 * `node:dgram` between the same two processes, interleaved rep by rep (3 reps, medians and per-rep ratios).
 *
 * 1. bulk goodput: 16 KiB frames on one stream for S seconds (default 5), payload MB/s counted by the
 *    receiver; baseline a connected-socket blast of 1200-byte datagrams (64 per `setImmediate`).
 * 2. round trips/s: one 32-byte frame in flight on a stream; baseline a raw 32-byte UDP ping-pong.
 * 3. handshake: dial → session on loopback, median of 20 (real X-Wing and ML-DSA-65 on both sides).
 * 4. memory per idle session: the receiver accepts N = 200 reliable sessions from N links on N sockets;
 *    its heap delta after a full GC, divided by N, measured after 20 warm-up sessions (so the code an
 *    idle session runs, compiled once per process, is not charged per session).
 *
 * The receiver is a child process (this file with `--peer`) that counts bytes and echoes small frames
 * and datagrams; the byte counts are sampled in the child, on its clock, over IPC. Report on stdout
 * (a table, or JSON lines `{"bench","metric","value","unit","baseline","ratio","target"}` plus the
 * per-rep `ratios`), progress on stderr.
 */
import { Identity, Limits, LinkSecure, Transport } from "@weft/core"
import type { Link } from "@weft/core"
import { Effect, Exit, Scope, Stream } from "effect"
import type { ChildProcess } from "node:child_process"
import { randomBytes } from "node:crypto"
import dgram from "node:dgram"
import { readFileSync } from "node:fs"
import { TransportUdp } from "../src/index.js"
import { answers } from "./answers.js"
import { secureNode } from "./secureNode.js"
import * as Child from "./child.js"

const usage = "usage: npx tsx packages/transport-udp/bench/session.ts [--json] [--seconds S]"

const reps = 3
const bulkFrameBytes = 16 * 1024
const datagramBytes = 1200
const pingBytes = 32
// Frames up to this size are echoed by the receiver; bulk frames are only counted.
const echoBytesMax = 64
const handshakes = 20
const idleSessions = 200
// Sessions opened before the first memory sample: the code an idle session runs (JIT-compiled once per
// process, not per session) must not be charged to the measured ones.
const warmupSessions = 20
const bulkStream = 1
const pingStream = 2

/** Command-line options. */
interface Options {
  readonly seconds: number
  readonly json: boolean
}

/** The receiver's counters, read on its own clock. */
interface Count {
  readonly sessionBytes: number
  readonly udpBytes: number
  readonly atMs: number
  /** The receiver's CPU time (user + system), to tell CPU-bound from waiting. */
  readonly cpuMs: number
}

/** The receiver's memory after a full GC, and how many sessions it holds. */
interface Memory {
  readonly heapUsedBytes: number
  readonly arrayBuffersBytes: number
  readonly sessions: number
  /** Handshake residue that is not a session but counts in the heap delta. */
  readonly replayCacheEntries: number
  readonly handshakes: number
}

type FromPeer =
  | { readonly type: "ready"; readonly address: string; readonly bulkPort: number; readonly echoPort: number }
  | { readonly type: "count"; readonly count: Count }
  | { readonly type: "memory"; readonly memory: Memory }
type ToPeer = { readonly type: "count" } | { readonly type: "memory" } | { readonly type: "exit" }

const progress = (text: string): void => void process.stderr.write(`${text}\n`)

const parseOptions = (args: ReadonlyArray<string>): Options => {
  let seconds = 5
  let json = false
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (arg === "--json") json = true
    else if (arg === "--seconds") {
      seconds = Number(args[++i])
      if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`--seconds needs a positive number\n${usage}`)
    } else throw new Error(`unknown option ${arg}\n${usage}`)
  }
  return { seconds, json }
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}


// ---------------------------------------------------------------------------------------------------
// The receiver (child process)

const counters = { sessionBytes: 0, udpBytes: 0 }

/**
 * Counts bulk frames, echoes small ones back on the same stream number. It reads with `receive`, as a
 * node's message layer does (plain code per frame, no Stream stages); an echo is sent from its own fiber.
 */
const serveSession = (session: Link.Session) =>
  session.receive((frame) => {
    if (frame.length > echoBytesMax) counters.sessionBytes += frame.length
    else Effect.runFork(Effect.ignore(session.send(frame, { stream: pingStream })))
  })

const bindUdp = (onMessage: (socket: dgram.Socket, message: Buffer, remote: dgram.RemoteInfo) => void) =>
  Effect.acquireRelease(
    Effect.async<dgram.Socket>((resume) => {
      const socket = dgram.createSocket({ type: "udp4", recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 })
      socket.on("message", (message, remote) => onMessage(socket, message, remote))
      socket.bind(0, "127.0.0.1", () => resume(Effect.succeed(socket)))
    }),
    (socket) => Effect.sync(() => socket.close())
  )

const cpuMs = (): number => {
  const used = process.cpuUsage()
  return (used.user + used.system) / 1000
}

const memoryOf = (secure: LinkSecure.Service): Memory => {
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  gc?.()
  const memory = process.memoryUsage()
  const tables = Effect.runSync(secure.tables)
  return {
    heapUsedBytes: memory.heapUsed,
    arrayBuffersBytes: memory.arrayBuffers,
    sessions: tables.sessions,
    replayCacheEntries: tables.replayCacheEntries,
    handshakes: tables.handshakes
  }
}

const peer = (pskHex: string) =>
  Effect.scoped(Effect.gen(function*() {
    const { link, secure } = yield* secureNode(Buffer.from(pskHex, "hex"), Identity.generate())
    yield* link.sessions.pipe(
      Stream.runForEach((session) => Effect.forkScoped(serveSession(session))),
      Effect.forkScoped
    )
    const bulk = yield* bindUdp((_, message) => {
      counters.udpBytes += message.length
    })
    const echo = yield* bindUdp((socket, message, remote) => socket.send(message, remote.port, remote.address))
    const send = (message: FromPeer) => process.send?.(message)
    return yield* Effect.async<void>((resume) => {
      process.on("message", (message: ToPeer) => {
        if (message.type === "count") send({ type: "count", count: { ...counters, atMs: performance.now(), cpuMs: cpuMs() } })
        else if (message.type === "memory") send({ type: "memory", memory: memoryOf(secure) })
        else resume(Effect.void)
      })
      process.on("disconnect", () => resume(Effect.void))
      send({ type: "ready", address: link.address, bulkPort: bulk.address().port, echoPort: echo.address().port })
    })
  }))

// ---------------------------------------------------------------------------------------------------
// The sender (this process)

/** The receiver child and its IPC requests. */
interface Peer {
  readonly address: string
  readonly bulkPort: number
  readonly echoPort: number
  readonly count: Effect.Effect<Count>
  readonly memory: Effect.Effect<Memory>
}

const nextMessage = (child: ChildProcess): Effect.Effect<FromPeer> => Child.nextMessage<FromPeer>(child)

const request = <A>(child: ChildProcess, message: ToPeer, pick: (answer: FromPeer) => A | undefined) =>
  Effect.suspend(() => {
    child.send(message)
    return nextMessage(child)
  }).pipe(Effect.flatMap((answer) => {
    const value = pick(answer)
    return value === undefined ? Effect.dieMessage(`unexpected answer to ${message.type}`) : Effect.succeed(value)
  }))

const spawnPeer = (psk: Uint8Array): Effect.Effect<Peer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const child = yield* Child.forkSelf(import.meta.url, ["--peer", Buffer.from(psk).toString("hex")], { type: "exit" } satisfies ToPeer)
    const ready = yield* nextMessage(child)
    if (ready.type !== "ready") return yield* Effect.dieMessage("the receiver did not start")
    return {
      address: ready.address,
      bulkPort: ready.bulkPort,
      echoPort: ready.echoPort,
      count: request(child, { type: "count" }, (a) => a.type === "count" ? a.count : undefined),
      memory: request(child, { type: "memory" }, (a) => a.type === "memory" ? a.memory : undefined)
    }
  })

const connectUdp = (port: number) =>
  Effect.acquireRelease(
    Effect.async<dgram.Socket>((resume) => {
      const socket = dgram.createSocket({ type: "udp4", sendBufferSize: 4 << 20, recvBufferSize: 4 << 20 })
      socket.connect(port, "127.0.0.1", () => resume(Effect.succeed(socket)))
    }),
    (socket) => Effect.sync(() => socket.close())
  )

/** Payload MB/s the receiver counted while `send` ran, on the receiver's clock. */
const goodput = (peer: Peer, field: "sessionBytes" | "udpBytes", send: Effect.Effect<void>) =>
  Effect.gen(function*() {
    const before = yield* peer.count
    yield* send
    const after = yield* peer.count
    progress(`    receiver: CPU ${(((after.cpuMs - before.cpuMs) / (after.atMs - before.atMs)) * 100).toFixed(0)} %`)
    yield* settle(peer)
    return (after[field] - before[field]) / ((after.atMs - before.atMs) / 1000) / 1e6
  })

/** Waits (bounded) until the receiver's counts stop moving, so one measurement does not spill into the next. */
const settle = (peer: Peer) =>
  Effect.gen(function*() {
    let last = yield* peer.count
    for (let attempt = 0; attempt < 30; attempt++) {
      yield* Effect.sleep("100 millis")
      const now = yield* peer.count
      if (now.sessionBytes === last.sessionBytes && now.udpBytes === last.udpBytes) return
      last = now
    }
  })

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

const sessionBulk = (session: Link.Session, stats: Effect.Effect<Link.Stats>, seconds: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    const frame = new Uint8Array(randomBytes(bulkFrameBytes))
    const statsBefore = yield* stats
    const drops = rcvbufErrors()
    const cpu = process.cpuUsage()
    const start = performance.now()
    let frames = 0
    while (performance.now() - start < seconds * 1000) {
      yield* session.send(frame, { stream: bulkStream })
      frames++
    }
    const used = process.cpuUsage(cpu)
    const statsAfter = yield* stats
    const elapsed = performance.now() - start
    progress(
      `    sender: ${frames} frames admitted, ${statsAfter.framesSent - statsBefore.framesSent} cells sent, ` +
        `${statsAfter.framesReceived - statsBefore.framesReceived} received (acks), ` +
        `CPU ${(((used.user + used.system) / 1000 / elapsed) * 100).toFixed(0)} %, ` +
        `kernel RcvbufErrors +${rcvbufErrors() - drops}`
    )
  }).pipe(Effect.orDie)

// As in perf-baselines §1: a connected socket, `send` without a callback, 64 per turn, queue ≤ 256.
const udpBlast = (socket: dgram.Socket, seconds: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const datagram = randomBytes(datagramBytes)
    const end = performance.now() + seconds * 1000
    const turn = () => {
      if (performance.now() >= end) return resume(Effect.void)
      if (socket.getSendQueueCount() <= 256) for (let i = 0; i < 64; i++) socket.send(datagram)
      setImmediate(turn)
    }
    turn()
  })

/** Round trips per second of one 32-byte frame in flight; `answered` resolves on the next echo. */
const sessionPingPong = (session: Link.Session, answered: Effect.Effect<void>, seconds: number) =>
  Effect.gen(function*() {
    const ping = new Uint8Array(pingBytes)
    const start = performance.now()
    const end = start + seconds * 1000
    let trips = 0
    while (performance.now() < end) {
      yield* session.send(ping, { stream: pingStream })
      yield* answered
      trips++
    }
    return trips / ((performance.now() - start) / 1000)
  }).pipe(Effect.orDie, Effect.timeoutFail({ duration: seconds * 1000 + 10_000, onTimeout: () => "ping-pong stalled" }), Effect.orDie)

// A datagram lost on loopback would stall the loop: resend after 100 ms of silence (never fired in §1).
const udpPingPong = (socket: dgram.Socket, seconds: number): Effect.Effect<number> =>
  Effect.async<number>((resume) => {
    const ping = Buffer.alloc(pingBytes)
    const start = performance.now()
    const end = start + seconds * 1000
    let trips = 0
    let lastMs = start
    const onMessage = () => {
      trips++
      lastMs = performance.now()
      if (lastMs < end) return socket.send(ping)
      socket.off("message", onMessage)
      clearInterval(watchdog)
      resume(Effect.succeed(trips / ((lastMs - start) / 1000)))
    }
    const watchdog = setInterval(() => {
      if (performance.now() - lastMs > 100) socket.send(ping)
    }, 100)
    socket.on("message", onMessage)
    socket.send(ping)
  })

/** One measured case: the subject and its baseline, interleaved rep by rep. */
interface Row {
  readonly bench: string
  readonly metric: string
  readonly value: number
  readonly unit: string
  readonly baseline?: number | undefined
  readonly baselineName?: string | undefined
  readonly ratios?: ReadonlyArray<number> | undefined
  /** The ratio to reach (`>=`), or the most the value may be (`<=`). */
  readonly target?: number | undefined
  readonly direction?: ">=" | "<=" | undefined
}

const interleaved = (
  spec: { bench: string; metric: string; unit: string; baselineName: string; target: number },
  subject: Effect.Effect<number>,
  baseline: Effect.Effect<number>
) =>
  Effect.gen(function*() {
    const values: Array<number> = []
    const baselines: Array<number> = []
    const ratios: Array<number> = []
    for (let rep = 0; rep < reps; rep++) {
      const value = yield* subject
      const base = yield* baseline
      values.push(value)
      baselines.push(base)
      ratios.push(value / base)
      progress(`  ${spec.bench} rep ${rep + 1}: ${value.toFixed(1)} vs ${base.toFixed(1)} ${spec.unit} (ratio ${(value / base).toFixed(3)})`)
    }
    return {
      ...spec,
      value: median(values),
      baseline: median(baselines),
      ratios,
      direction: ">="
    } satisfies Row
  })

const handshakeTimes = (psk: Uint8Array, address: string) =>
  Effect.scoped(Effect.gen(function*() {
    // A raw secure link: the handshake alone, without the stream connection the reliable wrap adds.
    const endpoint = yield* TransportUdp.make({}).pipe(Effect.provide(Limits.layer()), Effect.orDie)
    const link = yield* LinkSecure.make({ psk }).pipe(
      Effect.provideService(Transport.Transport, endpoint),
      Effect.provideService(Identity.NodeIdentity, Identity.generate()),
      Effect.provide(Limits.layer())
    )
    const times: Array<number> = []
    for (let i = 0; i < handshakes + 2; i++) {
      const start = performance.now()
      const session = yield* Effect.orDie(link.dial(address))
      const elapsed = performance.now() - start
      if (i >= 2) times.push(elapsed)
      yield* session.close
      yield* Effect.sleep("20 millis")
    }
    return times
  }))

const memoryPerSession = (psk: Uint8Array, peer: Peer) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    // A new identity per session (suspended: one identity would be one peer, hence one session).
    const dial = Effect.suspend(() => Scope.extend(secureNode(psk, Identity.generate()), scope)).pipe(
      Effect.flatMap((node) => Effect.orDie(node.link.dial(peer.address)))
    )
    yield* Effect.repeatN(dial, warmupSessions - 1)
    yield* Effect.sleep("500 millis")
    const before = yield* peer.memory
    const started = performance.now()
    yield* Effect.repeatN(dial, idleSessions - 1)
    progress(`  ${idleSessions} sessions dialed in ${((performance.now() - started) / 1000).toFixed(1)} s`)
    let after = yield* peer.memory
    for (let attempt = 0; attempt < 50 && after.sessions < before.sessions + idleSessions; attempt++) {
      yield* Effect.sleep("100 millis")
      after = yield* peer.memory
    }
    // Let accept-side work (stream connections, first acks) finish before the measured sample.
    yield* Effect.sleep("500 millis")
    after = yield* peer.memory
    yield* Scope.close(scope, Exit.void)
    const sessions = after.sessions - before.sessions
    progress(
      `  receiver: +${sessions} sessions, +${after.replayCacheEntries - before.replayCacheEntries} replay-cache entries, ` +
        `${after.handshakes} handshakes pending, heap ${(before.heapUsedBytes / 1e6).toFixed(1)} → ${(after.heapUsedBytes / 1e6).toFixed(1)} MB`
    )
    if (sessions !== idleSessions) progress(`  warning: the receiver holds ${sessions} new sessions, not ${idleSessions}`)
    return {
      sessions,
      heapPerSession: (after.heapUsedBytes - before.heapUsedBytes) / Math.max(1, sessions),
      arrayBuffersPerSession: (after.arrayBuffersBytes - before.arrayBuffersBytes) / Math.max(1, sessions)
    }
  })

// ---------------------------------------------------------------------------------------------------
// The report

const format = (value: number): string =>
  value >= 1e6 ? `${(value / 1e6).toFixed(2)}M` : value >= 1e3 ? `${(value / 1e3).toFixed(1)}k` : value.toFixed(1)

const met = (row: Row): boolean =>
  row.direction === "<=" ? row.value <= row.target! : median(row.ratios ?? []) >= row.target!

const print = (rows: ReadonlyArray<Row>, json: boolean): void => {
  if (json) {
    for (const r of rows) {
      const line: Record<string, unknown> = { bench: r.bench, metric: r.metric, value: Number(r.value.toFixed(2)), unit: r.unit }
      if (r.baseline !== undefined) line.baseline = Number(r.baseline.toFixed(2))
      if (r.ratios !== undefined) line.ratio = Number(median(r.ratios).toFixed(3))
      if (r.target !== undefined) line.target = r.target
      if (r.ratios !== undefined) line.ratios = r.ratios.map((x) => Number(x.toFixed(3)))
      console.log(JSON.stringify(line))
    }
    return
  }
  const cells = rows.map((r) => [
    r.bench,
    `${format(r.value)} ${r.unit}`,
    r.baseline === undefined ? "" : `${format(r.baseline)} (${r.baselineName})`,
    r.ratios === undefined ? "" : `${median(r.ratios).toFixed(2)} [${r.ratios.map((x) => x.toFixed(2)).join(", ")}]`,
    r.target === undefined ? "" : `${r.direction === "<=" ? "≤" : "≥"} ${r.target}${met(r) ? " ✓" : " ✗"}`
  ])
  const header = ["bench", "median", "same-run baseline", "ratio [per rep]", "target"]
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]!.length)))
  const line = (row: ReadonlyArray<string>) => `| ${row.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`
  console.log(line(header))
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`)
  for (const row of cells) console.log(line(row))
}

const sender = (options: Options) =>
  Effect.scoped(Effect.gen(function*() {
    const psk = new Uint8Array(randomBytes(LinkSecure.pskBytes))
    const seconds = options.seconds
    progress(`weft bench session: ${reps} reps of ${seconds} s per measurement`)
    const peer = yield* spawnPeer(psk)
    const node = yield* secureNode(psk, Identity.generate())
    const session = yield* Effect.orDie(node.link.dial(peer.address))
    const answered = yield* answers(session)
    const blaster = yield* connectUdp(peer.bulkPort)
    const pinger = yield* connectUdp(peer.echoPort)
    const warmup = Math.min(1, seconds)

    progress("bulk goodput")
    yield* goodput(peer, "sessionBytes", sessionBulk(session, node.link.stats, warmup))
    yield* goodput(peer, "udpBytes", udpBlast(blaster, warmup))
    const bulk = yield* interleaved(
      { bench: "session bulk 16 KiB frames", metric: "goodput", unit: "MB/s", baselineName: "raw UDP 1200 B", target: 0.4 },
      goodput(peer, "sessionBytes", sessionBulk(session, node.link.stats, seconds)),
      goodput(peer, "udpBytes", udpBlast(blaster, seconds))
    )

    progress("round trips")
    yield* sessionPingPong(session, answered, warmup)
    yield* udpPingPong(pinger, warmup)
    const rr = yield* interleaved(
      { bench: "session 32 B ping-pong", metric: "round_trips", unit: "rt/s", baselineName: "raw UDP ping-pong", target: 0.8 },
      sessionPingPong(session, answered, seconds),
      udpPingPong(pinger, seconds)
    )

    progress("handshakes")
    const times = yield* handshakeTimes(psk, peer.address)
    progress(`  ${times.map((t) => t.toFixed(1)).join(" ")} ms`)
    const handshake: Row = {
      bench: "handshake (dial → session)",
      metric: "handshake_ms",
      value: median(times),
      unit: "ms",
      target: 10,
      direction: "<="
    }

    progress("memory per idle session")
    const memory = yield* memoryPerSession(psk, peer)
    const heap: Row = {
      bench: `idle session heap (N = ${memory.sessions})`,
      metric: "heap_per_session",
      value: memory.heapPerSession / 1024,
      unit: "KiB",
      target: 64,
      direction: "<="
    }
    const buffers: Row = {
      bench: `idle session ArrayBuffers (N = ${memory.sessions})`,
      metric: "array_buffers_per_session",
      value: memory.arrayBuffersPerSession / 1024,
      unit: "KiB"
    }
    print([bulk, rr, handshake, heap, buffers], options.json)
  }))

const main = (): void => {
  const args = process.argv.slice(2)
  if (args[0] === "--peer") {
    Effect.runPromise(peer(args[1] ?? "")).then(() => process.exit(0), (error) => {
      progress(`receiver: ${error}`)
      process.exit(1)
    })
    return
  }
  let options: Options
  try {
    options = parseOptions(args)
  } catch (error) {
    progress(error instanceof Error ? error.message : String(error))
    process.exit(2)
  }
  Effect.runPromise(sender(options)).then(() => process.exit(0), (error) => {
    progress(`session bench failed: ${error}`)
    process.exit(1)
  })
}

main()
