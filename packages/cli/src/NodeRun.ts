/**
 * `weft node run`: runs one node in this process, over UDP, until SIGINT or SIGTERM (then its scopes
 * close: the socket is released and the control socket removed, exit status 0). It prints one line
 * when it is up, with the real bound address (port 0 means the kernel picked one), then dials the
 * peers it was told to. It serves `DevPing`, so `weft dev` networks carry traffic and
 * `weft node call` has something to call.
 */
import { Command, Options } from "@effect/cli"
import { TransportUdp } from "@weft/transport-udp"
import { Console, Context, Effect, Layer, Option, Schedule } from "effect"
import * as Path from "node:path"
import { describe } from "./CliError.js"
import * as DevPing from "./DevPing.js"
import type { Control } from "./internal/core.js"
import { Node } from "./internal/core.js"
import * as Json from "./Json.js"
import * as NetworkKey from "./NetworkKey.js"
import * as NodeConfig from "./NodeConfig.js"
import * as MsgNode from "./internal/msgNode.js"
import * as TokenNode from "./internal/tokenNode.js"

// A peer that is not up yet gets a few more tries, further apart each time; then it is logged and left.
const connectRetriesMax = 4
const connectRetryDelayFirst = "500 millis"

const data = Options.directory("data").pipe(
  Options.withDescription(`The node's data directory (identity.json, control.sock, ${NodeConfig.fileName}); created if missing.`)
)

const config = Options.file("config").pipe(
  Options.withDescription(`The node config (JSON: transports, limits, connect). Default: <data>/${NodeConfig.fileName} if it exists.`),
  Options.optional
)

const listen = Options.text("listen").pipe(
  Options.withPseudoName("ADDR"),
  Options.withDescription("Listen on this address instead of the config's transports, e.g. udp:127.0.0.1:7100 (port 0: any free port)."),
  Options.repeated
)

const connect = Options.text("connect").pipe(
  Options.withPseudoName("ADDR"),
  Options.withDescription("Connect to the node at this address once up (retried a few times); adds to the config's connect list."),
  Options.repeated
)

const networkKey = Options.file("network-key").pipe(
  Options.withPseudoName("FILE"),
  Options.withDescription(`The network key (64 hex characters). Default: <data>/${NetworkKey.fileName} if it exists; without one the node runs unencrypted.`),
  Options.optional
)

const json = Options.boolean("json").pipe(Options.withDescription("Print the ready line as one JSON object; logs go to stderr."))

const supervised = Options.boolean("supervised").pipe(
  Options.withDescription("Stop when stdin closes, so the node never outlives the process that started it (weft dev runs its nodes so).")
)

/** What `run` needs. */
export interface RunOptions {
  readonly data: string
  readonly config: Option.Option<string>
  readonly listen: ReadonlyArray<string>
  readonly connect: ReadonlyArray<string>
  readonly networkKey: Option.Option<string>
  readonly json: boolean
  readonly supervised: boolean
}

// The ledger, and the ephemeral service on top of it (it reads the chain).
const ledgerLayer = (resolved: NodeConfig.Resolved) => {
  if (resolved.ledger === undefined) return Layer.empty
  const ledger = TokenNode.layer(resolved.ledger)
  return resolved.ephemeral === undefined ? ledger : MsgNode.layer(resolved.ephemeral).pipe(Layer.provideMerge(ledger))
}

const nodeLayer = (dataDir: string, resolved: NodeConfig.Resolved, psk: Option.Option<Uint8Array>) =>
  Layer.merge(DevPing.layer, ledgerLayer(resolved)).pipe(
    Layer.provideMerge(Node.layer({
      dataDir,
      transport: TransportUdp.layer({ host: resolved.transport.host, port: resolved.transport.port }),
      limits: resolved.limits,
      network: Option.getOrUndefined(Option.map(psk, (key) => ({ psk: key })))
    }))
  )

/** The line printed once the node is up: what `weft dev` reads to learn a child node's ID, pid and address. */
export const readyLine = (status: Control.Status, json: boolean): string => {
  const transports = status.transports.map(({ address, kind }) => ({ kind, address }))
  return json
    ? Json.line({ event: "ready", id: status.id, pid: status.pid, control: status.control, transports })
    : `node ${status.id} listening on ${transports.map((t) => t.address).join(", ")}, control ${status.control ?? "(none)"}`
}

const connectTo = (node: Context.Tag.Service<Node.Node>, address: string) =>
  node.connect(address).pipe(
    Effect.retry(Schedule.exponential(connectRetryDelayFirst).pipe(Schedule.intersect(Schedule.recurs(connectRetriesMax)))),
    Effect.flatMap((peer) => Effect.logInfo(`connected to ${peer} at ${address}`)),
    Effect.catchAll((error) => Effect.logWarning(`could not connect to ${address}: ${describe(error)}`))
  )

// Completes when stdin ends: the parent that holds its other end has exited, however it died.
const stdinClosed = Effect.async<void>((resume) => {
  const done = () => resume(Effect.void)
  const ignore = () => {}
  process.stdin.on("data", ignore).once("end", done).once("close", done).once("error", done)
  process.stdin.resume()
  return Effect.sync(() => {
    process.stdin.off("data", ignore).off("end", done).off("close", done).off("error", done)
    process.stdin.pause()
  })
}).pipe(Effect.zipRight(Effect.logInfo("stdin closed: the supervising process is gone; stopping")))

/** Runs the node until interrupted (SIGINT, SIGTERM) or, when supervised, until stdin closes. */
export const run = (options: RunOptions) =>
  Effect.scoped(
    Effect.gen(function*() {
      const dataDir = Path.resolve(options.data)
      const file = Option.getOrUndefined(Option.map(options.config, (path) => Path.resolve(path)))
      const resolved = yield* NodeConfig.resolve(yield* NodeConfig.load(dataDir, file), { ...options, dataDir })
      const psk = yield* NetworkKey.forNode(dataDir, Option.map(options.networkKey, (path) => Path.resolve(path)))
      const context = yield* Layer.build(nodeLayer(dataDir, resolved, psk))
      const node = Context.get(context, Node.Node)
      yield* Console.log(readyLine(yield* node.status, options.json))
      yield* Effect.forkScoped(Effect.forEach(resolved.connect, (address) => connectTo(node, address), { concurrency: 4, discard: true }))
      yield* options.supervised ? stdinClosed : Effect.never
    })
  )

/** The `run` subcommand. */
export const command = Command.make("run", { data, config, listen, connect, networkKey, json, supervised }, run).pipe(
  Command.withDescription("Run one node over UDP in this process until Ctrl-C or SIGTERM; prints one line when it is up.")
)
