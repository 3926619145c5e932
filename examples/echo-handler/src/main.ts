/**
 * Two nodes serve `Echo`; node A calls it on itself and on node B with the same client code:
 * `Node.client(Echo)` for this node, `Node.client(Echo, peerId)` for another, one type for both.
 * Run: npm run -w examples/echo-handler start
 */
import { Node, NodeRpc, TransportMemory } from "@weft/core"
import { Chunk, Effect, Layer, Stream } from "effect"
import { randomBytes } from "node:crypto"
import * as Os from "node:os"
import * as Path from "node:path"
import { Echo, EchoLive } from "./Echo.js"

// Both nodes share a fresh network key, so they talk over the secure link.
const psk = new Uint8Array(randomBytes(32))

const node = (network: TransportMemory.MemoryNetwork, name: string) =>
  Layer.build(EchoLive.pipe(Layer.provideMerge(Node.layer({
    dataDir: Path.join(Os.tmpdir(), `weft-echo-${process.pid}-${name}`),
    control: false,
    transport: TransportMemory.layer(network),
    network: { psk }
  }))))

// The same code whatever node the client talks to.
const useEcho = (client: NodeRpc.Client<typeof Echo>) =>
  Effect.gen(function*() {
    const echoed = yield* client.Echo({ text: "hello" })
    const countdown = Chunk.toArray(yield* Stream.runCollect(client.Countdown({ from: 3 })))
    const refused = yield* client.Echo({ text: "" }).pipe(Effect.flip, Effect.map((error) => error._tag))
    const caller = (yield* client.WhoAmI()).slice(0, 10)
    return { echoed, countdown, refused, caller }
  })

/** Starts two nodes, connects them, and calls Echo locally and remotely. */
export const program = Effect.scoped(Effect.gen(function*() {
  const network = yield* TransportMemory.makeNetwork()
  const a = yield* node(network, "a")
  const b = yield* node(network, "b")
  const nodeB = yield* Node.Node.pipe(Effect.provide(b))
  const [addressB] = (yield* nodeB.status).transports
  return yield* Effect.gen(function*() {
    const nodeA = yield* Node.Node
    yield* nodeA.connect(addressB!.address)
    const local = yield* useEcho(yield* Node.client(Echo))
    const remote = yield* useEcho(yield* Node.client(Echo, nodeB.id))
    return { a: nodeA.id.slice(0, 10), b: nodeB.id.slice(0, 10), local, remote }
  }).pipe(Effect.provide(a))
}))

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await Effect.runPromise(program)
  console.log(`node A ${result.a}, node B ${result.b}`)
  console.log(`on A itself: ${JSON.stringify(result.local)}`)
  console.log(`on B:        ${JSON.stringify(result.remote)}`)
}
