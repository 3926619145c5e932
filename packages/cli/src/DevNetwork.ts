/**
 * A local Weft network in one process: N nodes on one in-memory transport network, each with its own
 * data directory (`<dataDir>/node-<i>`, so each has its own identity and control socket), each
 * serving `DevPing`. Everything is released when the scope closes: nodes stop, sockets are removed.
 */
import { Context, Effect, Layer } from "effect"
import * as Path from "node:path"
import { describe } from "./CliError.js"
import * as DevPing from "./DevPing.js"
import type { Control } from "./internal/core.js"
import { Node, TransportMemory } from "./internal/core.js"

/** One running dev node. */
export interface DevNode {
  readonly index: number
  readonly dataDir: string
  readonly node: Context.Tag.Service<Node.Node>
}

/** The data directory of node `index` inside the network's directory. */
export const nodeDataDir = (dataDir: string, index: number): string => Path.join(dataDir, `node-${index}`)

const nodeLayer = (network: TransportMemory.MemoryNetwork, dataDir: string) =>
  DevPing.layer.pipe(Layer.provideMerge(Node.layer({ dataDir, transport: TransportMemory.layer(network) })))

const startNode = (network: TransportMemory.MemoryNetwork, dataDir: string, index: number) =>
  Effect.gen(function*() {
    const nodeDir = nodeDataDir(dataDir, index)
    const context = yield* Layer.build(nodeLayer(network, nodeDir))
    return { index, dataDir: nodeDir, node: Context.get(context, Node.Node) } satisfies DevNode
  })

/** Starts `nodes` nodes on one memory network, for the life of the scope. */
export const start = (options: { readonly nodes: number; readonly dataDir: string }) =>
  Effect.gen(function*() {
    const network = yield* TransportMemory.makeNetwork()
    return yield* Effect.forEach(
      Array.from({ length: options.nodes }, (_, index) => index),
      (index) => startNode(network, options.dataDir, index)
    )
  })

/**
 * Connects node i to every node j < i, so that every pair holds one session. A failed connect is
 * logged and the network runs on: the status lines show the missing peer.
 */
export const connectAll = (nodes: ReadonlyArray<DevNode>) =>
  Effect.gen(function*() {
    const addresses = yield* Effect.forEach(nodes, ({ node }) => Effect.map(node.status, addressOf))
    const pairs = nodes.flatMap((from, i) => nodes.slice(0, i).map((to) => [from, to] as const))
    yield* Effect.forEach(pairs, ([from, to]) =>
      from.node.connect(addresses[to.index]!).pipe(
        Effect.catchAll((error) => Effect.logWarning(`node ${from.index} could not connect to node ${to.index}: ${describe(error)}`))
      ), { concurrency: 4, discard: true })
  })

const addressOf = (status: Control.Status): string => status.transports[0]?.address ?? ""

/** Every node's status, in node order. */
export const sample = (nodes: ReadonlyArray<DevNode>): Effect.Effect<ReadonlyArray<Control.Status>> =>
  Effect.forEach(nodes, ({ node }) => node.status, { concurrency: "unbounded" })
