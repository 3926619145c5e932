/**
 * `npm run bench:compare [-- --json] [-- --seconds S]` (or `npx tsx bench/compare.ts`): Weft against
 * js-libp2p 3.3.11 (TCP + Noise + Yamux) and node-datachannel 0.33.4, each side as two OS processes on
 * 127.0.0.1 (a forked server and a forked client per stack, all children of this orchestrator), 3 reps
 * interleaved in one run with the order rotated each rep, medians and per-rep ratios (Weft ÷ baseline).
 *
 * 1. bulk goodput, counted by the receiver on its clock: Weft session, 16 KiB frames on one stream;
 *    node-datachannel, 16 KiB messages on a reliable ordered channel; libp2p, 64 KiB chunks on one stream.
 * 2. 32-byte round trips/s on one long-lived stream (all three); and a new stream per request (Weft: a
 *    stream number not used by the previous ~250 requests; libp2p: open, multistream-select, 32 B, read
 *    the echo, close).
 * 3. dial → session on loopback from a fresh client each time, median of 20 per rep (Weft vs libp2p).
 * 4. Effect RPC `Echo` (32 characters), sequential calls/s, over a Weft session vs @effect/rpc over TCP.
 *
 * Table (or JSON lines with `--json`) on stdout, progress on stderr. See bench/README.md.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { randomBytes } from "node:crypto"
import * as Os from "node:os"
import { type Cpu, type Peer, spawn } from "./child.js"
import { median, met, print, type Row, row } from "./report.js"
import type { Count } from "./roles/measure.js"

const usage = "usage: npx tsx bench/compare.ts [--json] [--seconds S]"

const reps = 3
const handshakesPerRep = 20
const handshakesWarmup = 2

/** Command-line options. */
interface Options {
  readonly seconds: number
  readonly json: boolean
}

const progress = (text: string): void => void process.stderr.write(`${text}\n`)

