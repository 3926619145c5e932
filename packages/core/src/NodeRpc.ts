/**
 * `@effect/rpc` over Weft message channels. A service is an `RpcGroup`; `serve` runs it on this node,
 * `client` calls it on this node or on a peer with the same type and through the same path (a call
 * to the local node goes through the message layer's loopback, so schemas always run).
 *
 * ```ts
 * class Echo extends RpcGroup.make(Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String }))
 *   .middleware(NodeRpc.PeerMiddleware) {}                      // optional: handlers may read RemotePeer
 * const EchoLive = NodeRpc.serve(Echo, { Echo: ({ text }) => Effect.succeed(text) })   // a Layer
 * const local = yield* NodeRpc.client(Echo)                    // this node
 * const remote = yield* NodeRpc.client(Echo, peerId)           // another node
 * ```
 *
 * Wire: one message tag, `"@weft/rpc"`. A client opens one channel and sends encoded `FromClient`
 * messages as channel bodies; the node's router (`NodeRpc`) routes each request by its rpc tag to the
 * RpcServer of the group that serves it (rpc tags are unique per node), stamps the channel's
 * authenticated peer into the `x-weft-peer` header, and bounds each peer's requests
 * (`rpcRequestsInFlightPerPeerMax` running, `rpcRequestsQueuedPerPeerMax` waiting; beyond that a
 * request is refused at once and counted; the client sees an `RpcClientError`).
 */
import type { Rpc } from "@effect/rpc"
import { RpcClient, RpcGroup, RpcMiddleware, RpcServer } from "@effect/rpc"
import { RequestId } from "@effect/rpc/RpcMessage"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import { Context, Duration, Effect, Layer, Stream } from "effect"
import type { Scope } from "effect"
import * as Limits from "./Limits.js"
import { Messages } from "./Messages.js"
import type { NodeId } from "./NodeId.js"
import { short } from "./NodeId.js"
import { makeProtocol, withTimeouts } from "./internal/rpcClient.js"
import { makeRouter, type RouterStats } from "./internal/rpcRouter.js"
import { channelTag, decodeFromServer, encodedRejectionOf, peerHeader } from "./internal/rpcWire.js"
import { MessageError, NodeError } from "./WeftError.js"

/** The message tag RPC channels use. */
export const tag: string = channelTag

/** The authenticated node that sent the request being handled (provided by `PeerMiddleware`). */
export class RemotePeer extends Context.Tag("@weft/core/NodeRpc/RemotePeer")<RemotePeer, NodeId>() {}

/**
 * Add to a group (`.middleware(PeerMiddleware)`) so its handlers can read `RemotePeer`; `serve`
 * provides the implementation, which reads the caller the router stamped from the channel.
 */
export class PeerMiddleware extends RpcMiddleware.Tag<PeerMiddleware>()("@weft/core/NodeRpc/PeerMiddleware", {
  provides: RemotePeer
}) {}

const peerMiddlewareLive = Layer.succeed(PeerMiddleware, ({ headers }) => {
  const peer = headers[peerHeader]
  // The router stamps every request; a missing header means the group runs outside the router.
  return peer === undefined ? Effect.dieMessage("NodeRpc: request without a caller") : Effect.succeed(peer as NodeId)
})

/** A served group as tools see it. */
export interface ServiceInfo {
  readonly name: string
  /** Its rpc tags. */
  readonly methods: ReadonlyArray<string>
}

/** What the router counts (every drop and refusal has one). */
export type Stats = RouterStats

/** Options of `client`. */
export interface ClientOptions {
  /** How long a unary call may wait for its reply (default `callTimeout`). */
  readonly timeout?: Duration.DurationInput | undefined
}

/** Options of `serve`. */
export interface ServeOptions {
  /** The service's name for tools (default: the group's class name, else its first rpc tag). */
  readonly name?: string | undefined
}

/** Options of `callEncoded`. */
export interface CallEncodedOptions {
  /** How long the whole call may take (default `callTimeout`). */
  readonly timeout?: Duration.DurationInput | undefined
  /** Receives each chunk of a streaming rpc's encoded elements, as it arrives. */
  readonly onChunk?: ((values: ReadonlyArray<unknown>) => Effect.Effect<void>) | undefined
}

