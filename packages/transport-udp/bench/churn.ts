/**
 * `npm run bench:churn -- [--cycles N] [--seconds S] [--warmup N] [--json]`: connect/close churn against
 * a `LinkSecure` node over real UDP, between two processes.
 *
 * The victim is a child process (this file with `--victim`) listening on 127.0.0.1 with a PSK; the
 * churner (this process) reuses ONE identity and ONE socket, and dials, then closes, as fast as the
 * handshakes allow (real X-Wing and ML-DSA-65 on both sides). The victim reports its counters, tables
 * and memory after a full GC, before and after the measured cycles. The run stops at `--cycles`
 * (default 100,000) or after `--seconds` (default 540, so it ends within 10 minutes), whichever comes
 * first; the rate is what was measured. Report on stdout (a table, or JSON lines with `--json`),
 * progress on stderr.
 */
import { Identity, Limits, LinkSecure, Transport } from "@weft/core"
import type { Scope } from "effect"
import { Effect, Exit, Stream } from "effect"
import type { ChildProcess } from "node:child_process"
import { randomBytes } from "node:crypto"
import { TransportUdp } from "../src/index.js"
import * as Child from "./child.js"

const usage = "usage: npm run bench:churn -- [--cycles N] [--seconds S] [--warmup N] [--json]"

/** Command-line options. */
interface Options {
  readonly cycles: number
  readonly seconds: number
  readonly warmup: number
  readonly json: boolean
}

/** What the victim reports when asked. */
interface Sample {
  readonly rssBytes: number
  readonly heapUsedBytes: number
  readonly stats: { readonly sessionsOpened: number; readonly sessionsClosed: number; readonly handshakesFailed: number; readonly cellsRejected: number }
  readonly security: LinkSecure.SecurityStats
  readonly tables: LinkSecure.Tables
}

type FromVictim = { readonly type: "ready"; readonly address: string } | { readonly type: "sample"; readonly sample: Sample }
type ToVictim = { readonly type: "sample" } | { readonly type: "exit" }

const progress = (text: string): void => void process.stderr.write(`${text}\n`)

