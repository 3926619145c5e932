/**
 * What the benches share: the Echo group and its handler, two nodes joined over one memory network,
 * and the way a measured batch is run (one `Effect.runPromise` per batch, never per operation).
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import type { Scope } from "effect"
import { Context, Effect, Layer, Schema } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Identity from "../src/Identity.js"
import * as Node from "../src/Node.js"
import type { NodeId } from "../src/NodeId.js"
import * as TransportMemory from "../src/TransportMemory.js"

/** The group every RPC bench calls: one unary rpc, no middleware, so subject and baselines match. */
export class Echo extends RpcGroup.make(
  Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String })
) {}

/** The one handler, shared by the Weft path and the baselines. */
export /** One network key for the bench's nodes. */
const benchNetworkKey = new Uint8Array(32).fill(0x5e)

const echoHandlers = Echo.of({ Echo: ({ text }) => Effect.succeed(text) })

/** The handler as the layer `RpcServer` and `RpcTest` need. */
export const EchoHandlersLive = Echo.toLayer(echoHandlers)

/** The payload every call sends (a typical small request). */
export const echoPayload = { text: "hello from the bench, a short line of text" }

/** A built node: its context, for providing effects that need the node's services. */
export type NodeContext = Context.Context<Node.Services>

/** Two nodes on one memory network, both serving Echo, with a session from `a` to `b`. */
export interface TwoNodes {
  readonly a: NodeContext
  readonly b: NodeContext
  readonly idA: NodeId
  readonly idB: NodeId
}

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "weft-bench-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

/** Starts two nodes for the life of the scope and connects `a` to `b`. */
export const twoNodes: Effect.Effect<TwoNodes, unknown, Scope.Scope> = Effect.gen(function*() {
  const dir = yield* tempDir
  const network = yield* TransportMemory.makeNetwork()
  const start = (name: string) =>
    Layer.build(Node.serve(Echo, echoHandlers, { name: "echo" }).pipe(
      Layer.provideMerge(Node.layer({
        dataDir: Path.join(dir, name),
        transport: TransportMemory.layer(network),
        control: false,
        identity: Identity.generate(),
        // The configuration a real network runs: the secure link (and no warning on stdout).
        network: { psk: benchNetworkKey }
      }))
    ))
  const a = yield* start("a")
  const b = yield* start("b")
  const nodeA = Context.get(a, Node.Node)
  const nodeB = Context.get(b, Node.Node)
  const address = (yield* nodeB.status).transports[0]!.address
  yield* nodeA.connect(address)
  return { a, b, idA: nodeA.id, idB: nodeB.id }
})

/** Runs one measured batch as its own top-level run, so nothing of the harness's fiber leaks into it. */
export const batch = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A> =>
  Effect.promise(() => Effect.runPromise(effect))

/** `ops` sequential runs of `op`. */
export const sequential = <E>(op: Effect.Effect<unknown, E>, ops: number): Effect.Effect<void, E> =>
  Effect.gen(function*() {
    for (let i = 0; i < ops; i++) yield* op
  })

/** `ops` runs of `op`, `concurrency` at a time. */
export const concurrent = <E>(op: Effect.Effect<unknown, E>, ops: number, concurrency: number): Effect.Effect<void, E> =>
  Effect.forEach(Array.from({ length: ops }), () => op, { concurrency, discard: true })

/** Logs progress on stderr (stdout carries only the report). */
export const progress = (line: string): void => {
  process.stderr.write(`${line}\n`)
}
