/**
 * Effect RPC with one group (`Echo`, a 32-character string in and out), sequential calls, two ways:
 *
 * - over a Weft session: `Node.layer` with its own secure UDP transport and network key, the group
 *   served with `Node.serve` and called with `Node.client(BenchEcho, peer)` (as `examples/echo-handler`);
 * - over plain TCP: @effect/rpc's socket protocol (`RpcServer.layerProtocolSocketServer` on
 *   `NodeSocketServer`, `RpcClient.layerProtocolSocket` on `NodeSocket.layerNet`), msgpack
 *   serialization, Nagle off on both ends.
 *
 * Both servers and clients run with tracing off, as `Node.serve` / `Node.client` do.
 */
import { NodeSocket, NodeSocketServer } from "@effect/platform-node"
import { SocketServer } from "@effect/platform/SocketServer"
import { Rpc, RpcClient, RpcGroup, RpcSerialization, RpcServer } from "@effect/rpc"
import { Identity, Node } from "@weft/core"
import type { NodeId } from "@weft/core"
import { TransportUdp } from "@weft/transport-udp"
import { Context, Effect, Exit, Layer, Schema, Scope } from "effect"
import * as Os from "node:os"
import * as Path from "node:path"
import type { Role, RoleContext } from "../child.js"
import { requestBytes } from "./measure.js"

/** The one group both sides serve. */
export class BenchEcho extends RpcGroup.make(
  Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String })
) {}

const handlers = { Echo: ({ text }: { readonly text: string }) => Effect.succeed(text) }

const text = "x".repeat(requestBytes)

/** Sequential calls per second for `seconds`. */
const callsPerSecond = (call: Effect.Effect<string, unknown>, seconds: number) =>
  Effect.gen(function*() {
    const start = performance.now()
    const end = start + seconds * 1000
    let calls = 0
    while (performance.now() < end) {
      const echoed = yield* call
      if (echoed.length !== text.length) return yield* Effect.dieMessage(`echo returned ${echoed.length} characters`)
      calls++
    }
    return calls / ((performance.now() - start) / 1000)
  }).pipe(Effect.orDie)

/** Builds `layer` in a scope that lives until the role closes. */
const hold = async <A>(layer: Layer.Layer<A, unknown>) => {
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(Layer.buildWithScope(layer, scope).pipe(Effect.orDie))
  return { context, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

// ---------------------------------------------------------------------------------------------------
// Over a Weft session

const nodeLayer = (psk: string, name: string) =>
  Node.layer({
    // Nothing is written there: the identity is given and the control socket is off.
    dataDir: Path.join(Os.tmpdir(), `weft-bench-rpc-${process.pid}-${name}`),
    identity: Identity.generate(),
    control: false,
    transport: TransportUdp.layer({ recvBufferBytes: 4 << 20, sendBufferBytes: 4 << 20 }),
    network: { psk: new Uint8Array(Buffer.from(psk, "hex")) }
  })

/** A node serving `BenchEcho`. */
export const sessionServer = async (context: RoleContext): Promise<Role> => {
  const { context: services, close } = await hold(
    Node.serve(BenchEcho, handlers).pipe(Layer.provideMerge(nodeLayer(String(context.init.psk), "server")))
  )
  const node = Context.get(services, Node.Node)
  const status = await Effect.runPromise(node.status)
  return { info: { address: status.transports[0]!.address, id: node.id }, ops: {}, close }
}

/** A node that connects to the server and calls it. */
export const sessionClient = async (context: RoleContext): Promise<Role> => {
  const { context: services, close } = await hold(nodeLayer(String(context.init.psk), "client"))
  const node = Context.get(services, Node.Node)
  const peer = await Effect.runPromise(Effect.orDie(node.connect(String(context.init.address))))
  if (peer !== (context.init.id as NodeId.NodeId)) throw new Error(`connected to ${peer}, not the server ${String(context.init.id)}`)
  const clientScope = Effect.runSync(Scope.make())
  const client = await Effect.runPromise(
    Node.client(BenchEcho, peer).pipe(Effect.provide(services), Scope.extend(clientScope))
  )
  return {
    info: {},
    ops: { calls: (seconds) => Effect.runPromise(callsPerSecond(client.Echo({ text }), Number(seconds))) },
    close: async () => {
      await Effect.runPromise(Scope.close(clientScope, Exit.void))
      await close()
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Over plain TCP

/** @effect/rpc's socket server on 127.0.0.1, msgpack. */
export const tcpServer = async (_: RoleContext): Promise<Role> => {
  const server = RpcServer.layer(BenchEcho, { disableFatalDefects: true, disableTracing: true }).pipe(
    Layer.provide(BenchEcho.toLayer(handlers)),
    Layer.provide(RpcServer.layerProtocolSocketServer),
    Layer.provide(RpcSerialization.layerMsgPack),
    Layer.provideMerge(NodeSocketServer.layer({ host: "127.0.0.1", port: 0, noDelay: true }))
  )
  const { context: services, close } = await hold(server)
  const address = Context.get(services, SocketServer).address
  if (address._tag !== "TcpAddress") throw new Error("the socket server is not on TCP")
  return { info: { port: address.port }, ops: {}, close }
}

/** @effect/rpc's socket client, msgpack. */
export const tcpClient = async (context: RoleContext): Promise<Role> => {
  const protocol = RpcClient.layerProtocolSocket().pipe(
    Layer.provide(NodeSocket.layerNet({ host: "127.0.0.1", port: Number(context.init.port), noDelay: true })),
    Layer.provide(RpcSerialization.layerMsgPack)
  )
  const { context: services, close } = await hold(protocol)
  const clientScope = Effect.runSync(Scope.make())
  const client = await Effect.runPromise(
    RpcClient.make(BenchEcho, { disableTracing: true }).pipe(Effect.provide(services), Scope.extend(clientScope))
  )
  return {
    info: {},
    ops: { calls: (seconds) => Effect.runPromise(callsPerSecond(client.Echo({ text }), Number(seconds))) },
    close: async () => {
      await Effect.runPromise(Scope.close(clientScope, Exit.void))
      await close()
    }
  }
}
