/**
 * A user-defined service: an RpcGroup with a unary call, a streaming call and a typed error, served
 * by any node that adds `EchoLive`. `PeerMiddleware` lets handlers read who is calling.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { NodeRpc, Node } from "@weft/core"
import { Effect, Schema, Stream } from "effect"

/** Refused: the text was empty. */
export class EmptyText extends Schema.TaggedError<EmptyText>()("EmptyText", {}) {}

export class Echo extends RpcGroup.make(
  Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String, error: EmptyText }),
  Rpc.make("Countdown", { payload: { from: Schema.Int }, success: Schema.Int, stream: true }),
  Rpc.make("WhoAmI", { success: Schema.String })
).middleware(NodeRpc.PeerMiddleware) {}

/** The handlers, as a layer any node build can add. */
export const EchoLive = Node.serve(Echo, {
  Echo: ({ text }) => text.length === 0 ? Effect.fail(new EmptyText()) : Effect.succeed(text),
  Countdown: ({ from }) => Stream.iterate(from, (n) => n - 1).pipe(Stream.take(Math.max(0, from + 1))),
  WhoAmI: () => NodeRpc.RemotePeer
}, { name: "echo" })
