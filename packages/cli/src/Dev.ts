/**
 * `weft dev`: a local network of N nodes, each its own `weft node run` process over UDP, connected to
 * each other, printing a status line every second until Ctrl-C or until `--for` has elapsed. A node
 * process that dies is reported and the others run on. On the way out it stops every node process
 * (SIGTERM, then SIGKILL) and removes the temp data directory it made, so it exits 0 and leaves nothing.
 */
import { Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import { Cause, Clock, Console, Duration, Effect, Either, Exit, Option } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { CliError } from "./CliError.js"
import * as DevNetwork from "./DevNetwork.js"
import * as DevReport from "./DevReport.js"
import * as DurationText from "./DurationText.js"
import { Limits } from "./internal/core.js"
import * as TokenClient from "./internal/tokenClient.js"
import * as TokenDev from "./internal/tokenDev.js"
import * as Json from "./Json.js"
import { Account, Id } from "@weft/ledger"

const invalid = (message: string) => ValidationError.invalidValue(HelpDoc.p(message))

// Every node peers with every other, so the count is bounded by the peer table of one node.
const nodesMax = Limits.defaults.peersMax + 1

const nodes = Options.integer("nodes").pipe(
  Options.withDefault(4),
  Options.withDescription(`How many nodes to run (1 to ${nodesMax}).`),
  Options.mapEffect((n) =>
    n >= 1 && n <= nodesMax ? Effect.succeed(n) : Effect.fail(invalid(`--nodes must be between 1 and ${nodesMax}, got ${n}`))
  )
)

const duration = Options.text("for").pipe(
  Options.withPseudoName("DURATION"),
  Options.withDescription("Stop by itself after this long once the nodes are up: 5s, 2m, 500ms, \"5 seconds\"."),
  Options.mapEffect((text) => Either.match(DurationText.parse(text), { onLeft: (message) => Effect.fail(invalid(`--for: ${message}`)), onRight: Effect.succeed })),
  Options.optional
)

const data = Options.directory("data").pipe(
  Options.withDescription("Data directory; node i uses <data>/node-<i> (and its node.json, if any; its log goes to node.log there). Default: a fresh temp directory, removed on exit."),
  Options.optional
)

const json = Options.boolean("json").pipe(Options.withDescription("Print one JSON object per line (node, status, exited, stopped); logs go to stderr."))

// A fresh directory under the system temp dir, kept short because unix socket paths must be < 108 bytes.
const tempDataDir = Effect.acquireRelease(
  Effect.try({
    try: () => Fs.mkdtempSync(Path.join(Os.tmpdir(), "weft-dev-")),
    catch: (cause) => new CliError({ message: `cannot create a temp data directory in ${Os.tmpdir()}: ${String(cause)} (pass --data DIR)` })
  }),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const dataDirectory = (given: Option.Option<string>) =>
  Option.match(given, { onNone: () => tempDataDir, onSome: (dir) => Effect.succeed(Path.resolve(dir)) })

const secondsSince = (startMs: number) => Effect.map(Clock.currentTimeMillis, (now) => (now - startMs) / 1000)

// One status line per second, with each node's sent-message rate since the previous tick.
const ticks = (nodes: ReadonlyArray<DevNetwork.DevNode>, report: DevReport.Report, startMs: number) =>
  Effect.gen(function*() {
    let previous = yield* DevNetwork.sample(nodes)
    let previousMs = yield* Clock.currentTimeMillis
    while (true) {
      yield* Effect.sleep(Duration.seconds(1))
      const statuses = yield* DevNetwork.sample(nodes)
      const nowMs = yield* Clock.currentTimeMillis
      const elapsed = Math.max(nowMs - previousMs, 1) / 1000
      const samples = statuses.map((status, i) =>
        status === undefined
          ? undefined
          : { status, messagesPerSecond: (status.messages.sent - (previous[i]?.messages.sent ?? status.messages.sent)) / elapsed }
      )
      yield* report.tick(samples, (nowMs - startMs) / 1000)
      previous = statuses
      previousMs = nowMs
    }
  })

// Set once this process is told to stop. Ctrl-C reaches the node processes too (they share the
// terminal's process group) and they stop on it: their exits are then expected, not reported.
const stopSignals = Effect.acquireRelease(
  Effect.sync(() => {
    const flag = { stopping: false }
    const onSignal = () => {
      flag.stopping = true
    }
    process.on("SIGINT", onSignal).on("SIGTERM", onSignal)
    return { flag, onSignal }
  }),
  ({ onSignal }) => Effect.sync(() => process.off("SIGINT", onSignal).off("SIGTERM", onSignal))
).pipe(Effect.map(({ flag }) => flag))

// Reports every node process that ends while the network runs; the network runs on without it.
const watchExits = (nodes: ReadonlyArray<DevNetwork.DevNode>, report: DevReport.Report, startMs: number) =>
  Effect.gen(function*() {
    const signals = yield* stopSignals
    yield* Effect.forEach(nodes, (node) =>
      Effect.flatMap(node.exited, (exit) =>
        signals.stopping
          ? Effect.void
          : Effect.flatMap(secondsSince(startMs), (t) =>
            report.exited({ index: node.index, id: node.id, pid: node.pid, code: exit.code, signal: exit.signal }, t))
      ), { concurrency: "unbounded", discard: true })
  })

// Where the dev account's key is, one command to try, and the pointer `weft token` finds this network by.
const ledgerHint = (dataDir: string, nodes: ReadonlyArray<DevNetwork.DevNode>, json: boolean) =>
  Effect.gen(function*() {
    const keyFile = Path.join(dataDir, "dev-account.json")
    const account = yield* Account.load(keyFile).pipe(Effect.option)
    const node = nodes[0]?.dataDir
    if (node === undefined || account._tag === "None") return
    yield* Effect.acquireRelease(Effect.sync(() => TokenClient.writeDevPointer({ node, key: keyFile })), () => Effect.sync(() => TokenClient.clearDevPointer(node)))
    const id = Id.display(account.value.id)
    yield* Console.log(json
      ? Json.line({ event: "ledger", account: id, key: keyFile, genesis: Path.join(dataDir, "genesis.json") })
      : `ledger: dev account ${id} (${TokenDev.devTokens} WEFT at genesis), key ${keyFile}\n  try, in another terminal: npm run weft -- token balance`)
  })

interface DevOptions {
  readonly json: boolean
  readonly nodes: number
  readonly duration: Option.Option<Duration.Duration>
  readonly data: Option.Option<string>
  readonly report: DevReport.Report
}

const network = (options: DevOptions, startMs: number) =>
  Effect.gen(function*() {
    const dataDir = yield* dataDirectory(options.data)
    const nodes = yield* DevNetwork.start({ nodes: options.nodes, dataDir, keepLogs: Option.isSome(options.data) })
    const initial = yield* DevNetwork.sample(nodes)
    const samples = initial.map((status, i) => ({ status: status ?? DevNetwork.initialStatus(nodes[i]!), messagesPerSecond: 0 }))
    yield* options.report.started(dataDir, samples, yield* secondsSince(startMs))
    yield* ledgerHint(dataDir, nodes, options.json)
    yield* Effect.forkScoped(watchExits(nodes, options.report, startMs))
    yield* Effect.forkScoped(DevNetwork.connectAll(nodes))
    const run = ticks(nodes, options.report, startMs)
    yield* Option.match(options.duration, { onNone: () => run, onSome: (d) => Effect.timeoutOption(run, d) })
  })

const stopReason = (exit: Exit.Exit<unknown, unknown>): DevReport.StopReason =>
  Exit.isSuccess(exit) ? "duration" : Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "error"

/** Runs a dev network until the duration elapses or the fiber is interrupted (Ctrl-C). */
export const run = (options: DevOptions) =>
  Effect.gen(function*() {
    const startMs = yield* Clock.currentTimeMillis
    yield* Effect.scoped(network(options, startMs)).pipe(
      Effect.onExit((exit) =>
        Effect.flatMap(secondsSince(startMs), (t) => options.report.stopped(stopReason(exit), options.nodes, t))
      )
    )
  })

/** The `dev` command. */
export const command = Command.make("dev", { nodes, duration, data, json }, ({ data, duration, json, nodes }) =>
  run({ nodes, duration, data, json, report: json ? DevReport.json : DevReport.human })
).pipe(Command.withDescription("Run a local network of N connected nodes, one process each over UDP, with a status line every second."))