/** The node's RPC router. */
export class NodeRpc extends Context.Tag("@weft/core/NodeRpc")<NodeRpc, {
  /**
   * Adds a group to the router for the life of the scope and returns the protocol its RpcServer runs
   * over (what `serve` does). Fails with `NodeError("DuplicateRpc")` if the name or a tag is taken.
   */
  readonly register: (group: RpcGroup.RpcGroup<any>, name: string) => Effect.Effect<RpcServer.Protocol["Type"], NodeError, Scope.Scope>
  /** A client of `group` on `peer` (default: this node); see the top-level `client`. */
  readonly client: <Rpcs extends Rpc.Any>(
    group: RpcGroup.RpcGroup<Rpcs>,
    peer?: NodeId | undefined,
    options?: ClientOptions | undefined
  ) => Effect.Effect<RpcClient.RpcClient<Rpcs, RpcClientError>, never, Scope.Scope | Rpc.MiddlewareClient<Rpcs>>
  /** The groups served on this node. */
  readonly services: Effect.Effect<ReadonlyArray<ServiceInfo>>
  /**
   * Calls `method` (an rpc tag) with an already-encoded payload and returns the encoded Exit as the
   * target's RpcServer produced it (`{ _tag: "Success", value }` or `{ _tag: "Failure", cause }`).
   * For the local node, `service` and `method` are checked first (`NodeError` "UnknownService" or
   * "UnknownMethod"); for a peer, an unknown method is reported as "UnknownMethod" after the call.
   * Fails with `MessageError` if the target cannot be reached ("Timeout" after the timeout).
   */
  readonly callEncoded: (
    peer: NodeId,
    service: string,
    method: string,
    payload: unknown,
    options?: CallEncodedOptions | undefined
  ) => Effect.Effect<unknown, NodeError | MessageError>
  readonly stats: Effect.Effect<Stats>
}>() {}

/** Builds the router and starts accepting RPC channels for the life of the scope. */
export const make: Effect.Effect<NodeRpc["Type"], never, Messages | Limits.Limits | Scope.Scope> = Effect.gen(function*() {
  const messages = yield* Messages
  const limits = yield* Limits.Limits
  const router = makeRouter({
    inFlightMax: limits.rpcRequestsInFlightPerPeerMax,
    queuedMax: limits.rpcRequestsQueuedPerPeerMax
  })
  let repliesMalformed = 0
  yield* messages.serve(channelTag, router.onChannel)

  const client = <Rpcs extends Rpc.Any>(
    group: RpcGroup.RpcGroup<Rpcs>,
    peer?: NodeId | undefined,
    options?: ClientOptions | undefined
  ) => {
    const target = peer ?? messages.local
    const describe = target === messages.local ? "this node" : `node ${short(target)}`
    const timeout = Duration.decode(options?.timeout ?? limits.callTimeout)
    return makeProtocol(messages.open(target, channelTag), describe, () => repliesMalformed++).pipe(
      Effect.flatMap((protocol) => {
        // Request ids are per client (the server keys them by client): a counter of our own keeps a
        // run independent of every other client in the process, so a simulation replays exactly.
        let nextRequestId = 0n
        return RpcClient.make(group, { generateRequestId: () => RequestId(nextRequestId++), disableTracing: true }).pipe(
          Effect.provideService(RpcClient.Protocol, protocol)
        )
      }),
      Effect.map((client) => withTimeouts(group, client, timeout, describe))
    )
  }

  const checkLocal = (service: string, method: string): Effect.Effect<void, NodeError> => {
    const entry = router.lookup(service)
    if (entry === undefined) {
      return Effect.fail(new NodeError({ reason: "UnknownService", detail: `no service ${JSON.stringify(service)} on this node` }))
    }
    return entry.methods.includes(method)
      ? Effect.void
      : Effect.fail(new NodeError({ reason: "UnknownMethod", detail: `${service} has no method ${JSON.stringify(method)}; it has ${entry.methods.join(", ")}` }))
  }

  const callEncoded = (peer: NodeId, service: string, method: string, payload: unknown, options?: CallEncodedOptions) =>
    Effect.gen(function*() {
      if (peer === messages.local) yield* checkLocal(service, method)
      const timeout = Duration.decode(options?.timeout ?? limits.callTimeout)
      const exit = yield* rawCall(messages, peer, method, payload, options?.onChunk).pipe(
        Effect.scoped,
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => new MessageError({ reason: "Timeout", detail: `no reply to ${method} within ${Duration.format(timeout)}` })
        })
      )
      if (encodedRejectionOf(exit) === "UnknownRpc") {
        return yield* new NodeError({ reason: "UnknownMethod", detail: `node ${short(peer)} serves no method ${JSON.stringify(method)}` })
      }
      return exit
    })

  const stats = Effect.map(router.stats, (counts): Stats => ({ ...counts, malformed: counts.malformed + repliesMalformed }))

  return NodeRpc.of({ register: router.register, client, services: router.services, callEncoded, stats })
})

