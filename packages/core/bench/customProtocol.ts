/**
 * The "custom-protocol baseline": `@effect/rpc` RpcClient and RpcServer over a minimal in-memory
 * protocol, two bounded Mailboxes carrying msgpack-encoded frames, one `RpcSerialization.msgPack`
 * parser per side (the pattern of the shared notes, effect-stack.md §2c). What a Weft RPC over the
 * memory transport is compared with: same RPC layers, serialization, no channels, envelopes or link.
 */
import type { Rpc, RpcGroup } from "@effect/rpc"
import { RpcClient, RpcSerialization, RpcServer } from "@effect/rpc"
import type { FromClientEncoded, FromServerEncoded } from "@effect/rpc/RpcMessage"
import type { Layer, Scope } from "effect"
import { Effect, Mailbox, Option, Stream } from "effect"

/** Frames either way a mailbox holds before `offer` waits (the transport's backpressure). */
const framesMax = 1024

/** The one client id this single-connection server knows. */
const clientId = 0

// Feeds every frame of `frames` through the side's own parser into `write`.
const pump = <A>(
  frames: Mailbox.ReadonlyMailbox<Uint8Array>,
  parser: RpcSerialization.Parser,
  write: (message: A) => Effect.Effect<void>
): Effect.Effect<void> =>
  Mailbox.toStream(frames).pipe(
    Stream.runForEach((frame) => Effect.forEach(parser.decode(frame) as ReadonlyArray<A>, write, { discard: true }))
  )

const serverProtocol = (toServer: Mailbox.ReadonlyMailbox<Uint8Array>, toClient: Mailbox.Mailbox<Uint8Array>) =>
  RpcServer.Protocol.make((write) =>
    Effect.gen(function*() {
      const parser = RpcSerialization.msgPack.unsafeMake()
      const disconnects = yield* Mailbox.make<number>()
      yield* Effect.forkScoped(pump<FromClientEncoded>(toServer, parser, (message) => write(clientId, message)))
      return {
        disconnects,
        send: (_client: number, response: FromServerEncoded) => toClient.offer(parser.encode(response) as Uint8Array).pipe(Effect.asVoid),
        end: () => Effect.void,
        clientIds: Effect.succeed(new Set([clientId])),
        initialMessage: Effect.succeed(Option.none()),
        supportsAck: true,
        supportsTransferables: false,
        supportsSpanPropagation: true
      }
    })
  )

const clientProtocol = (toServer: Mailbox.Mailbox<Uint8Array>, toClient: Mailbox.ReadonlyMailbox<Uint8Array>) =>
  RpcClient.Protocol.make((write) =>
    Effect.gen(function*() {
      const parser = RpcSerialization.msgPack.unsafeMake()
      yield* Effect.forkScoped(pump<FromServerEncoded>(toClient, parser, write))
      return {
        send: (request: FromClientEncoded) => toServer.offer(parser.encode(request) as Uint8Array).pipe(Effect.asVoid),
        supportsAck: true,
        supportsTransferables: false
      }
    })
  )

/**
 * A client of `group` whose server runs in this process for the life of the scope, with the
 * handlers from `handlers`, every message msgpack-encoded into a frame and decoded on the other side.
 */
export const makeClient = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  handlers: Layer.Layer<Rpc.ToHandler<Rpcs>>
): Effect.Effect<RpcClient.RpcClient<Rpcs, unknown>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const toServer = yield* Mailbox.make<Uint8Array>({ capacity: framesMax })
    const toClient = yield* Mailbox.make<Uint8Array>({ capacity: framesMax })
    const server = yield* serverProtocol(toServer, toClient)
    yield* RpcServer.make(group).pipe(
      Effect.provideService(RpcServer.Protocol, server),
      Effect.provide(handlers),
      Effect.interruptible,
      Effect.forkScoped
    )
    const protocol = yield* clientProtocol(toServer, toClient)
    return yield* RpcClient.make(group).pipe(Effect.provideService(RpcClient.Protocol, protocol))
  }) as Effect.Effect<RpcClient.RpcClient<Rpcs, unknown>, never, Scope.Scope>
