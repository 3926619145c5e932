/**
 * The client side of RPC over channels: an `RpcClient.Protocol` that opens its channel on the first
 * request (and again after the channel is lost), and the wrapper that bounds every unary call by a
 * timeout and turns the router's refusals into `RpcClientError`s.
 */
import type { Rpc, RpcGroup } from "@effect/rpc"
import { RpcClient, RpcSchema } from "@effect/rpc"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import type { FromClientEncoded } from "@effect/rpc/RpcMessage"
import { Cause, Duration, Effect, ExecutionStrategy, Exit, Option, Scope, Stream } from "effect"
import type { Channel } from "../Channel.js"
import type { MessageError } from "../WeftError.js"
import { decodeFromServer, rejectionOf } from "./rpcWire.js"

const protocolError = (message: string, cause?: unknown): RpcClientError =>
  new RpcClientError({ reason: "Protocol", message, cause })

/**
 * A client protocol over channels from `open`. Only a request opens a channel; losing it fails every
 * call in flight with an `RpcClientError`, and the next request opens a new one.
 * `onMalformed` counts server bodies that are not well-formed RPC messages (they are dropped).
 */
export const makeProtocol = (
  open: Effect.Effect<Channel, MessageError, Scope.Scope>,
  describe: string,
  onMalformed: () => void
): Effect.Effect<RpcClient.Protocol["Type"], never, Scope.Scope> =>
  RpcClient.Protocol.make((write) =>
    Effect.gen(function*() {
      const scope = yield* Effect.scope
      const lock = yield* Effect.makeSemaphore(1)
      let current: Channel | undefined

      const read = (channel: Channel, channelScope: Scope.CloseableScope) =>
        channel.receive.pipe(
          Stream.runForEach((body) => {
            const message = decodeFromServer(body)
            if (message !== undefined) return write(message)
            onMalformed()
            return Effect.void
          }),
          Effect.exit,
          // Fail the calls in flight first, so a request racing the loss fails on the dead channel's
          // send instead of being failed spuriously on the next one.
          Effect.flatMap((exit) =>
            write({
              _tag: "ClientProtocolError",
              error: protocolError(`channel to ${describe} closed`, Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined)
            })
          ),
          Effect.ensuring(Effect.suspend(() => {
            if (current === channel) current = undefined
            return Scope.close(channelScope, Exit.void)
          }))
        )

      const openChannel = Effect.gen(function*() {
        const channelScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
        const channel = yield* open.pipe(
          Scope.extend(channelScope),
          Effect.tapErrorCause(() => Scope.close(channelScope, Exit.void))
        )
        current = channel
        yield* Effect.forkIn(read(channel, channelScope), scope)
        return channel
      })

      const connect = lock.withPermits(1)(Effect.suspend(() => current !== undefined ? Effect.succeed(current) : openChannel))

      const send = (message: FromClientEncoded): Effect.Effect<void, RpcClientError> => {
        if (message._tag !== "Request") {
          // Acks and interrupts belong to the channel that carried their request.
          return current === undefined ? Effect.void : Effect.ignore(current.send(message))
        }
        return connect.pipe(
          Effect.flatMap((channel) => channel.send(message)),
          Effect.mapError((error) => protocolError(`cannot reach ${describe}: ${error.reason}`, error))
        )
      }

      return { send, supportsAck: true, supportsTransferables: false }
    })
  )

const rejected = (cause: Cause.Cause<unknown>): Option.Option<RpcClientError> =>
  Cause.find(cause, (reason) => {
    if (reason._tag !== "Die") return Option.none()
    const rejection = rejectionOf(reason.defect)
    return rejection === undefined
      ? Option.none()
      : Option.some(protocolError((reason.defect as Error).message, reason.defect))
  })

const mapRejectedEffect = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | RpcClientError, R> =>
  Effect.catchAllCause(effect, (cause): Effect.Effect<never, E | RpcClientError> =>
    Option.match(rejected(cause), { onNone: () => Effect.failCause(cause), onSome: (error) => Effect.fail(error) }))

const mapRejectedStream = <A, E, R>(stream: Stream.Stream<A, E, R>): Stream.Stream<A, E | RpcClientError, R> =>
  Stream.catchAllCause(stream, (cause): Stream.Stream<never, E | RpcClientError> =>
    Option.match(rejected(cause), { onNone: () => Stream.failCause(cause), onSome: (error) => Stream.fail(error) }))

/**
 * Bounds each unary method of `client` by `timeout` (a late call fails with an `RpcClientError` and is
 * interrupted, which also tells the server) and maps refusals to `RpcClientError` on every method.
 * Streaming methods get no timeout: a stream may rightly stay quiet; they end on channel loss.
 */
export const withTimeouts = <Rpcs extends Rpc.Any, C>(
  group: RpcGroup.RpcGroup<Rpcs>,
  client: C,
  timeout: Duration.Duration,
  describe: string
): C => {
  const methods = client as Record<string, any>
  for (const rpc of group.requests.values() as Iterable<Rpc.AnyWithProps>) {
    const dot = rpc._tag.indexOf(".")
    const target = dot === -1 ? methods : methods[rpc._tag.slice(0, dot)]
    const name = dot === -1 ? rpc._tag : rpc._tag.slice(dot + 1)
    const original = target[name] as (payload: unknown, options?: { readonly asMailbox?: boolean }) => any
    if (RpcSchema.isStreamSchema(rpc.successSchema)) {
      target[name] = (payload: unknown, options?: { readonly asMailbox?: boolean }) =>
        options?.asMailbox === true ? original(payload, options) : mapRejectedStream(original(payload, options))
      continue
    }
    target[name] = (payload: unknown, options?: object) =>
      mapRejectedEffect(original(payload, options)).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => protocolError(`no reply from ${describe} to ${rpc._tag} within ${Duration.format(timeout)}`)
        })
      )
  }
  return client
}