/** The router as a layer. */
export const layer: Layer.Layer<NodeRpc, never, Messages | Limits.Limits> = Layer.scoped(NodeRpc, make)

// The raw request `callEncoded` sends: one per channel, so its id needs no counter.
const rawRequestId = "0"

const rawCall = (
  messages: Messages["Type"],
  peer: NodeId,
  method: string,
  payload: unknown,
  onChunk: ((values: ReadonlyArray<unknown>) => Effect.Effect<void>) | undefined
): Effect.Effect<unknown, MessageError, Scope.Scope> =>
  Effect.gen(function*() {
    const channel = yield* messages.open(peer, channelTag)
    yield* channel.send({ _tag: "Request", id: rawRequestId, tag: method, payload, headers: [] })
    let exit: unknown = undefined
    yield* channel.receive.pipe(
      Stream.runForEachWhile((body) => {
        const message = decodeFromServer(body)
        if (message?._tag === "Exit" && message.requestId === rawRequestId) {
          exit = message.exit
          return Effect.succeed(false)
        }
        if (message?._tag !== "Chunk" || message.requestId !== rawRequestId) return Effect.succeed(true)
        return (onChunk?.(message.values) ?? Effect.void).pipe(
          Effect.zipRight(channel.send({ _tag: "Ack", requestId: rawRequestId })),
          Effect.as(true)
        )
      })
    )
    if (exit === undefined) {
      return yield* new MessageError({ reason: "Closed", detail: `channel to node ${short(peer)} closed before the reply` })
    }
    return exit
  })

const defaultName = (group: RpcGroup.RpcGroup<any>): string => {
  // `class Echo extends RpcGroup.make(...)` names the group; a plain group value has an empty name.
  const className = typeof group === "function" ? (group as { readonly name?: unknown }).name : undefined
  if (typeof className === "string" && className !== "") return className
  const first = group.requests.keys().next()
  return first.done === true ? "rpc" : first.value
}

/**
 * Serves `group` on this node for the life of the layer, with `build` (the handlers, or an Effect
 * of them, as for `group.toLayer`). Fails with `NodeError("DuplicateRpc")` if one of its rpc tags
 * (or its name) is already served here. `PeerMiddleware` is provided, so handlers of a group that
 * declares it can read `RemotePeer`; any other middleware must be provided by the caller.
 */
export const serve = <
  Rpcs extends Rpc.Any,
  Handlers extends RpcGroup.HandlersFrom<Rpcs>,
  EX = never,
  RX = never
>(
  group: RpcGroup.RpcGroup<Rpcs>,
  build: Handlers | Effect.Effect<Handlers, EX, RX>,
  options?: ServeOptions | undefined
): Layer.Layer<
  never,
  NodeError | EX,
  | NodeRpc
  | Exclude<RX, Scope.Scope>
  | RpcGroup.HandlersContext<Rpcs, Handlers>
  | Rpc.Context<Rpcs>
  | Exclude<Rpc.Middleware<Rpcs>, PeerMiddleware>
> => {
  const name = options?.name ?? defaultName(group)
  const run = Effect.gen(function*() {
    const router = yield* NodeRpc
    const protocol = yield* router.register(group, name)
    // Fatal defects would end every call of the client, also those to other groups: keep them per call.
    yield* RpcServer.make(group, { disableFatalDefects: true, disableTracing: true }).pipe(
      Effect.provideService(RpcServer.Protocol, protocol),
      Effect.interruptible,
      Effect.forkScoped
    )
  })
  return Layer.scopedDiscard(run).pipe(
    Layer.provide(Layer.merge(group.toLayer(build), peerMiddlewareLive))
  )
}

/** The client type of an RpcGroup: the same for this node and for a peer. */
export type Client<Group extends RpcGroup.Any> = RpcClient.RpcClient<RpcGroup.Rpcs<Group>, RpcClientError>

/**
 * A client of `group` on `peer` (default, or `Messages.local`: this node), with one type for both.
 * Each unary call completes or fails within `timeout` (default `callTimeout`) with the rpc's typed
 * errors or an `RpcClientError` (no reply, channel lost, peer unreachable, refused as overloaded, or
 * rpc not served there). Streaming calls have no timeout; they fail with `RpcClientError` if the
 * channel is lost. The channel opens on the first call and is reopened after a loss.
 */
export const client = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  peer?: NodeId | undefined,
  options?: ClientOptions | undefined
): Effect.Effect<RpcClient.RpcClient<Rpcs, RpcClientError>, never, NodeRpc | Scope.Scope | Rpc.MiddlewareClient<Rpcs>> =>
  Effect.flatMap(NodeRpc, (rpc) => rpc.client(group, peer, options))