const positive = (flag: string, text: string | undefined): number => {
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${flag} needs a non-negative integer\n${usage}`)
  return value
}

const parseOptions = (args: ReadonlyArray<string>): Options => {
  let cycles = 100_000
  let seconds = 540
  let warmup: number | undefined
  let json = false
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (arg === "--json") json = true
    else if (arg === "--cycles") cycles = positive(arg, args[++i])
    else if (arg === "--seconds") seconds = positive(arg, args[++i])
    else if (arg === "--warmup") warmup = positive(arg, args[++i])
    else throw new Error(`unknown option ${arg}\n${usage}`)
  }
  return { cycles, seconds, warmup: warmup ?? Math.min(200, Math.ceil(cycles / 10)), json }
}

/** A `LinkSecure` over a fresh UDP socket on 127.0.0.1, with the default limits. */
const secureNode = (psk: Uint8Array, identity: Identity.Identity): Effect.Effect<LinkSecure.Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const endpoint = yield* TransportUdp.make({ recvBufferBytes: 4 << 20 }).pipe(Effect.provide(Limits.layer()), Effect.orDie)
    return yield* LinkSecure.make({ psk }).pipe(
      Effect.provideService(Transport.Transport, endpoint),
      Effect.provideService(Identity.NodeIdentity, identity),
      Effect.provide(Limits.layer())
    )
  })

// ---------------------------------------------------------------------------------------------------
// The victim process

const sampleOf = (link: LinkSecure.Service): Sample => {
  ;(globalThis as { gc?: () => void }).gc?.()
  const memory = process.memoryUsage()
  const stats = Effect.runSync(link.stats)
  return {
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    stats: {
      sessionsOpened: stats.sessionsOpened,
      sessionsClosed: stats.sessionsClosed,
      handshakesFailed: stats.handshakesFailed,
      cellsRejected: stats.cellsRejected
    },
    security: Effect.runSync(link.security),
    tables: Effect.runSync(link.tables)
  }
}

const victim = (pskHex: string) =>
  Effect.scoped(Effect.gen(function*() {
    const link = yield* secureNode(Buffer.from(pskHex, "hex"), Identity.generate())
    // Every accepted session is drained, as a node's message layer would.
    yield* link.sessions.pipe(
      Stream.runForEach((session) => Effect.forkScoped(Stream.runDrain(session.frames))),
      Effect.forkScoped
    )
    const send = (message: FromVictim) => process.send?.(message)
    const done = yield* Effect.async<void>((resume) => {
      process.on("message", (message: ToVictim) => {
        if (message.type === "sample") send({ type: "sample", sample: sampleOf(link) })
        else resume(Effect.void)
      })
      process.on("disconnect", () => resume(Effect.void))
      send({ type: "ready", address: link.address })
    })
    return done
  }))

// ---------------------------------------------------------------------------------------------------
// The churner

/** The victim child, and a request/answer over its IPC channel. */
interface Victim {
  readonly address: string
  readonly sample: Effect.Effect<Sample>
}

const nextMessage = (child: ChildProcess): Effect.Effect<FromVictim> => Child.nextMessage<FromVictim>(child)

const spawnVictim = (psk: Uint8Array): Effect.Effect<Victim, never, Scope.Scope> =>
  Effect.gen(function*() {
    const child = yield* Child.forkSelf(import.meta.url, ["--victim", Buffer.from(psk).toString("hex")], { type: "exit" } satisfies ToVictim)
    const ready = yield* nextMessage(child)
    if (ready.type !== "ready") return yield* Effect.dieMessage("the victim did not start")
    const sample = Effect.suspend(() => {
      child.send({ type: "sample" } satisfies ToVictim)
      return nextMessage(child)
    }).pipe(Effect.flatMap((message) => message.type === "sample" ? Effect.succeed(message.sample) : Effect.dieMessage("unexpected message")))
    return { address: ready.address, sample }
  })

interface Run {
  readonly cycles: number
  readonly failures: number
  readonly seconds: number
}

/** Dials and closes until `cycles` are done or `deadlineMs` has passed; a failed dial is counted and skipped. */
const churn = (link: LinkSecure.Service, address: string, cycles: number, deadlineMs: number, label: string) =>
  Effect.gen(function*() {
    const started = performance.now()
    let lastReport = started
    let failures = 0
    let done = 0
    while (done < cycles && Date.now() < deadlineMs) {
      const exit = yield* Effect.exit(link.dial(address))
      if (Exit.isSuccess(exit)) yield* exit.value.close
      else failures++
      done++
      const now = performance.now()
      if (now - lastReport >= 5_000) {
        lastReport = now
        progress(`  ${label}: ${done} cycles, ${(done / ((now - started) / 1000)).toFixed(1)}/s, ${failures} failed`)
      }
    }
    return { cycles: done, failures, seconds: (performance.now() - started) / 1000 } satisfies Run
  })

// ---------------------------------------------------------------------------------------------------
// The report

interface Row {
  readonly metric: string
  readonly value: number
  readonly unit: string
}

const megabytes = (bytes: number) => Math.round(bytes / 1e4) / 100

const rowsOf = (run: Run, before: Sample, after: Sample): ReadonlyArray<Row> => [
  { metric: "cycles", value: run.cycles, unit: "cycles" },
  { metric: "seconds", value: Math.round(run.seconds * 10) / 10, unit: "s" },
  { metric: "cycles_per_s", value: Math.round((run.cycles / run.seconds) * 10) / 10, unit: "1/s" },
  { metric: "dial_failures", value: run.failures, unit: "cycles" },
  { metric: "victim_rss_before", value: megabytes(before.rssBytes), unit: "MB" },
  { metric: "victim_rss_after", value: megabytes(after.rssBytes), unit: "MB" },
  { metric: "victim_rss_growth", value: megabytes(after.rssBytes - before.rssBytes), unit: "MB" },
  { metric: "victim_heap_before", value: megabytes(before.heapUsedBytes), unit: "MB" },
  { metric: "victim_heap_after", value: megabytes(after.heapUsedBytes), unit: "MB" },
  { metric: "victim_sessions_opened", value: after.stats.sessionsOpened - before.stats.sessionsOpened, unit: "sessions" },
  { metric: "victim_sessions_closed", value: after.stats.sessionsClosed - before.stats.sessionsClosed, unit: "sessions" },
  { metric: "victim_cells_rejected", value: after.stats.cellsRejected - before.stats.cellsRejected, unit: "cells" },
  { metric: "victim_handshakes_failed", value: after.stats.handshakesFailed - before.stats.handshakesFailed, unit: "handshakes" },
  {
    metric: "victim_handshakes_replayed",
    value: after.security.handshakesReplayed - before.security.handshakesReplayed,
    unit: "handshakes"
  },
  { metric: "victim_cookies_sent", value: after.security.cookiesSent - before.security.cookiesSent, unit: "cookies" },
  { metric: "victim_sessions_after", value: after.tables.sessions, unit: "sessions" },
  { metric: "victim_handshakes_after", value: after.tables.handshakes, unit: "handshakes" },
  { metric: "victim_replay_cache_after", value: after.tables.replayCacheEntries, unit: "entries" }
]

const print = (rows: ReadonlyArray<Row>, json: boolean): void => {
  if (json) {
    for (const row of rows) process.stdout.write(`${JSON.stringify({ bench: "churn", ...row })}\n`)
    return
  }
  const width = Math.max(...rows.map((row) => row.metric.length))
  process.stdout.write(`${"metric".padEnd(width)}  ${"value".padStart(12)}  unit\n`)
  for (const row of rows) process.stdout.write(`${row.metric.padEnd(width)}  ${String(row.value).padStart(12)}  ${row.unit}\n`)
}

/** Waits (bounded) until the victim holds no session and no handshake, then samples it. */
const settled = (victim: Victim) =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < 50; attempt++) {
      const sample = yield* victim.sample
      if (sample.tables.sessions === 0 && sample.tables.handshakes === 0) return sample
      yield* Effect.sleep("100 millis")
    }
    return yield* victim.sample
  })

const churner = (options: Options) =>
  Effect.scoped(Effect.gen(function*() {
    const deadlineMs = Date.now() + options.seconds * 1000
    const psk = new Uint8Array(randomBytes(LinkSecure.pskBytes))
    progress(`weft bench churn: up to ${options.cycles} cycles (warm-up ${options.warmup}), at most ${options.seconds} s`)
    const victim = yield* spawnVictim(psk)
    const link = yield* secureNode(psk, Identity.generate())
    progress(`victim at ${victim.address} (pid ${process.pid} churns)`)
    yield* churn(link, victim.address, options.warmup, deadlineMs, "warm-up")
    const before = yield* settled(victim)
    const run = yield* churn(link, victim.address, options.cycles, deadlineMs, "churn")
    if (run.cycles < options.cycles) progress(`time cap reached after ${run.cycles} of ${options.cycles} cycles`)
    const after = yield* settled(victim)
    print(rowsOf(run, before, after), options.json)
  }))

const main = (): void => {
  const args = process.argv.slice(2)
  if (args[0] === "--victim") {
    Effect.runPromise(victim(args[1] ?? "")).then(() => process.exit(0), (error) => {
      progress(`victim: ${error}`)
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
  Effect.runPromise(churner(options)).then(() => process.exit(0), (error) => {
    progress(`churn failed: ${error}`)
    process.exit(1)
  })
}

main()
