/**
 * A custom node build: pick the transport, tighten limits, add services. A missing dependency is a
 * type error, not a runtime surprise. Run: npm run -w examples/custom-node start
 * then, from another shell: npm run weft -- node status --node examples/custom-node/data
 */
import { NodeRuntime } from "@effect/platform-node"
import { Rpc, RpcGroup } from "@effect/rpc"
import { Node, TransportMemory } from "@weft/core"
import { Duration, Effect, Layer, Schema } from "effect"

/** A service this build adds. */
export class Greeter extends RpcGroup.make(
  Rpc.make("Greet", { payload: { name: Schema.String }, success: Schema.String })
) {}

const GreeterLive = Node.serve(Greeter, { Greet: ({ name }) => Effect.succeed(`hello, ${name}`) }, { name: "greeter" })

/** The build: its services over a node over its transport, with its own limits. */
export const MyNode = (dataDir: string, network: TransportMemory.MemoryNetwork) =>
  GreeterLive.pipe(Layer.provideMerge(Node.layer({
    dataDir,
    transport: TransportMemory.layer(network),
    limits: { peersMax: 32, callTimeout: Duration.seconds(5) }
  })))

const announce = Effect.gen(function*() {
  const node = yield* Node.Node
  yield* Effect.log(`node ${node.id} is up; control socket ${node.control}`)
})

if (import.meta.url === `file://${process.argv[1]}`) {
  Layer.unwrapScoped(Effect.map(TransportMemory.makeNetwork(), (network) => MyNode("./data", network))).pipe(
    (node) => Layer.effectDiscard(announce).pipe(Layer.provideMerge(node)),
    Layer.launch,
    NodeRuntime.runMain
  )
}
