/**
 * The control endpoint: a running node serves its control RPCs to local tools on a Unix socket in its
 * data directory (`<dataDir>/control.sock`). The `weft` CLI talks to nodes only through it — status,
 * connect, the service directory, and a generic call into any RPC group the node serves — so anything
 * the CLI can do, any other local tool can do the same way.
 *
 * Only local users who can open the socket file can reach it: it is created inside the data directory,
 * which the node creates with mode 0700.
 */
import { RpcClient, RpcGroup, RpcSerialization, RpcServer } from "@effect/rpc"
import { Rpc } from "@effect/rpc"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import { SocketServer } from "@effect/platform/SocketServer"
import { NodeSocket, NodeSocketServer } from "@effect/platform-node"
import type { Stream } from "effect"
import { Effect, Layer, Schema, Scope } from "effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { GossipError, MessageError, NodeError } from "./WeftError.js"

/** The file name of the control socket inside a data directory. */
export const socketFileName = "control.sock"

/** The control socket of a data directory. */
export const socketPath = (dataDir: string): string => Path.join(dataDir, socketFileName)

// Unix socket paths are limited by sockaddr_un.sun_path (108 bytes with the terminating NUL on Linux).
const socketPathBytesMax = 107

/** One transport endpoint a node listens on. */
export const TransportInfo = Schema.Struct({ kind: Schema.String, address: Schema.String })

/** One peer with a live session. */
export const PeerInfo = Schema.Struct({ id: Schema.String, address: Schema.String, initiator: Schema.Boolean })

/** One RPC group the node serves. */
export const ServiceInfo = Schema.Struct({ name: Schema.String, methods: Schema.Array(Schema.String) })

/** What `Status` reports. */
export class Status extends Schema.Class<Status>("@weft/core/Control/Status")({
  id: Schema.String,
  pid: Schema.Number,
  control: Schema.NullOr(Schema.String),
  transports: Schema.Array(TransportInfo),
  peers: Schema.Array(PeerInfo),
  uptimeMs: Schema.Number,
  messages: Schema.Struct({
    sent: Schema.Number,
    received: Schema.Number,
    malformed: Schema.Number,
    dropped: Schema.Number
  }),
  services: Schema.Array(ServiceInfo),
  gossip: Schema.Struct({
    strategy: Schema.String,
    peers: Schema.Number,
    topics: Schema.Array(Schema.Struct({ topic: Schema.String, subscribers: Schema.Number }))
  })
}) {}

/** One gossip message, as `Subscribe` streams it. */
export const GossipMessage = Schema.Struct({
  topic: Schema.String,
  id: Schema.String,
  data: Schema.Uint8ArrayFromSelf,
  from: Schema.String
})

/** The control RPCs. */
export class ControlRpcs extends RpcGroup.make(
  Rpc.make("Status", { success: Status }),
  Rpc.make("Connect", { payload: { address: Schema.String }, success: Schema.String, error: MessageError }),
  Rpc.make("Call", {
    payload: {
      service: Schema.String,
      method: Schema.String,
      payload: Schema.Unknown,
      peer: Schema.optional(Schema.String)
    },
    // The encoded Exit of the call, as the target's RPC server produced it.
    success: Schema.Unknown,
    error: Schema.Union(NodeError, MessageError)
  }),
  Rpc.make("Publish", { payload: { topic: Schema.String, data: Schema.Uint8ArrayFromSelf }, success: Schema.String, error: GossipError }),
  Rpc.make("Subscribe", { payload: { topic: Schema.String }, success: GossipMessage, error: GossipError, stream: true })
) {}

/** What the control server needs from the node it serves. */
export interface Handlers {
  /** Publishes on the node's gossip; returns the content id. */
  readonly publish: (topic: string, data: Uint8Array) => Effect.Effect<string, GossipError>
  /** The node's gossip messages on `topic`, from now on, until the tool disconnects. */
  readonly subscribe: (topic: string) => Stream.Stream<typeof GossipMessage.Type, GossipError>
  readonly status: Effect.Effect<Status>
  readonly connect: (address: string) => Effect.Effect<string, MessageError>
  readonly call: (request: {
    readonly service: string
    readonly method: string
    readonly payload: unknown
    readonly peer?: string | undefined
  }) => Effect.Effect<unknown, NodeError | MessageError>
}