const parseOptions = (args: ReadonlyArray<string>): Options => {
  let seconds = 3
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

/** The two processes of one stack. */
interface Pair {
  readonly server: Peer
  readonly client: Peer
}

// ---------------------------------------------------------------------------------------------------
// Measurements

/** Waits (bounded) until the receiver's count stops moving, so one measurement does not spill into the next. */
const settle = (server: Peer) =>
  Effect.gen(function*() {
    let last = yield* server.call<Count>("count")
    for (let attempt = 0; attempt < 30; attempt++) {
      yield* Effect.sleep("100 millis")
      const now = yield* server.call<Count>("count")
      if (now.bytes === last.bytes) return
      last = now
    }
  })

/** How long a timed op may take before the run is declared hung. */
const opTimeoutMs = (seconds: number): number => seconds * 1000 + 60_000

/** Runs `measure` and reports both processes' CPU over it (CPU-bound or waiting?). */
const withCpu = <A>(pair: Pair, measure: Effect.Effect<A>): Effect.Effect<A> =>
  Effect.gen(function*() {
    const [client, server] = yield* Effect.all([pair.client.call<Cpu>("cpu"), pair.server.call<Cpu>("cpu")])
    const result = yield* measure
    const [clientAfter, serverAfter] = yield* Effect.all([pair.client.call<Cpu>("cpu"), pair.server.call<Cpu>("cpu")])
    const percent = (before: Cpu, after: Cpu) => (((after.cpuMs - before.cpuMs) / (after.atMs - before.atMs)) * 100).toFixed(0)
    progress(`    ${pair.client.role} CPU ${percent(client, clientAfter)} %, ${pair.server.role} CPU ${percent(server, serverAfter)} %`)
    return result
  })

/** Payload MB/s the server counted while the client sent for `seconds`, on the server's clock. */
const goodput = (pair: Pair, seconds: number): Effect.Effect<number> =>
  Effect.gen(function*() {
    const [before, after] = yield* withCpu(pair, Effect.all([
      pair.server.call<Count>("count"),
      pair.client.call<number>("bulk", seconds, opTimeoutMs(seconds)),
      pair.server.call<Count>("count")
    ]).pipe(Effect.map(([before, _, after]) => [before, after] as const)))
    yield* settle(pair.server)
    return (after.bytes - before.bytes) / ((after.atMs - before.atMs) / 1000) / 1e6
  })

/** A rate the client measures itself (round trips, requests or calls per second). */
const rate = (pair: Pair, op: string, seconds: number): Effect.Effect<number> =>
  withCpu(pair, pair.client.call<number>(op, seconds, opTimeoutMs(seconds)))

const handshakeMedian = (peer: Peer, count: number): Effect.Effect<number> =>
  Effect.map(peer.call<ReadonlyArray<number>>("handshakes", count), (times) => {
    progress(`    ${peer.role}: ${times.map((t) => t.toFixed(1)).join(" ")} ms`)
    return median(times)
  })

/** Each subject once per rep, the order rotated every rep; per-subject values in rep order. */
const interleave = <K extends string>(name: string, unit: string, subjects: Record<K, Effect.Effect<number>>) =>
  Effect.gen(function*() {
    const keys = Object.keys(subjects) as Array<K>
    // Other tenants' load shows up as noise: say how busy the machine was (2 cores here).
    progress(`  (load average ${Os.loadavg()[0]!.toFixed(2)})`)
    const values = Object.fromEntries(keys.map((k) => [k, [] as Array<number>])) as Record<K, Array<number>>
    for (let rep = 0; rep < reps; rep++) {
      const order = keys.map((_, i) => keys[(i + rep) % keys.length]!)
      for (const key of order) {
        const value = yield* subjects[key]
        values[key].push(value)
        progress(`  ${name} rep ${rep + 1} ${key}: ${value.toFixed(1)} ${unit}`)
      }
    }
    return values
  })

/** One untimed short run of each subject: JIT, connection windows and caches warm before rep 1. */
const warm = (subjects: ReadonlyArray<Effect.Effect<unknown>>) => Effect.forEach(subjects, (s) => s, { discard: true })

// ---------------------------------------------------------------------------------------------------
// Sections

const spawnPairs = (psk: string) =>
  Effect.gen(function*() {
    const [weftServer, libp2pServer, ndcServer] = yield* Effect.all([
      spawn("weft-server", { psk }),
      spawn("libp2p-server"),
      spawn("ndc-server")
    ], { concurrency: "unbounded" })
    const [weftClient, libp2pClient, ndcClient] = yield* Effect.all([
      spawn("weft-client", { psk, address: weftServer.info.address }),
      spawn("libp2p-client", { address: libp2pServer.info.address }),
      spawn("ndc-client", {}, ndcServer)
    ], { concurrency: "unbounded" })
    progress(`  node-datachannel: channels open in ${Number(ndcClient.info.connectMs).toFixed(1)} ms, pair ${String(ndcClient.info.pair)}`)
    return {
      weft: { server: weftServer, client: weftClient },
      libp2p: { server: libp2pServer, client: libp2pClient },
      ndc: { server: ndcServer, client: ndcClient }
    }
  })

/** Rows 1–3: bulk, round trips, new stream per request, handshakes. */
const transports = (options: Options, psk: string): Effect.Effect<Array<Row>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const s = options.seconds
    const warmup = Math.min(1, s)
    progress("starting Weft, libp2p and node-datachannel peers")
    const { weft, libp2p, ndc } = yield* spawnPairs(psk)

    progress("bulk goodput")
    yield* warm([goodput(weft, warmup), goodput(ndc, warmup), goodput(libp2p, warmup)])
    const bulk = yield* interleave("bulk", "MB/s", { weft: goodput(weft, s), ndc: goodput(ndc, s), libp2p: goodput(libp2p, s) })

    progress("round trips, one stream")
    yield* warm([rate(weft, "rr", warmup), rate(ndc, "rr", warmup), rate(libp2p, "rr", warmup)])
    const rr = yield* interleave("rr", "rt/s", {
      weft: rate(weft, "rr", s),
      ndc: rate(ndc, "rr", s),
      libp2p: rate(libp2p, "rr", s)
    })

    progress("round trips, a new stream per request")
    yield* warm([rate(weft, "newStream", warmup), rate(libp2p, "newStream", warmup)])
    const fresh = yield* interleave("new stream", "req/s", {
      weft: rate(weft, "newStream", s),
      libp2p: rate(libp2p, "newStream", s)
    })

    progress("dial → session, fresh client each time")
    yield* warm([handshakeMedian(weft.client, handshakesWarmup), handshakeMedian(libp2p.client, handshakesWarmup)])
    const dial = yield* interleave("dial", "ms", {
      weft: handshakeMedian(weft.client, handshakesPerRep),
      libp2p: handshakeMedian(libp2p.client, handshakesPerRep)
    })

    return [
      row({ bench: "bulk: Weft 16 KiB frames vs ndc 16 KiB msgs", metric: "goodput", unit: "MB/s", baselineName: "node-datachannel", target: 1.2 }, bulk.weft, bulk.ndc),
      row({ bench: "bulk: Weft 16 KiB frames vs libp2p 64 KiB", metric: "goodput", unit: "MB/s", baselineName: "libp2p TCP+noise+yamux" }, bulk.weft, bulk.libp2p),
      row({ bench: "32 B round trips, one stream vs libp2p", metric: "round_trips", unit: "rt/s", baselineName: "libp2p" }, rr.weft, rr.libp2p),
      row({ bench: "32 B round trips, one stream vs ndc", metric: "round_trips", unit: "rt/s", baselineName: "node-datachannel" }, rr.weft, rr.ndc),
      row({ bench: "new stream per 32 B request vs libp2p", metric: "requests", unit: "req/s", baselineName: "libp2p", target: 5 }, fresh.weft, fresh.libp2p),
      row({ bench: "dial → session, lower is better", metric: "dial_ms", unit: "ms", baselineName: "libp2p dial+noise+yamux" }, dial.weft, dial.libp2p)
    ]
  })

