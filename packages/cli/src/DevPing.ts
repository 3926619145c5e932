/**
 * The tiny RPC service every `weft dev` node serves and calls, so that a dev network carries some
 * traffic: once a second each node pings a random peer. It doubles as a ready target for
 * `weft node call --node … DevPing Ping '{"from":"me"}'`.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Clock, Effect, Layer, Option, Random, Schedule, Schema, Scope } from "effect"
import { Messages, Node, type NodeId } from "./internal/core.js"

/** `Ping({ from })` answers with the answering node's ID and its clock in epoch milliseconds. */
export class DevPing extends RpcGroup.make(
  Rpc.make("Ping", {
    payload: { from: Schema.String },
    success: Schema.Struct({ from: Schema.String, at: Schema.Number })
  })
) {}

const served = Node.serve(
  DevPing,
  Effect.map(Node.Node, (node) => ({
    Ping: () => Effect.map(Clock.currentTimeMillis, (at) => ({ from: node.id, at }))
  }))
)

type Client = Effect.Effect.Success<ReturnType<typeof Node.client<RpcGroup.Rpcs<typeof DevPing>>>>

// A failed ping is normal while peers come and go; it is logged at debug level and the next tick tries
// again. Clients are kept per peer (at most one per peer, so bounded by peersMax) because a client's
// channel stays open between calls.
const pinger = Layer.scopedDiscard(
  Effect.gen(function*() {
    const node = yield* Node.Node
    const messages = yield* Messages.Messages
    const scope = yield* Effect.scope
    const clients = new Map<string, Client>()
    const clientOf = (peer: NodeId.NodeId) =>
      Option.match(Option.fromNullable(clients.get(peer)), {
        onSome: Effect.succeed,
        onNone: () => Node.client(DevPing, peer).pipe(Scope.extend(scope), Effect.tap((client) => clients.set(peer, client)))
      })
    const pingRandomPeer = Effect.gen(function*() {
      const peers = yield* messages.peers
      if (peers.length === 0) return
      const peer = peers[yield* Random.nextIntBetween(0, peers.length)]!
      const client = yield* clientOf(peer)
      yield* client.Ping({ from: node.id })
    }).pipe(Effect.catchAllCause((cause) => Effect.logDebug("DevPing: ping failed", cause)))
    yield* Effect.forkScoped(Effect.repeat(pingRandomPeer, Schedule.spaced("1 second")))
  })
)

/** Serves DevPing on the node and pings a random peer once a second, for the life of the layer. */
export const layer = Layer.merge(served, pinger)