/** Serves the control RPCs on `path` for the life of the scope, admitting at most `connectionsMax` tools at once. */
export const serve = (options: {
  readonly path: string
  readonly connectionsMax: number
  readonly handlers: Handlers
}): Effect.Effect<void, NodeError, Scope.Scope> =>
  Effect.gen(function*() {
    yield* clearStaleSocket(options.path)
    const handlers = ControlRpcs.toLayer(ControlRpcs.of({
      Status: () => options.handlers.status,
      Connect: ({ address }) => options.handlers.connect(address),
      Call: (request) => options.handlers.call(request),
      Publish: ({ data, topic }) => options.handlers.publish(topic, data),
      Subscribe: ({ topic }) => options.handlers.subscribe(topic)
    }))
    const server = RpcServer.layer(ControlRpcs, { disableTracing: true }).pipe(
      Layer.provide(RpcServer.layerProtocolSocketServer),
      Layer.provide(handlers),
      Layer.provide(RpcSerialization.layerMsgPack),
      Layer.provide(boundedSocketServer(options.path, options.connectionsMax))
    )
    yield* Layer.buildWithScope(server, yield* Effect.scope).pipe(
      Effect.mapError((cause) =>
        new NodeError({ reason: "Control", detail: `cannot serve the control socket ${options.path}: ${String(cause)}` })
      )
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(options.path, { force: true })))
  })

// A socket server that closes connections beyond `connectionsMax` at once (controlConnectionsMax).
const boundedSocketServer = (path: string, connectionsMax: number) =>
  Layer.scoped(
    SocketServer,
    Effect.gen(function*() {
      const inner = yield* NodeSocketServer.make({ path })
      let open = 0
      return SocketServer.of({
        address: inner.address,
        run: (handler) =>
          inner.run((socket) =>
            open >= connectionsMax
              ? Effect.void
              : Effect.suspend(() => {
                open++
                return handler(socket)
              }).pipe(Effect.ensuring(Effect.sync(() => open--)))
          )
      })
    })
  )

// A socket file left by a node that died is removed; one a live node answers on is an error.
const clearStaleSocket = (path: string): Effect.Effect<void, NodeError> =>
  Effect.gen(function*() {
    if (Buffer.byteLength(path) > socketPathBytesMax) {
      return yield* new NodeError({
        reason: "Control",
        detail: `control socket path is longer than ${socketPathBytesMax} bytes: ${path} (use a shorter data directory)`
      })
    }
    if (!Fs.existsSync(path)) return
    const live = yield* Effect.async<boolean>((resume) => {
      const probe = Net.connect({ path })
      probe.once("connect", () => {
        probe.destroy()
        resume(Effect.succeed(true))
      })
      probe.once("error", () => resume(Effect.succeed(false)))
    })
    if (live) {
      return yield* new NodeError({ reason: "Control", detail: `a node is already running on ${path}` })
    }
    Fs.rmSync(path, { force: true })
  })

/** A client of the node whose control socket (or data directory) is `target`; closes with the scope. */
export const client = (target: string): Effect.Effect<
  RpcClient.RpcClient<RpcGroup.Rpcs<typeof ControlRpcs>, RpcClientError>,
  NodeError,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const path = resolveSocket(target)
    if (path === undefined) {
      return yield* new NodeError({
        reason: "Control",
        detail: `no node control socket at ${target} (is the node running? pass its data directory or control.sock)`
      })
    }
    const protocol = RpcClient.layerProtocolSocket().pipe(
      Layer.provide(NodeSocket.layerNet({ path })),
      Layer.provide(RpcSerialization.layerMsgPack)
    )
    const context = yield* Layer.build(protocol).pipe(
      Effect.mapError((cause) => new NodeError({ reason: "Control", detail: `cannot reach ${path}: ${cause.message}` }))
    )
    return yield* RpcClient.make(ControlRpcs, { disableTracing: true }).pipe(Effect.provide(context))
  })

// A socket path as given, or the control socket inside a data directory.
const resolveSocket = (target: string): string | undefined => {
  const candidates = [target, socketPath(target)]
  return candidates.find((candidate) => {
    try {
      return Fs.statSync(candidate).isSocket()
    } catch {
      return false
    }
  })
}
