/**
 * The client side of RPC over channels: an `RpcClient.Protocol` that opens its channel on the first
 * request (and again after the channel is lost), and the wrapper that bounds every unary call by a
 * timeout and turns the router's refusals into `RpcClientError`s.
 *
 * Timeouts: the wrapper hands each unary call's timeout to the protocol through a FiberRef (the
 * client's send fiber inherits the caller's); the protocol records the request's deadline and one
 * sweeping fiber per protocol (`deadlines.ts`) times out what is overdue. A late request is told to
 * the server as an Interrupt and answered locally with an Exit whose defect only this module can
 * make; the wrapper turns that into the call's `RpcClientError`.
 */
import type { Rpc, RpcGroup } from "@effect/rpc"
import { RpcClient, RpcSchema } from "@effect/rpc"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import type { FromClientEncoded, FromServerEncoded } from "@effect/rpc/RpcMessage"
import { Cause, Duration, Effect, ExecutionStrategy, Exit, FiberRef, FiberSet, Option, Scope, Stream } from "effect"
import type { Channel } from "../Channel.js"
import type { MessageError } from "../WeftError.js"
import * as Deadlines from "./deadlines.js"
import { decodeFromServer, rejectionOf } from "./rpcWire.js"

const protocolError = (message: string, cause?: unknown): RpcClientError =>
  new RpcClientError({ reason: "Protocol", message, cause })

/** The timeout of the unary call being made, set by `withTimeouts` for the call; undefined: none. */
const callTimeout = FiberRef.unsafeMake<Duration.Duration | undefined>(undefined)

/**
 * The errors of timed-out calls, by the defect object their local Exit carries. The decoded defect
 * keeps that object as its `cause`, and no peer can produce one: a server cannot forge a timeout.
 */
const timeoutErrors = new WeakMap<object, RpcClientError>()

const timeoutErrorOf = (defect: unknown): RpcClientError | undefined =>
  defect instanceof Error && typeof defect.cause === "object" && defect.cause !== null ? timeoutErrors.get(defect.cause) : undefined

/** A unary request waiting for its reply under a deadline. */
interface Timed {
  readonly tag: string
  readonly timeout: Duration.Duration
}

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
      const runFork = yield* FiberSet.makeRuntime<never>()
      const clock = yield* Effect.clock
      let current: Channel | undefined
      const timed = new Map<string, Timed>()

      /** Fails an overdue request exactly as an interrupted one: the server is told, the caller answered. */
      const expire = (requestId: string): Effect.Effect<void> => {
        const request = timed.get(requestId)
        if (request === undefined) return Effect.void
        timed.delete(requestId)
        const error = protocolError(`no reply from ${describe} to ${request.tag} within ${Duration.format(request.timeout)}`)
        const defect = { name: "WeftRpcTimeout", message: error.message }
        timeoutErrors.set(defect, error)
        const exit: FromServerEncoded = { _tag: "Exit", requestId, exit: { _tag: "Failure", cause: { _tag: "Die", defect } } }
        const interrupt = current === undefined ? Effect.void : Effect.ignore(current.send({ _tag: "Interrupt", requestId }))
        return Effect.zipRight(interrupt, write(exit))
      }

      const deadlines = Deadlines.make<string>({ clock, fork: (effect) => runFork(effect), expire })
      const forget = (requestId: string): void => {
        if (timed.delete(requestId)) deadlines.delete(requestId)
      }
      const forgetAll = (): void => {
        timed.clear()
        deadlines.clear()
      }

      const receive = (message: FromServerEncoded): Effect.Effect<void> => {
        if (message._tag === "Exit") forget(message.requestId)
        else if (message._tag === "Defect") forgetAll()
        return write(message)
      }

      const read = (channel: Channel, channelScope: Scope.CloseableScope) =>
        channel.receive.pipe(
          Stream.runForEach((body) => {
            const message = decodeFromServer(body)
            if (message !== undefined) return receive(message)
            onMalformed()
            return Effect.void
          }),
          Effect.exit,
          // Fail the calls in flight first, so a request racing the loss fails on the dead channel's
          // send instead of being failed spuriously on the next one. Their deadlines go first: a
          // request that races in after that keeps its own.
          Effect.flatMap((exit) => {
            forgetAll()
            return write({
              _tag: "ClientProtocolError",
              error: protocolError(`channel to ${describe} closed`, Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined)
            })
          }),
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

      const sendRequest = (message: FromClientEncoded & { readonly _tag: "Request" }, timeout: Duration.Duration | undefined) => {
        // The deadline covers reaching the server too, as a timeout around the whole call did.
        if (timeout !== undefined) {
          timed.set(message.id, { tag: message.tag, timeout })
          deadlines.set(message.id, Duration.toMillis(timeout))
        }
        return connect.pipe(
          Effect.flatMap((channel) => channel.send(message)),
          Effect.mapError((error) => protocolError(`cannot reach ${describe}: ${error.reason}`, error)),
          // A failed send fails the call at once.
          Effect.tapError(() => Effect.sync(() => forget(message.id)))
        )
      }

      const send = (message: FromClientEncoded): Effect.Effect<void, RpcClientError> => {
        if (message._tag === "Request") return FiberRef.getWith(callTimeout, (timeout) => sendRequest(message, timeout))
        // The caller gave up (it was interrupted): its deadline goes with it.
        if (message._tag === "Interrupt") forget(message.requestId)
        // Acks and interrupts belong to the channel that carried their request.
        return current === undefined ? Effect.void : Effect.ignore(current.send(message))
      }

      return { send, supportsAck: true, supportsTransferables: false }
    })
  )

const rejected = (cause: Cause.Cause<unknown>): Option.Option<RpcClientError> =>
  Cause.find(cause, (reason) => {
    if (reason._tag !== "Die") return Option.none()
    const timedOut = timeoutErrorOf(reason.defect)
    if (timedOut !== undefined) return Option.some(timedOut)
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
 * The timeout itself is kept by the protocol (`makeProtocol`), which sees each request go out.
 */
export const withTimeouts = <Rpcs extends Rpc.Any, C>(
  group: RpcGroup.RpcGroup<Rpcs>,
  client: C,
  timeout: Duration.Duration,
  _describe: string
): C => {
  const methods = client as Record<string, any>
  for (const rpc of group.requests.values() as Iterable<Rpc.AnyWithProps>) {
    const dot = rpc._tag.indexOf(".")
    const target = dot === -1 ? methods : methods[rpc._tag.slice(0, dot)]
    const name = dot === -1 ? rpc._tag : rpc._tag.slice(dot + 1)
    const original = target[name] as (payload: unknown, options?: { readonly asMailbox?: boolean; readonly discard?: boolean }) => any
    if (RpcSchema.isStreamSchema(rpc.successSchema)) {
      target[name] = (payload: unknown, options?: { readonly asMailbox?: boolean }) =>
        options?.asMailbox === true ? original(payload, options) : mapRejectedStream(original(payload, options))
      continue
    }
    target[name] = (payload: unknown, options?: { readonly discard?: boolean }) => {
      const call = mapRejectedEffect(original(payload, options))
      // A discarded call ends once sent: no reply comes, so it has no deadline to wait for.
      return options?.discard === true ? call : Effect.locally(call, callTimeout, timeout)
    }
  }
  return client
}