/** Row 4: Effect RPC over a Weft session vs over TCP. */
const rpc = (options: Options, psk: string): Effect.Effect<Array<Row>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const s = options.seconds
    progress("starting the RPC nodes and the RPC TCP peers")
    const [sessionServer, tcpServer] = yield* Effect.all([
      spawn("rpc-session-server", { psk }),
      spawn("rpc-tcp-server")
    ], { concurrency: "unbounded" })
    const [sessionClient, tcpClient] = yield* Effect.all([
      spawn("rpc-session-client", { psk, address: sessionServer.info.address, id: sessionServer.info.id }),
      spawn("rpc-tcp-client", { port: tcpServer.info.port })
    ], { concurrency: "unbounded" })
    const session: Pair = { server: sessionServer, client: sessionClient }
    const tcp: Pair = { server: tcpServer, client: tcpClient }
    progress("Effect RPC, sequential Echo calls")
    yield* warm([rate(session, "calls", Math.min(1, s)), rate(tcp, "calls", Math.min(1, s))])
    const calls = yield* interleave("rpc", "calls/s", { session: rate(session, "calls", s), tcp: rate(tcp, "calls", s) })
    return [
      row({ bench: "Effect RPC Echo: Weft session vs TCP", metric: "rpc_calls", unit: "calls/s", baselineName: "@effect/rpc socket, TCP", target: 0.7 }, calls.session, calls.tcp)
    ]
  })

const main = (options: Options) =>
  Effect.gen(function*() {
    const psk = randomBytes(32).toString("hex")
    const started = performance.now()
    progress(`weft bench compare: ${reps} reps of ${options.seconds} s per measurement`)
    // Each section's processes end with its scope, before the next section starts.
    const first = yield* Effect.scoped(transports(options, psk))
    const second = yield* Effect.scoped(rpc(options, psk))
    const rows = [...first, ...second]
    progress(`done in ${((performance.now() - started) / 1000).toFixed(0)} s`)
    print(rows, options.json)
    const missed = rows.filter((r) => !met(r)).map((r) => r.bench)
    if (missed.length > 0) progress(`targets missed: ${missed.join("; ")}`)
  })

const run = (): void => {
  let options: Options
  try {
    options = parseOptions(process.argv.slice(2))
  } catch (error) {
    progress(error instanceof Error ? error.message : String(error))
    process.exit(2)
  }
  Effect.runPromise(main(options)).then(() => process.exit(0), (error) => {
    progress(`compare bench failed: ${error instanceof Error ? error.message : String(error)}`)
    process.exit(1)
  })
}

run()
