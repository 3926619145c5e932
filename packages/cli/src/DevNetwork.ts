/**
 * A local Weft network of N nodes, each in its own OS process (`weft node run`) over UDP, each with
 * its own data directory (`<dataDir>/node-<i>`: identity, control socket, `node.json` if any, and
 * `node.log` with the process's stderr). This process talks to the nodes only through their control
 * sockets, as any local tool would. One node crashing leaves the others running; closing the scope
 * stops every node process that is still running.
 */
import { Effect, Exit, ExecutionStrategy, Scope } from "effect"
import * as Path from "node:path"
import { CliError, describe } from "./CliError.js"
import { Control } from "./internal/core.js"
import * as NodeProcess from "./internal/nodeProcess.js"
import * as NetworkKey from "./NetworkKey.js"
import * as TokenDev from "./internal/tokenDev.js"

/** One running dev node, seen from the process that started it. */
export interface DevNode {
  readonly index: number
  readonly dataDir: string
  readonly id: string
  readonly pid: number
  readonly control: string
  readonly transports: ReadonlyArray<{ readonly kind: string; readonly address: string }>
  /** Completes when the node's process has exited. */
  readonly exited: Effect.Effect<NodeProcess.Exit>
  readonly isRunning: () => boolean
  /** The node's status over its control socket; none if it is gone or does not answer in time. */
  readonly status: Effect.Effect<Control.Status | undefined>
  /** Asks the node to connect to `address`; resolves to the peer's node ID. */
  readonly connect: (address: string) => Effect.Effect<string, unknown>
}

// A node that cannot answer its status in this long is shown as missing for that tick.
const statusTimeout = "2 seconds"

// Unix socket paths are limited to 107 bytes (sockaddr_un); checked here so that no process is started in vain.
const socketPathBytesMax = 107

/** The data directory of node `index` inside the network's directory. */
export const nodeDataDir = (dataDir: string, index: number): string => Path.join(dataDir, `node-${index}`)

const checkSocketPath = (dataDir: string): Effect.Effect<void, CliError> => {
  const path = Control.socketPath(dataDir)
  return Buffer.byteLength(path) > socketPathBytesMax
    ? Effect.fail(new CliError({ message: `control socket path is longer than ${socketPathBytesMax} bytes: ${path} (use a shorter data directory)` }))
    : Effect.void
}

// The control client lives in its own scope, closed when the process exits, so that it stops redialing a dead socket.
const devNode = (index: number, dataDir: string, child: NodeProcess.NodeProcess) =>
  Effect.gen(function*() {
    const scope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
    yield* Effect.forkScoped(Effect.zipRight(child.exited, Scope.close(scope, Exit.void)))
    const client = yield* Scope.extend(Control.client(child.ready.control), scope)
    const status = Effect.suspend(() =>
      child.isRunning()
        ? client.Status().pipe(Effect.timeout(statusTimeout), Effect.orElseSucceed(() => undefined))
        : Effect.succeed(undefined)
    )
    return {
      index,
      dataDir,
      id: child.ready.id,
      pid: child.ready.pid,
      control: child.ready.control,
      transports: child.ready.transports,
      exited: child.exited,
      isRunning: child.isRunning,
      status,
      connect: (address) => client.Connect({ address })
    } satisfies DevNode
  })

/**
 * Starts `nodes` node processes at once and waits until each is up. `keepLogs` says whether the data
 * directory outlives the run, so that a start error may point to the node's log.
 */
export const start = (options: { readonly nodes: number; readonly dataDir: string; readonly keepLogs: boolean }) =>
  Effect.gen(function*() {
    const indices = Array.from({ length: options.nodes }, (_, index) => index)
    yield* Effect.forEach(indices, (index) => checkSocketPath(nodeDataDir(options.dataDir, index)), { discard: true })
    // One network key for the whole dev network: its nodes talk over the secure link.
    const key = NetworkKey.generate()
    yield* Effect.forEach(indices, (index) => NetworkKey.install(nodeDataDir(options.dataDir, index), key), { discard: true })
    // Every dev node runs the ledger as an authority; the dev account's key file lands in the data directory.
    yield* TokenDev.prepare(options.dataDir, indices.map((index) => nodeDataDir(options.dataDir, index)))
    const processes = yield* Effect.forEach(
      indices,
      (index) => NodeProcess.start({ dataDir: nodeDataDir(options.dataDir, index), label: `node ${index}`, keepLog: options.keepLogs }),
      { concurrency: "unbounded" }
    ).pipe(Effect.parallelFinalizers)
    return yield* Effect.forEach(processes, (child, index) => devNode(index, nodeDataDir(options.dataDir, index), child))
  })

const addressOf = (node: DevNode): string => node.transports[0]?.address ?? ""

/**
 * Has node i connect to every node j < i, so that every pair holds one session. A failed connect is
 * logged and the network runs on: the status lines show the missing peer.
 */
export const connectAll = (nodes: ReadonlyArray<DevNode>) => {
  const pairs = nodes.flatMap((from, i) => nodes.slice(0, i).map((to) => [from, to] as const))
  return Effect.forEach(pairs, ([from, to]) =>
    from.connect(addressOf(to)).pipe(
      Effect.catchAll((error) => Effect.logWarning(`node ${from.index} could not connect to node ${to.index}: ${describe(error)}`))
    ), { concurrency: 4, discard: true })
}

/** Every node's status, in node order; none for a node that is gone or did not answer. */
export const sample = (nodes: ReadonlyArray<DevNode>): Effect.Effect<ReadonlyArray<Control.Status | undefined>> =>
  Effect.forEach(nodes, (node) => node.status, { concurrency: "unbounded" })

/** A status made from what a node said when it came up, for a node that has not answered since. */
export const initialStatus = (node: DevNode): Control.Status =>
  new Control.Status({
    id: node.id,
    pid: node.pid,
    control: node.control,
    transports: node.transports,
    peers: [],
    uptimeMs: 0,
    messages: { sent: 0, received: 0, malformed: 0, dropped: 0 },
    services: [],
    gossip: { strategy: "weft", peers: 0, topics: [] }
  })
